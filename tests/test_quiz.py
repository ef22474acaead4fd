"""cnnlib.conv.quiz: answers equal cnnlib.conv.ops.output_size (and TensorFlow's shape for a
sample), the question mix has its stated shares, links round-trip and refuse hostile values, answers
parse in every accepted form, the worked formula is the lab's."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlib.conv import quiz
from cnnlib.conv.lab import axis_size
from cnnlib.conv.ops import ConvGeometry, dropped_cells, output_size
from cnnlib.core.errors import InvalidArgumentError

N = 400


@pytest.fixture(scope="module")
def questions():
    rng = np.random.default_rng(1234)
    return [quiz.new_question(rng) for _ in range(N)]


def _floor_expected(n, k, p, s, d):
    """Output size by counting kernel positions (independent of output_size's formula)."""
    if p == "same":
        return -(-n // s)
    pad = 0 if p == "valid" else p
    span = d * (k - 1) + 1
    return len(range(0, n + 2 * pad - span + 1, s))


def test_answers_equal_output_size_and_counting(questions):
    for q in questions:
        args = {"padding": q.padding, "stride": q.stride, "dilation": q.dilation}
        expected = (output_size(q.h, q.kh, **args), output_size(q.w, q.kw, **args))
        assert q.answer() == expected
        assert expected == (
            _floor_expected(q.h, q.kh, q.padding, q.stride, q.dilation),
            _floor_expected(q.w, q.kw, q.padding, q.stride, q.dilation),
        )
        assert quiz.check_answer(q, expected).correct
        assert not quiz.check_answer(q, (expected[0] + 1, expected[1])).correct


def test_answers_equal_tensorflow_shapes(questions):
    import tensorflow as tf

    for q in questions[:25]:
        pad = q.padding
        tf_pad = pad.upper() if isinstance(pad, str) else [[0, 0], [pad, pad], [pad, pad], [0, 0]]
        y = tf.nn.conv2d(
            tf.zeros((1, q.h, q.w, 1)),
            tf.zeros((q.kh, q.kw, 1, 1)),
            strides=q.stride,
            padding=tf_pad,
            dilations=q.dilation,
        )
        assert tuple(y.shape[1:3]) == q.answer()


def test_mix_of_same_floor_and_exact(questions):
    same = sum(q.padding == "same" for q in questions)
    floor = sum(
        q.padding != "same"
        and any(
            dropped_cells(n, k, padding=q.padding, stride=q.stride, dilation=q.dilation)
            for n, k in ((q.h, q.kh), (q.w, q.kw))
        )
        for q in questions
    )
    # Binomial(400, p): ±4.5 standard deviations is about ±0.1 for these shares.
    assert abs(same / N - quiz.SAME_SHARE) < 0.1
    assert abs(floor / N - quiz.FLOOR_SHARE) < 0.1
    assert N - same - floor > 0.2 * N
    assert any(q.h != q.w for q in questions) and any(q.kh != q.kw for q in questions)
    assert any(q.dilation > 1 for q in questions) and any(q.stride > 1 for q in questions)


def test_same_seed_same_question():
    assert quiz.new_question(7) == quiz.new_question(7)


def test_query_round_trip(questions):
    for q in questions[:50]:
        params = quiz.question_to_query(q)
        assert all(isinstance(v, str) for v in params.values())
        assert quiz.question_from_query(params) == q
        # Streamlit's query_params.to_dict() may hold lists: the last value counts.
        assert quiz.question_from_query({k: ["1", v] for k, v in params.items()}) == q


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"h": "-3"}, "h="),
        ({"h": "99999999999"}, "h="),
        ({"kw": "1e3"}, "kw="),
        ({"stride": "0"}, "stride="),
        ({"dilation": "٣"}, "dilation="),  # an Arabic-Indic digit: not ASCII
        ({"padding": "huge"}, "padding"),
        ({"h": "3", "kh": "7"}, "kernel"),
        ({"w": None}, "no `w`"),
    ],
)
def test_hostile_links_are_refused(change, match):
    params = quiz.question_to_query(quiz.Question(28, 28, 3, 3, "valid", 1, 1))
    for k, v in change.items():
        if v is None:
            del params[k]
        else:
            params[k] = v
    with pytest.raises(InvalidArgumentError, match=match):
        quiz.question_from_query(params)


@pytest.mark.parametrize("text", ["13x13", "13×13", "13 13", "13,13", " 13 X 13 ", "13*13"])
def test_parse_answer_forms(text):
    assert quiz.parse_answer(text) == (13, 13)


@pytest.mark.parametrize("text", ["", "13", "13x", "a x b", "13x13x1", "-1x3", "1" * 50 + "x1"])
def test_parse_answer_refuses_with_a_hint(text):
    with pytest.raises(InvalidArgumentError, match=r"e\.g\. 13x13"):
        quiz.parse_answer(text)


def test_wrong_answer_gets_the_lab_formula():
    q = quiz.Question(28, 30, 3, 5, 1, 2, 1)
    verdict = quiz.check_answer(q, "15x14")
    assert not verdict.correct and verdict.given == (15, 14)
    assert verdict.expected == q.answer() == (14, 14)  # ⌊27/2⌋ + 1 on both axes
    assert verdict.worked == (
        axis_size("height", 28, 3, ConvGeometry(1, 2)).formula_latex(),
        axis_size("width", 30, 5, ConvGeometry(1, 2)).formula_latex(),
    )
    assert rf"\mathbf{{{q.answer()[1]}}}" in verdict.worked[1]
    same = quiz.check_answer(quiz.Question(7, 7, 3, 3, "same", 2, 1), "4x4")
    assert same.correct and len(same.same_rule) == 2 and "lceil" in same.same_rule[0]
    floor = quiz.check_answer(quiz.Question(8, 8, 3, 3, "valid", 2, 1), (3, 3))
    assert floor.correct and floor.dropped and "drops 1 row" in floor.dropped[0]


def test_score():
    s = quiz.Score()
    for ok in (True, True, False, True):
        s = s.record(ok)
    assert (s.asked, s.right, s.streak, s.best_streak) == (4, 3, 1, 2)
    assert s.text() == "3 of 4 right, streak 1"


def test_prefixed_query_round_trip(questions):
    """The lab shares a question beside its own parameters under ``QUERY_PREFIX``."""
    for q in questions[:50]:
        params = quiz.question_to_query(q, quiz.QUERY_PREFIX)
        assert set(params) == set(quiz.query_keys(quiz.QUERY_PREFIX))
        assert all(k.startswith("quiz_") for k in params)
        assert quiz.question_from_query({**params, "lab_stride": "2"}, quiz.QUERY_PREFIX) == q
        with pytest.raises(InvalidArgumentError, match="quiz_h"):
            quiz.question_from_query({k: v for k, v in params.items() if k != "quiz_h"}, "quiz_")
