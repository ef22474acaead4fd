"""The output-size quiz: random (i, k, p, s, d) questions, answers checked with the worked
formula, a session score and the URL form of one question (to share it).

Pure Python/NumPy. Every expected answer comes from ``cnnlib.conv.ops.output_size`` and every
worked formula from ``cnnlib.conv.lab.axis_size`` (the Convolution lab's explanations).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from cnnlib.conv.lab import AxisSize, Padding, axis_size, padding_to_text, parse_padding
from cnnlib.conv.ops import ConvGeometry, output_size
from cnnlib.core.errors import InvalidArgumentError

#: Share of questions with TensorFlow's "same" padding, and of questions where the floor
#: drops rows or columns (the rest divide exactly).
SAME_SHARE = 0.25
FLOOR_SHARE = 0.35
#: Ranges of random questions (inclusive).
SIZE_RANGE = (5, 64)
KERNEL_RANGE = (1, 7)
STRIDES = (1, 2, 3, 4)
DILATIONS = (1, 2, 3)
MAX_RANDOM_PADDING = 3
#: Limits of a question read from a link (anything beyond is refused).
MAX_SIZE = 1024
MAX_KERNEL = 15
MAX_STRIDE = 8
MAX_DILATION = 4
#: Longest answer text read.
MAX_ANSWER_CHARS = 40


@dataclass(frozen=True)
class Question:
    """ "What is H′×W′?" for an H×W input and a kh×kw kernel; padding, stride and dilation are
    the same on both axes."""

    h: int
    w: int
    kh: int
    kw: int
    padding: Padding = "valid"
    stride: int = 1
    dilation: int = 1

    def axes(self) -> tuple[AxisSize, AxisSize]:
        """Every number behind the answer, height then width (raises if the kernel does not
        fit)."""
        return axis_size("height", self.h, self.kh, self.geometry), axis_size(
            "width", self.w, self.kw, self.geometry
        )

    @property
    def geometry(self) -> ConvGeometry:
        """The question's padding, stride and dilation."""
        return ConvGeometry(self.padding, self.stride, self.dilation)

    def answer(self) -> tuple[int, int]:
        """(H′, W′), from ``cnnlib.conv.ops.output_size``."""
        args = self.geometry.kwargs
        return output_size(self.h, self.kh, **args), output_size(self.w, self.kw, **args)

    def text(self) -> str:
        """The question in words, e.g. "28×28 input, 3×3 kernel, padding "same", stride 2"."""
        parts = [f"{self.h}×{self.w} input", f"{self.kh}×{self.kw} kernel"]
        pad = f'"{self.padding}"' if isinstance(self.padding, str) else str(self.padding)
        parts += [f"padding {pad}", f"stride {self.stride}", f"dilation {self.dilation}"]
        return ", ".join(parts)


def _kind(q: Question) -> str:
    """ "same", "floor" (some rows/columns dropped) or "exact"."""
    if q.padding == "same":
        return "same"
    return "floor" if any(a.dropped for a in q.axes()) else "exact"


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def new_question(rng: np.random.Generator | int | None = None) -> Question:
    """A random question: "same" padding with probability ``SAME_SHARE``, one where the floor
    drops cells with probability ``FLOOR_SHARE``, otherwise one that divides exactly.

    ``rng`` is a NumPy generator (advanced) or a seed. Square inputs and kernels are common
    but not the rule; dilation is 1 two times in three.
    """
    g = _rng(rng)
    roll = g.random()
    kind = "same" if roll < SAME_SHARE else "floor" if roll < SAME_SHARE + FLOOR_SHARE else "exact"
    while True:
        h = int(g.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1))
        w = h if g.random() < 0.6 else int(g.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1))
        kh = int(g.integers(KERNEL_RANGE[0], KERNEL_RANGE[1] + 1))
        kw = kh if g.random() < 0.7 else int(g.integers(KERNEL_RANGE[0], KERNEL_RANGE[1] + 1))
        if kind == "same":
            padding: Padding = "same"
        else:
            padding = "valid" if g.random() < 0.4 else int(g.integers(0, MAX_RANDOM_PADDING + 1))
        stride = int(g.choice(STRIDES))
        dilation = 1 if g.random() < 2 / 3 else int(g.choice(DILATIONS[1:]))
        q = Question(h, w, kh, kw, padding, stride, dilation)
        try:
            if _kind(q) == kind:
                return q
        except InvalidArgumentError:  # the kernel does not fit: draw again
            continue


# ----------------------------------------------------------------------------- links

_KEYS = ("h", "w", "kh", "kw", "padding", "stride", "dilation")
#: Prefix of the quiz's parameters in the Convolution lab's URL (beside the lab's own).
QUERY_PREFIX = "quiz_"


def query_keys(prefix: str = "") -> tuple[str, ...]:
    """The seven parameter names of a question in a URL, e.g. ("quiz_h", ...)."""
    return tuple(prefix + k for k in _KEYS)


def question_to_query(q: Question, prefix: str = "") -> dict[str, str]:
    """The URL query parameters that restore ``q`` (names start with ``prefix``)."""
    values = (q.h, q.w, q.kh, q.kw, padding_to_text(q.padding), q.stride, q.dilation)
    return {prefix + k: str(v) for k, v in zip(_KEYS, values, strict=True)}


def _int_param(name: str, text: str, lo: int, hi: int) -> int:
    t = str(text).strip()
    if not (t.isascii() and t.isdigit() and len(t) <= 6) or not lo <= int(t) <= hi:
        raise InvalidArgumentError(
            f"The link's {name}={text[:20]!r} is not a whole number from {lo} to {hi}."
        )
    return int(t)


def question_from_query(params: Mapping[str, str | Sequence[str]], prefix: str = "") -> Question:
    """Read a shared question from URL query parameters (all seven are needed, each name
    starting with ``prefix``).

    Raises ``InvalidArgumentError`` naming the first bad or missing parameter, or saying
    that the kernel does not fit.
    """

    def get(name: str) -> str:
        v = params.get(prefix + name)
        if v is None or (not isinstance(v, str) and not len(v)):
            raise InvalidArgumentError(
                f"The link has no `{prefix + name}`; a shared question needs "
                f"{', '.join(query_keys(prefix))}."
            )
        return v if isinstance(v, str) else str(v[-1])

    try:
        padding = parse_padding(get("padding"))
    except InvalidArgumentError as err:
        raise InvalidArgumentError(f"The link's padding is not usable: {err}") from None
    q = Question(
        h=_int_param("h", get("h"), 1, MAX_SIZE),
        w=_int_param("w", get("w"), 1, MAX_SIZE),
        kh=_int_param("kh", get("kh"), 1, MAX_KERNEL),
        kw=_int_param("kw", get("kw"), 1, MAX_KERNEL),
        padding=padding,
        stride=_int_param("stride", get("stride"), 1, MAX_STRIDE),
        dilation=_int_param("dilation", get("dilation"), 1, MAX_DILATION),
    )
    q.answer()  # raises when the kernel does not fit
    return q


# ----------------------------------------------------------------------------- answers

_ANSWER = re.compile(r"^\s*(\d{1,5})\s*(?:[x×X*,]|\s)\s*(\d{1,5})\s*$")


def parse_answer(text: str) -> tuple[int, int]:
    """ "13x13", "13×13", "13 13", "13,13" or "13*13" → (13, 13).

    Raises ``InvalidArgumentError`` with a hint for anything else.
    """
    t = str(text)
    match = _ANSWER.match(t) if len(t) <= MAX_ANSWER_CHARS else None
    if match is None:
        raise InvalidArgumentError(
            "Type the output size as height × width, two whole numbers, e.g. 13x13 or 13 13."
        )
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class Verdict:
    """The result of one answer: right or not, the expected (H′, W′), and how to get it."""

    correct: bool
    expected: tuple[int, int]
    given: tuple[int, int]
    #: LaTeX of the output-size formula with each axis's numbers (height, width).
    worked: tuple[str, str]
    #: LaTeX of TensorFlow's "same" rule per axis (empty unless padding is "same").
    same_rule: tuple[str, ...]
    #: Sentences about rows/columns the floor drops (empty when none).
    dropped: tuple[str, ...]


def check_answer(q: Question, answer: tuple[int, int] | str) -> Verdict:
    """Compare ``answer`` (a pair or text for ``parse_answer``) with ``q.answer()``."""
    given = parse_answer(answer) if isinstance(answer, str) else (int(answer[0]), int(answer[1]))
    axes = q.axes()
    expected = q.answer()
    return Verdict(
        correct=given == expected,
        expected=expected,
        given=given,
        worked=(axes[0].formula_latex(), axes[1].formula_latex()),
        same_rule=tuple(r for a in axes if (r := a.same_rule_latex()) is not None),
        dropped=tuple(t for a in axes if (t := a.dropped_text()) is not None),
    )


@dataclass(frozen=True)
class Score:
    """A session's score: questions answered, right answers, current and best streak."""

    asked: int = 0
    right: int = 0
    streak: int = 0
    best_streak: int = 0

    def record(self, correct: bool) -> Score:
        """The score after one more answer."""
        streak = self.streak + 1 if correct else 0
        return replace(
            self,
            asked=self.asked + 1,
            right=self.right + int(bool(correct)),
            streak=streak,
            best_streak=max(self.best_streak, streak),
        )

    def text(self) -> str:
        """E.g. "7 of 9 right, streak 3"."""
        return f"{self.right} of {self.asked} right, streak {self.streak}"
