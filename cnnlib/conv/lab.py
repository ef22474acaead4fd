"""The Convolution lab's logic: settings (and their URL form), output-size explanations,
the arithmetic behind one output cell, the small-grid view and the filter bank.

Pure NumPy; the page only lays out what these functions return. TensorFlow is imported
only inside ``tensorflow_check`` (the page calls it when the learner asks).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from cnnlib.conv import kernels
from cnnlib.conv.ops import (
    PADDING_MODES,
    ConvGeometry,
    conv2d,
    conv2d_transpose,
    dropped_cells,
    effective_kernel_size,
    output_size,
    pad_amounts,
    transpose_output_size,
    transpose_pad_amounts,
)
from cnnlib.core.errors import InvalidArgumentError
from cnnlib.core.text import plain_text, safe_text
from cnnlib.data import images

#: Strides and dilations the lab offers.
STRIDES: tuple[int, ...] = (1, 2, 3, 4)
DILATIONS: tuple[int, ...] = (1, 2, 3)
#: Largest explicit padding the lab offers (zero rows/columns on each side).
MAX_EXPLICIT_PADDING = 10
#: Kernel name meaning "the matrix the learner typed" (not a preset).
CUSTOM = "custom"
#: Largest kernel weight accepted from the editor or the URL (in absolute value).
MAX_WEIGHT = 1e6
#: Longest kernel text a link may hold: 7 × 7 values of up to 16 characters (the shortest
#: text of any float32, e.g. "-1.2345678e-38"), their separators, and some slack.
MAX_KERNEL_TEXT = 1000
#: Longest text a cell of the kernel editor may send (its inputs stop at this length).
MAX_CELL_TEXT = 24
#: Padding choices of the lab's radio: "explicit" means ``p`` zeros on each side.
PADDING_CHOICES: tuple[str, ...] = (*PADDING_MODES, "explicit")
#: Relative tolerance of "the hand-made sum equals the output map" (float32 rounding).
AGREEMENT_RTOL = 1e-4

Padding = str | int

#: URL query parameter of each shareable setting: Streamlit binds the widget with this key
#: (``bind="query-params"``) and writes its value there, leaving defaults out. Only ``k`` (a
#: custom kernel's matrix, "a,b;c,d") is written by the page itself.
QUERY_KEYS: dict[str, str] = {
    "image": "lab_sample",
    "gray": "lab_gray",
    "kernel": "lab_preset",
    "k": "lab_k",
    "padding": "lab_padding",
    "p": "lab_p",
    "stride": "lab_stride",
    "dilation": "lab_dilation",
}


@dataclass(frozen=True)
class LabSettings:
    """What a shared link restores: image, colour mode, kernel and convolution arguments.

    ``kernel_name`` is a preset name or ``CUSTOM``; ``kernel`` is the (kh, kw) matrix as
    nested tuples (hashable). ``geometry.padding`` is "valid", "same", "full" or an int p ≥ 0.
    """

    image: str = "cat (chelsea)"
    grayscale: bool = True
    kernel_name: str = "vertical edges"
    kernel: tuple[tuple[float, ...], ...] = ()
    geometry: ConvGeometry = field(default_factory=ConvGeometry)

    def __post_init__(self) -> None:
        if not self.kernel:
            object.__setattr__(self, "kernel", kernel_tuple(kernels.preset(self.kernel_name)))

    @property
    def kernel_array(self) -> np.ndarray:
        """The kernel as (kh, kw) float32."""
        return np.array(self.kernel, dtype=np.float32)


def kernel_tuple(kernel: np.ndarray) -> tuple[tuple[float, ...], ...]:
    """(kh, kw) array → nested tuples of Python floats (float32 values), hashable."""
    k = np.asarray(kernel, dtype=np.float32)
    return tuple(tuple(float(v) for v in row) for row in k)


DEFAULTS = LabSettings()


def _number_text(v: float) -> str:
    return np.format_float_positional(np.float32(v), unique=True, trim="-")


def kernel_to_text(kernel: np.ndarray) -> str:
    """(kh, kw) kernel → "a,b,c;d,e,f" (rows split by ';'), shortest text that round-trips."""
    k = np.asarray(kernel, dtype=np.float32)
    return ";".join(",".join(_number_text(v) for v in row) for row in k)


def check_kernel(kernel: np.ndarray) -> np.ndarray:
    """A 2-D kernel as (kh, kw) float32 after checking its size (1–7 each side) and values.

    Raises ``InvalidArgumentError`` naming the problem.
    """
    k = np.asarray(kernel, dtype=np.float64)
    top = kernels.MAX_KERNEL_SIZE
    if k.ndim != 2 or not (1 <= k.shape[0] <= top and 1 <= k.shape[1] <= top):
        raise InvalidArgumentError(
            f"The kernel must have 1 to {top} rows and 1 to {top} columns; got shape {k.shape}."
        )
    if not np.all(np.isfinite(k)):
        raise InvalidArgumentError("The kernel holds a value that is not a finite number.")
    if np.abs(k).max() > MAX_WEIGHT:
        raise InvalidArgumentError(
            f"Kernel weights must lie between −{MAX_WEIGHT:g} and {MAX_WEIGHT:g}."
        )
    return k.astype(np.float32)


def kernel_from_text(text: str) -> np.ndarray:
    """Parse "a,b,c;d,e,f" into a (kh, kw) float32 kernel; raises ``InvalidArgumentError``
    (a text over ``MAX_KERNEL_TEXT`` characters before anything is parsed)."""
    text = str(text)
    if len(text) > MAX_KERNEL_TEXT:
        raise InvalidArgumentError(
            f"The kernel text is {len(text):,} characters long; a "
            f"{kernels.MAX_KERNEL_SIZE}×{kernels.MAX_KERNEL_SIZE} kernel needs at most "
            f"{MAX_KERNEL_TEXT:,}."
        )
    rows = [r for r in text.strip().strip(";").split(";")]
    try:
        values = [[float(v) for v in row.split(",")] for row in rows]
    except ValueError:
        raise InvalidArgumentError(
            "The kernel must be numbers separated by ',' with rows separated by ';'."
        ) from None
    if len({len(r) for r in values}) != 1:
        raise InvalidArgumentError("Every kernel row must have the same number of values.")
    return check_kernel(np.array(values))


def kernel_from_cells(cells: object, shape: tuple[int, int]) -> np.ndarray:
    """The kernel editor's cells → (kh, kw) float32. ``cells`` is what the browser sent
    (untrusted): ``shape`` rows of ``shape[1]`` texts each, every text a number (an empty cell
    counts as 0) of at most ``MAX_CELL_TEXT`` characters. Raises ``InvalidArgumentError``
    naming the first problem (cell texts are quoted as plain text)."""
    kh, kw = shape
    if not (
        isinstance(cells, list)
        and len(cells) == kh
        and all(isinstance(row, list) and len(row) == kw for row in cells)
    ):
        raise InvalidArgumentError(
            f"The kernel editor did not send {kh}×{kw} cells: reload the page to edit again."
        )
    values = []
    for row in cells:
        numbers = []
        for cell in row:
            if not isinstance(cell, str) or len(cell) > MAX_CELL_TEXT:
                raise InvalidArgumentError(
                    f"Each kernel cell must be a number of at most {MAX_CELL_TEXT} characters."
                )
            text = cell.strip()
            try:
                numbers.append(float(text) if text else 0.0)
            except ValueError:
                raise InvalidArgumentError(
                    f"“{safe_text(text, 20)}” is not a number: type a number in every kernel "
                    "cell (an empty cell counts as 0)."
                ) from None
        values.append(numbers)
    return check_kernel(np.array(values))


def matching_preset(kernel: np.ndarray) -> str | None:
    """The name of the preset equal to ``kernel`` (same shape and values), or None."""
    k = np.asarray(kernel, dtype=np.float32)
    for name, (p, _) in kernels.PRESETS.items():
        if p.shape == k.shape and np.array_equal(p, k):
            return name
    return None


def padding_to_text(padding: Padding) -> str:
    return padding if isinstance(padding, str) else str(int(padding))


def parse_padding(text: str) -> Padding:
    """ "valid" | "same" | "full" | an integer 0–10 → padding; raises ``InvalidArgumentError``."""
    t = str(text).strip().lower()
    if t in PADDING_MODES:
        return t
    try:
        p = int(t)
    except ValueError:
        p = -1
    if not 0 <= p <= MAX_EXPLICIT_PADDING:
        raise InvalidArgumentError(
            f"padding must be valid, same, full or a whole number 0–{MAX_EXPLICIT_PADDING}."
        )
    return p


def _parse_choice(text: str, choices: Sequence[object], name: str) -> object:
    """The choice whose text is exactly ``text`` (as Streamlit writes options in a URL)."""
    by_text = {str(c): c for c in choices}
    if text not in by_text:
        raise InvalidArgumentError(f"{name} must be one of {', '.join(by_text)}")
    return by_text[text]


def link_kernel_name(preset: str, kernel: np.ndarray) -> str:
    """The kernel name a link holds: the preset while ``kernel`` still equals it, else CUSTOM."""
    if preset in kernels.PRESETS and matching_preset(kernel) == preset:
        return preset
    return CUSTOM


def settings_to_query(settings: LabSettings) -> dict[str, str]:
    """The URL query parameters of ``settings`` as Streamlit's bound widgets write them.

    Values equal to the default are left out (Streamlit removes them); a custom kernel adds
    its matrix under ``k``'s key. Keys are ``QUERY_KEYS``' values.
    """
    g, d = settings.geometry, DEFAULTS
    q = QUERY_KEYS
    explicit = not isinstance(g.padding, str)
    params = {
        q["image"]: settings.image,
        q["gray"]: "true" if settings.grayscale else "false",
        q["kernel"]: settings.kernel_name,
        q["padding"]: "explicit" if explicit else g.padding,
        q["p"]: str(int(g.padding)) if explicit else str(DEFAULT_P),
        q["stride"]: str(g.stride),
        q["dilation"]: str(g.dilation),
    }
    defaults = {
        q["image"]: d.image,
        q["gray"]: "true" if d.grayscale else "false",
        q["kernel"]: d.kernel_name,
        q["padding"]: d.geometry.padding,
        q["p"]: str(DEFAULT_P),
        q["stride"]: str(d.geometry.stride),
        q["dilation"]: str(d.geometry.dilation),
    }
    params = {k: v for k, v in params.items() if v != defaults[k]}
    if settings.kernel_name == CUSTOM:
        params[q["k"]] = kernel_to_text(settings.kernel_array)
    return params


#: The explicit-padding input's default (zeros on each side).
DEFAULT_P = 1


def settings_from_query(
    params: Mapping[str, str | Sequence[str]], image_names: Sequence[str]
) -> tuple[LabSettings, list[str]]:
    """Read settings from URL query parameters (``QUERY_KEYS``); bad values fall back.

    Accepts exactly what Streamlit's bound widgets accept (which drop anything else
    silently), so the returned notices name every value a learner's link lost: one
    learner-facing notice per ignored parameter (markdown), its value shown verbatim and
    shortened with ``safe_text``. Unknown parameters are ignored silently.
    """
    notices: list[str] = []
    s = DEFAULTS
    q = QUERY_KEYS

    def get(name: str) -> str | None:
        v = params.get(q[name])
        if v is None:
            return None
        if isinstance(v, str):
            return v
        return str(v[-1]) if len(v) else ""

    def bad(name: str, value: str, why: str, default: object) -> None:
        notices.append(
            f"The link's **{q[name]}** value {safe_text(value)} was not used "
            f"({plain_text(why, 200)}); using the default {safe_text(default)} instead."
        )

    if (v := get("image")) is not None:
        if v in image_names:
            s = replace(s, image=v)
        else:
            bad("image", v, "there is no built-in image of that name", DEFAULTS.image)
    if (v := get("gray")) is not None:
        if v.lower() in ("true", "false"):
            s = replace(s, grayscale=v.lower() == "true")
        else:
            bad("gray", v, "it must be true or false", str(DEFAULTS.grayscale).lower())
    geometry = DEFAULTS.geometry
    if (v := get("padding")) is not None:
        try:
            mode = _parse_choice(v, PADDING_CHOICES, "padding")
            geometry = replace(geometry, padding=DEFAULT_P if mode == "explicit" else mode)
        except InvalidArgumentError as err:
            bad("padding", v, str(err), DEFAULTS.geometry.padding)
    if (v := get("p")) is not None:
        try:
            p = _parse_choice(v, range(MAX_EXPLICIT_PADDING + 1), "p")
            if not isinstance(geometry.padding, str):
                geometry = replace(geometry, padding=p)
        except InvalidArgumentError:
            bad("p", v, f"it must be a whole number 0–{MAX_EXPLICIT_PADDING}", DEFAULT_P)
    for name, choices in (("stride", STRIDES), ("dilation", DILATIONS)):
        if (v := get(name)) is not None:
            try:
                geometry = replace(geometry, **{name: _parse_choice(v, choices, name)})
            except InvalidArgumentError as err:
                bad(name, v, str(err), getattr(DEFAULTS.geometry, name))
    s = replace(s, geometry=geometry)
    name, matrix = get("kernel"), get("k")
    if name is not None and name != CUSTOM and name not in kernels.PRESETS:
        bad("kernel", name, "there is no preset of that name", DEFAULTS.kernel_name)
    elif name is not None and name != CUSTOM:
        s = replace(s, kernel_name=name, kernel=kernel_tuple(kernels.preset(name)))
    elif name == CUSTOM and matrix is not None:
        try:
            k = kernel_from_text(matrix)
            s = replace(s, kernel_name=CUSTOM, kernel=kernel_tuple(k))
        except InvalidArgumentError as err:
            bad("k", matrix, str(err).rstrip("."), DEFAULTS.kernel_name)
    elif name == CUSTOM:
        bad("kernel", name, "a custom kernel needs its matrix in lab_k", DEFAULTS.kernel_name)
    return s, notices


# ------------------------------------------------------------------------ compute size


def downscale_choices(size: tuple[int, int], sides: Sequence[int], max_pixels: int) -> list[int]:
    """The longest sides offered for an image of ``size`` (width, height): each of ``sides``
    whose downscaled image has at most ``max_pixels`` pixels, then 0 ("original size") only
    when the image itself fits. Never empty: the largest side that fits when none does."""
    cap = images.side_for_pixels(size, max_pixels)
    out = [int(s) for s in sides if 0 < s <= cap]
    if cap == max(size):
        out.append(0)
    return out or [cap]


def compute_side(size: tuple[int, int], side: int, max_pixels: int) -> int:
    """The longest side the lab computes at: ``side`` (0 = original) capped so that the
    image has at most ``max_pixels`` pixels (``images.side_for_pixels``)."""
    cap = images.side_for_pixels(size, max_pixels)
    return cap if side <= 0 else min(int(side), cap)


# ----------------------------------------------------------------------------- output size


def _frac(num: int, den: int) -> str:
    """num/den as a short decimal (exact when it terminates within 3 digits)."""
    v = num / den
    return f"{v:g}" if abs(v * 1000 - round(v * 1000)) < 1e-9 else f"{v:.3f}…"


class _PaddedAxis:
    """Shared properties of one padded axis: ``n`` input cells, ``before``/``after`` padding
    cells and the lab's ``geometry`` (fields of the dataclasses that use it)."""

    n: int
    geometry: ConvGeometry
    before: int
    after: int

    @property
    def padding(self) -> Padding:
        return self.geometry.padding

    @property
    def stride(self) -> int:
        return self.geometry.stride

    @property
    def dilation(self) -> int:
        return self.geometry.dilation

    @property
    def padded(self) -> int:
        """Length of the padded axis, n + p_before + p_after."""
        return self.n + self.before + self.after


@dataclass(frozen=True)
class AxisSize(_PaddedAxis):
    """How one axis (height or width) of the output gets its length, with every number used."""

    axis: str
    n: int
    k: int
    geometry: ConvGeometry
    before: int
    after: int
    out: int
    dropped: int

    @property
    def k_eff(self) -> int:
        """Span of the dilated kernel, d·(k − 1) + 1."""
        return effective_kernel_size(self.k, self.dilation)

    @property
    def numerator(self) -> int:
        """i + p_before + p_after − d·(k − 1) − 1."""
        return self.padded - self.k_eff

    def formula_latex(self) -> str:
        """The output-size formula, then the same with this axis's numbers filled in."""
        d, k, s = self.dilation, self.k, self.stride
        general = (
            r"o &= \left\lfloor \frac{i + p_\text{before} + p_\text{after} - d\,(k-1) - 1}{s}"
            r"\right\rfloor + 1"
        )
        filled = (
            rf"\left\lfloor \frac{{{self.n} + {self.before} + {self.after} - {d}\cdot({k}-1)"
            rf" - 1}}{{{s}}} \right\rfloor + 1"
        )
        if s == 1:
            steps = rf"{self.numerator} + 1"
        else:
            steps = (
                rf"\left\lfloor \frac{{{self.numerator}}}{{{s}}} \right\rfloor + 1"
                rf" = \lfloor {_frac(self.numerator, s)} \rfloor + 1"
            )
        # Two lines (aligned at "="), so the filled-in numbers fit a narrow column.
        return (
            rf"\begin{{aligned}} {general} \\ &= {filled} = {steps} = \mathbf{{{self.out}}}"
            r" \end{aligned}"
        )

    def same_rule_latex(self) -> str | None:
        """TensorFlow's "same" rule with numbers (None unless padding is "same")."""
        if self.padding != "same":
            return None
        n, s, k, d = self.n, self.stride, self.k, self.dilation
        total = self.before + self.after
        return (
            rf"\begin{{aligned}} o &= \left\lceil \frac{{i}}{{s}} \right\rceil"
            rf" = \left\lceil \frac{{{n}}}{{{s}}}\right\rceil = {self.out} \\"
            rf" p_\text{{total}} &= \max\big((o-1)\,s + d\,(k-1) + 1 - i,\ 0\big)"
            rf" = \max({self.out - 1}\cdot{s} + {d}\cdot{k - 1} + 1 - {n},\ 0) = {total} \\"
            rf" p_\text{{before}} &= \lfloor {total}/2 \rfloor = {self.before},"
            rf"\quad p_\text{{after}} = {total} - {self.before} = {self.after}"
            r" \end{aligned}"
        )

    def dropped_image_cells(self) -> range:
        """Image rows/columns (0-based) that no kernel position reads, lost to the floor."""
        last_read = (self.out - 1) * self.stride + self.k_eff - 1  # in padded coordinates
        first, stop = last_read + 1 - self.before, self.n
        return range(max(first, 0), max(stop, 0))

    def dropped_text(self) -> str | None:
        """A sentence pointing out what the floor drops on this axis (None when nothing)."""
        if self.dropped == 0:
            return None
        unit = "row" if self.axis == "height" else "column"
        image = self.dropped_image_cells()
        pad = self.dropped - len(image)
        last = (self.out - 1) * self.stride + self.k_eff - 1
        parts = []
        if len(image):
            which = (
                f"image {unit} {image.start}"
                if len(image) == 1
                else f"image {unit}s {image.start}–{image.stop - 1}"
            )
            parts.append(which + " (counting from 0)")
        if pad:
            parts.append(f"{pad} padding {unit}{'s' if pad != 1 else ''}")
        return (
            f"{self.axis.capitalize()}: the floor drops {self.dropped} {unit}"
            f"{'s' if self.dropped != 1 else ''}. The last kernel position ends at padded "
            f"{unit} {last} of {self.padded} (0–{self.padded - 1}), so "
            f"{' and '.join(parts)} {'is' if self.dropped == 1 else 'are'} never read."
        )


def axis_size(axis: str, n: int, k: int, geometry: ConvGeometry) -> AxisSize:
    """Every number behind ``output_size`` for one axis; raises when the kernel does not fit."""
    before, after = pad_amounts(n, k, **geometry.kwargs)
    out = output_size(n, k, **geometry.kwargs)
    drop = dropped_cells(n, k, **geometry.kwargs)
    return AxisSize(axis, n, k, geometry, before, after, out, drop)


def output_sizes(
    shape: tuple[int, int], ksize: tuple[int, int], geometry: ConvGeometry
) -> tuple[AxisSize, AxisSize]:
    """``axis_size`` for height and width of an (H, W) image and a (kh, kw) kernel."""
    return (
        axis_size("height", shape[0], ksize[0], geometry),
        axis_size("width", shape[1], ksize[1], geometry),
    )


def transpose_formula_latex(i: int, k: int, stride: int, padding: int | str) -> str:
    """A transposed convolution's output size o = (i − 1)·s + k − 2p with the numbers filled
    in (two aligned lines); TensorFlow's "same" crops p_before + p_after so that o = i·s.

    Raises like ``cnnlib.conv.ops.transpose_output_size`` when the crop leaves nothing.
    """
    before, after = transpose_pad_amounts(i, k, stride=stride, padding=padding)
    o = transpose_output_size(i, k, stride=stride, padding=padding)
    s = int(stride)
    if padding == "same":
        after_text = str(after) if after >= 0 else f"({after})"  # k < s: zeros appended
        return (
            r"\begin{aligned} o &= (i-1)\,s + k - (p_\text{before} + p_\text{after}) = i\,s \\"
            rf" &= ({i}-1)\cdot{s} + {k} - ({before} + {after_text}) = {i}\cdot{s} = \mathbf{{{o}}}"
            r" \end{aligned}"
        )
    p = before
    return (
        r"\begin{aligned} o &= (i-1)\,s + k - 2p \\"
        rf" &= ({i}-1)\cdot{s} + {k} - 2\cdot{p} = \mathbf{{{o}}} \end{{aligned}}"
    )


# ---------------------------------------------------------------------- one output cell


@dataclass(frozen=True)
class CellExplanation:
    """The arithmetic behind output cell (row, col).

    rows (kh,) and cols (kw,) are the input coordinates each tap reads (outside 0..H−1 or
    0..W−1 means a padding zero); patch, kernel and products are (kh, kw, C) float64.
    """

    row: int
    col: int
    rows: np.ndarray
    cols: np.ndarray
    inside: np.ndarray
    patch: np.ndarray
    kernel: np.ndarray
    products: np.ndarray

    @property
    def total(self) -> float:
        """Σ patch ⊙ kernel over the taps and channels."""
        return float(self.products.sum())

    @property
    def channel_sums(self) -> np.ndarray:
        """(C,) sum of the products in each input channel."""
        return self.products.sum(axis=(0, 1))

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) input coordinates spanned by the taps (inclusive)."""
        return int(self.rows[0]), int(self.cols[0]), int(self.rows[-1]), int(self.cols[-1])


def explain_cell(
    x: np.ndarray, kernel: np.ndarray, geometry: ConvGeometry, *, row: int, col: int
) -> CellExplanation:
    """Patch, kernel, products and sum behind output (row, col) of ``conv2d`` (2-D kernel).

    x: (H, W) or (H, W, C); kernel: (kh, kw), used for every channel as ``conv2d`` does.
    """
    xs = np.asarray(x, dtype=np.float32)
    xs = xs[:, :, None] if xs.ndim == 2 else xs
    k = check_kernel(kernel)
    (kh, kw), (h, w) = k.shape, xs.shape[:2]
    sh, sw = output_sizes((h, w), (kh, kw), geometry)
    stride, dilation = geometry.stride, geometry.dilation
    if not (0 <= row < sh.out and 0 <= col < sw.out):
        raise InvalidArgumentError(
            f"Output position ({row}, {col}) is outside the {sh.out}×{sw.out} output."
        )
    rows = row * stride - sh.before + dilation * np.arange(kh)
    cols = col * stride - sw.before + dilation * np.arange(kw)
    inside = ((rows >= 0) & (rows < h))[:, None] & ((cols >= 0) & (cols < w))[None, :]
    patch = np.zeros((kh, kw, xs.shape[2]), dtype=np.float64)
    rr, cc = np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)
    patch[:] = xs[rr[:, None], cc[None, :]]
    patch[~inside] = 0.0
    k3 = np.repeat(k.astype(np.float64)[:, :, None], xs.shape[2], axis=2)
    return CellExplanation(row, col, rows, cols, inside, patch, k3, patch * k3)


@dataclass(frozen=True)
class ZoomWindow:
    """A crop of the input around one output cell's taps, padding zeros included.

    ``crop`` is (rows, cols) or (rows, cols, C) float32: input rows ``top .. top + rows − 1``
    and columns ``left .. left + cols − 1``; cells outside the image hold 0.
    """

    crop: np.ndarray
    top: int
    left: int

    @property
    def bottom(self) -> int:
        return self.top + self.crop.shape[0] - 1

    @property
    def right(self) -> int:
        return self.left + self.crop.shape[1] - 1


def zoom_window(x: np.ndarray, expl: CellExplanation, margin: int) -> ZoomWindow:
    """The input x (H, W) or (H, W, C) around ``expl``'s taps, ``margin`` cells on each side."""
    xs = np.asarray(x, dtype=np.float32)
    r0, r1 = int(expl.rows[0]) - margin, int(expl.rows[-1]) + margin
    q0, q1 = int(expl.cols[0]) - margin, int(expl.cols[-1]) + margin
    h, w = xs.shape[:2]
    crop = np.zeros((r1 - r0 + 1, q1 - q0 + 1, *xs.shape[2:]), dtype=np.float32)
    rr0, rr1, qq0, qq1 = max(r0, 0), min(r1, h - 1), max(q0, 0), min(q1, w - 1)
    if rr0 <= rr1 and qq0 <= qq1:
        crop[rr0 - r0 : rr1 - r0 + 1, qq0 - q0 : qq1 - q0 + 1] = xs[rr0 : rr1 + 1, qq0 : qq1 + 1]
    return ZoomWindow(crop, r0, q0)


def agrees(by_hand: float, computed: float) -> bool:
    """Whether a hand-made sum equals ``conv2d``'s value up to float32 rounding
    (|a − b| ≤ ``AGREEMENT_RTOL``·max(1, |b|))."""
    return abs(by_hand - computed) <= AGREEMENT_RTOL * max(1.0, abs(computed))


# ----------------------------------------------------------------------- small-grid view


@dataclass(frozen=True)
class SmallGrid(_PaddedAxis):
    """A tiny n×n input and k×k kernel under the lab's padding, stride and dilation.

    Coordinates are in the padded grid (size ``padded``): the image occupies rows and
    columns ``before .. before + n − 1``.
    """

    n: int
    k: int
    geometry: ConvGeometry
    before: int
    after: int
    out: int

    @property
    def positions(self) -> int:
        """Number of output cells (row-major order is the stepping order)."""
        return self.out * self.out

    def output_cell(self, position: int) -> tuple[int, int]:
        """Output (row, col) of step ``position`` (row-major)."""
        if not 0 <= position < self.positions:
            raise InvalidArgumentError(f"Step must be 0–{self.positions - 1}, got {position}.")
        return divmod(position, self.out)

    def feeds(self, position: int) -> list[tuple[int, int]]:
        """Padded (row, col) of the k·k input cells that feed step ``position``, tap order."""
        r, c = self.output_cell(position)
        return [
            (r * self.stride + i * self.dilation, c * self.stride + j * self.dilation)
            for i in range(self.k)
            for j in range(self.k)
        ]

    def is_padding(self, row: int, col: int) -> bool:
        """Whether padded cell (row, col) is a padding zero rather than an image cell."""
        lo, hi = self.before, self.before + self.n
        return not (lo <= row < hi and lo <= col < hi)

    def equation(self, position: int) -> str:
        """LaTeX of step ``position``: y[r, c] = Σ w[i, j]·x[…] with padding cells as 0."""
        r, c = self.output_cell(position)
        terms = []
        for t, (pr, pc) in enumerate(self.feeds(position)):
            i, j = divmod(t, self.k)
            if self.is_padding(pr, pc):
                terms.append(rf"w_{{{i}{j}}}\cdot 0")
            else:
                terms.append(rf"w_{{{i}{j}}}\,x_{{{pr - self.before},{pc - self.before}}}")
        return rf"y_{{{r},{c}}} = " + " + ".join(terms)

    def cells(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """What each padded input cell is at step ``position``, and its label.

        Returns kinds (padded, padded) int8 — ``GRID_PADDING`` (a padding zero),
        ``GRID_INPUT`` (an image cell), ``GRID_FED_PADDING`` / ``GRID_FED_INPUT`` (read by
        this step's taps) — and labels (padded, padded) str: "0", "x{r},{c}" (image
        coordinates) or "w{i},{j}" (the tap reading the cell).
        """
        kinds = np.full((self.padded, self.padded), GRID_PADDING, dtype=np.int8)
        labels = np.full((self.padded, self.padded), "0", dtype=object)
        inner = slice(self.before, self.before + self.n)
        kinds[inner, inner] = GRID_INPUT
        for r in range(self.n):
            for c in range(self.n):
                labels[self.before + r, self.before + c] = f"x{r},{c}"
        for t, (r, c) in enumerate(self.feeds(position)):
            kinds[r, c] = GRID_FED_PADDING if self.is_padding(r, c) else GRID_FED_INPUT
            labels[r, c] = "w{},{}".format(*divmod(t, self.k))
        return kinds, labels.astype(str)

    def progress(self, position: int) -> np.ndarray:
        """(out, out) int8: 0 not yet computed, 1 done, 2 the current step (row-major order)."""
        done = np.zeros((self.out, self.out), dtype=np.int8)
        done.flat[:position] = 1
        done[self.output_cell(position)] = 2
        return done


#: Kinds of small-grid input cells (``SmallGrid.cells``).
GRID_PADDING, GRID_INPUT, GRID_FED_PADDING, GRID_FED_INPUT = 0, 1, 2, 3


def small_grid(n: int, k: int, geometry: ConvGeometry) -> SmallGrid:
    """The small-grid view's geometry; raises ``InvalidArgumentError`` when k does not fit."""
    dilation = geometry.dilation
    try:
        size = axis_size("height", n, k, geometry)
    except InvalidArgumentError:
        k_eff = effective_kernel_size(k, dilation)
        raise InvalidArgumentError(
            f"A {k}×{k} kernel with dilation {dilation} spans {k_eff}×{k_eff} cells, more than "
            f"the padded {n}×{n} grid. Make the grid bigger, the kernel smaller, or add padding."
        ) from None
    return SmallGrid(n, k, geometry, size.before, size.after, size.out)


# --------------------------------------------------------------------------- filter bank


def filter_bank(kernel_list: Sequence[np.ndarray], channels: int) -> np.ndarray:
    """Stack 2-D kernels into one Conv2D weight tensor (kh, kw, C, F) float32.

    Smaller kernels are zero-padded (centred) to the largest height and width, since one
    layer has one kernel size; each 2-D kernel is used for all ``channels``.
    """
    if not kernel_list:
        raise InvalidArgumentError("Choose at least one kernel for the filter bank.")
    ks = [check_kernel(k) for k in kernel_list]
    kh, kw = max(k.shape[0] for k in ks), max(k.shape[1] for k in ks)
    stack = np.stack([kernels.resize_kernel(k, (kh, kw)) for k in ks], axis=-1)  # (kh, kw, F)
    return np.ascontiguousarray(
        np.repeat(stack[:, :, None, :], int(channels), axis=2), dtype=np.float32
    )


def conv_layer_params(kh: int, kw: int, channels: int, filters: int) -> tuple[int, int]:
    """(weights, biases) of a Conv2D layer: kh·kw·C·F weights and F biases."""
    return kh * kw * channels * filters, filters


def keras_layers(
    filters: int,
    ksize: tuple[int, int],
    in_shape: tuple[int, int],
    geometry: ConvGeometry,
) -> tuple[str, str | None]:
    """Keras code for the same layer (no bias), and a note when Keras cannot build it.

    "full" and explicit padding become ``ZeroPadding2D`` then ``padding="valid"``: Keras'
    ``Conv2D`` only knows "valid" and "same". Keras refuses strides > 1 together with
    dilation_rate > 1 (``tf.nn.conv2d`` and ``conv2d`` compute it).
    """
    kh, kw = ksize
    padding, stride, dilation = geometry.padding, geometry.stride, geometry.dilation
    lines = []
    mode = padding if padding in ("valid", "same") else "valid"
    if mode != padding:
        (pt, pb), (pl, pr) = (
            pad_amounts(in_shape[0], kh, **geometry.kwargs),
            pad_amounts(in_shape[1], kw, **geometry.kwargs),
        )
        lines.append(f"keras.layers.ZeroPadding2D((({pt}, {pb}), ({pl}, {pr}))),")
    lines.append(
        f'keras.layers.Conv2D({filters}, ({kh}, {kw}), strides={stride}, padding="{mode}", '
        f"dilation_rate={dilation}, use_bias=False),"
    )
    note = None
    if stride > 1 and dilation > 1:
        note = (
            "Keras' Conv2D layer refuses strides > 1 together with dilation_rate > 1; "
            "tf.nn.conv2d and this lab compute it (every stride-th position of the dilated "
            "kernel)."
        )
    return "\n".join(lines), note


def display_map(a: np.ndarray, max_side: int, *, how: str = "absmax") -> tuple[np.ndarray, int]:
    """Shrink an (H, W) or (H, W, C) array for drawing only: returns (array, f).

    f = ⌈max(H, W) / max_side⌉; each f×f block becomes one cell holding the value of largest
    magnitude (``how="absmax"``: thin edges and signs survive) or the block mean
    (``how="mean"``, for images). f = 1 returns ``a`` unchanged. Edge blocks are padded by
    repeating the last row/column. Cell (i, j) stands for input cells (i·f…, j·f…).
    """
    a = np.asarray(a)
    h, w = a.shape[:2]
    f = max(1, -(-max(h, w) // int(max_side)))
    if f == 1:
        return a, 1
    if how not in ("absmax", "mean"):
        raise InvalidArgumentError(f"how must be 'absmax' or 'mean', got {how!r}.")
    hb, wb = -(-h // f), -(-w // f)
    if (hb * f, wb * f) != (h, w):
        pad = [(0, hb * f - h), (0, wb * f - w)] + [(0, 0)] * (a.ndim - 2)
        a = np.pad(a, pad, mode="edge")
    parts = [a[i::f, j::f] for i in range(f) for j in range(f)]  # each (hb, wb, ...)
    if how == "mean":
        total = np.array(parts[0], dtype=np.float32)
        for part in parts[1:]:
            total += part
        return total / (f * f), f
    hi, lo = np.array(parts[0]), np.array(parts[0])
    for part in parts[1:]:
        np.maximum(hi, part, out=hi)
        np.minimum(lo, part, out=lo)
    return np.where(hi >= -lo, hi, lo), f


def symmetric_limit(arr: np.ndarray) -> float:
    """max |value| of ``arr`` (1.0 for an all-zero array), for a colour scale centred on 0."""
    m = float(np.max(np.abs(arr))) if np.size(arr) else 0.0
    return m if m > 0 and math.isfinite(m) else 1.0


# ------------------------------------------------------------------------ TensorFlow check


@dataclass(frozen=True)
class TensorFlowCheck:
    """Our output against ``tf.nn.conv2d`` on the same input: shapes and max |difference|."""

    ours_shape: tuple[int, ...]
    tf_shape: tuple[int, ...]
    max_abs_diff: float
    max_abs_value: float
    tf_seconds: float
    tf_version: str


def _tf_padding(shape, ksize, geometry: ConvGeometry):
    if geometry.padding in ("valid", "same"):
        return geometry.padding.upper()
    pads = [pad_amounts(shape[a], ksize[a], **geometry.kwargs) for a in (0, 1)]
    return [[0, 0], list(pads[0]), list(pads[1]), [0, 0]]


def tensorflow_conv2d(x: np.ndarray, kernel: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """The same convolution computed by ``tf.nn.conv2d`` (imports TensorFlow; slow first call).

    x (H, W) or (H, W, C); kernel (kh, kw), (kh, kw, C) or (kh, kw, C, F). Returns (H′, W′, F)
    float32; "full" and explicit padding become TensorFlow's explicit padding list.
    """
    import tensorflow as tf

    xs = np.asarray(x, dtype=np.float32)
    xs = xs[:, :, None] if xs.ndim == 2 else xs
    k = np.asarray(kernel, dtype=np.float32)
    if k.ndim == 2:
        k = np.repeat(k[:, :, None], xs.shape[2], axis=2)
    if k.ndim == 3:
        k = k[..., None]
    pad = _tf_padding(xs.shape[:2], k.shape[:2], geometry)
    y = tf.nn.conv2d(xs[None], k, strides=geometry.stride, padding=pad, dilations=geometry.dilation)
    return y.numpy()[0]


def tensorflow_check(x: np.ndarray, kernel: np.ndarray, geometry: ConvGeometry) -> TensorFlowCheck:
    """Run ``conv2d`` and ``tf.nn.conv2d`` on the same input and compare (imports TensorFlow)."""
    import tensorflow as tf

    ours = conv2d(x, kernel, **geometry.kwargs)
    start = time.perf_counter()
    theirs = tensorflow_conv2d(x, kernel, geometry)
    return _compare(ours, theirs, time.perf_counter() - start, tf.__version__)


def _compare(ours: np.ndarray, theirs: np.ndarray, seconds: float, version: str) -> TensorFlowCheck:
    """Our (H′, W′) or (H′, W′, F) result against TensorFlow's (H′, W′, F)."""
    ours = ours[:, :, None] if ours.ndim == 2 else ours
    if ours.shape != theirs.shape:
        diff = math.inf
    else:
        diff = float(np.max(np.abs(ours.astype(np.float64) - theirs))) if ours.size else 0.0
    top = float(np.max(np.abs(theirs))) if theirs.size else 0.0
    return TensorFlowCheck(tuple(ours.shape), tuple(theirs.shape), diff, top, seconds, version)


def tensorflow_transpose_check(
    x: np.ndarray, kernel: np.ndarray, stride: int, padding: int | str
) -> TensorFlowCheck:
    """``conv2d_transpose`` of the (H, W) image ``x`` with the (kh, kw) ``kernel`` against
    ``tf.nn.conv2d_transpose`` (imports TensorFlow); an int ``padding`` crops p cells per side
    (TensorFlow's explicit padding)."""
    import tensorflow as tf

    ours = conv2d_transpose(x, kernel, stride=stride, padding=padding)
    p = padding
    tf_padding = p.upper() if isinstance(p, str) else [[0, 0], [p, p], [p, p], [0, 0]]
    start = time.perf_counter()
    y = tf.nn.conv2d_transpose(
        np.asarray(x, np.float32)[None, :, :, None],
        np.asarray(kernel, np.float32)[:, :, None, None],
        output_shape=[1, *ours.shape[:2], 1],
        strides=[1, stride, stride, 1],
        padding=tf_padding,
    )
    return _compare(ours, y.numpy()[0], time.perf_counter() - start, tf.__version__)
