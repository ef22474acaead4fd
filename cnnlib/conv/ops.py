"""Hand-made 2-D convolution (cross-correlation, as Keras ``Conv2D``) with NumPy.

Shapes follow Keras: images are (H, W) or (H, W, C), kernels (kh, kw), (kh, kw, C) or
(kh, kw, C, F). Padding is "valid", "same" (TensorFlow's split: the odd extra row/column
goes to the bottom/right), "full" (every partial overlap) or an explicit number of zero
rows/columns on each side. No TensorFlow here: tests compare against ``tf.nn.conv2d``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cnnlib.core.errors import InvalidArgumentError

PaddingMode = Literal["valid", "same", "full"]
Padding = PaddingMode | int | tuple[int, int]
IntOrPair = int | tuple[int, int]

PADDING_MODES: tuple[str, ...] = ("valid", "same", "full")


@dataclass(frozen=True)
class ConvGeometry:
    """How a kernel slides: padding ("valid", "same", "full" or p ≥ 0 zeros on each side),
    stride and dilation (the same along both axes). Hashable, so it can key a cache.

    ``conv2d(x, k, **g.kwargs)`` is the same as passing the three keywords by hand.
    """

    padding: PaddingMode | int = "valid"
    stride: int = 1
    dilation: int = 1

    @property
    def kwargs(self) -> dict[str, object]:
        """``{"padding": ..., "stride": ..., "dilation": ...}`` for the keyword APIs."""
        return {"padding": self.padding, "stride": self.stride, "dilation": self.dilation}


def _pair(value: IntOrPair, name: str, *, minimum: int) -> tuple[int, int]:
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be an integer or a pair of integers, not a bool.")
    if isinstance(value, int | np.integer):
        pair = (int(value), int(value))
    elif isinstance(value, tuple | list) and len(value) == 2:
        if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value):
            raise InvalidArgumentError(f"{name} must hold integers, got {value!r}.")
        pair = (int(value[0]), int(value[1]))
    else:
        raise InvalidArgumentError(
            f"{name} must be an integer or a pair of integers, got {value!r}."
        )
    if min(pair) < minimum:
        raise InvalidArgumentError(f"{name} must be at least {minimum}, got {value!r}.")
    return pair


def effective_kernel_size(k: int, dilation: int = 1) -> int:
    """Span of a dilated kernel in pixels: d·(k − 1) + 1."""
    return dilation * (k - 1) + 1


def pad_amounts(
    n: int, k: int, *, padding: PaddingMode | int, stride: int = 1, dilation: int = 1
) -> tuple[int, int]:
    """Zero rows (or columns) added (before, after) along one axis of length ``n``.

    "same" follows TensorFlow: the output has ⌈n/s⌉ cells and the total padding
    max((o − 1)·s + d·(k − 1) + 1 − n, 0) is split with the odd extra one *after*.
    """
    n, k = int(n), int(k)
    if n < 1 or k < 1:
        raise InvalidArgumentError(
            f"Input size and kernel size must be at least 1, got {n} and {k}."
        )
    (stride, _), (dilation, _) = (
        _pair(stride, "stride", minimum=1),
        _pair(dilation, "dilation", minimum=1),
    )
    k_eff = effective_kernel_size(k, dilation)
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "full":
            return k_eff - 1, k_eff - 1
        if padding == "same":
            out = -(-n // stride)
            total = max((out - 1) * stride + k_eff - n, 0)
            return total // 2, total - total // 2
        raise InvalidArgumentError(
            f"Padding must be 'valid', 'same', 'full' or a number of pixels, got {padding!r}."
        )
    (p, _) = _pair(padding, "padding", minimum=0)
    return p, p


def output_size(
    n: int, k: int, *, padding: PaddingMode | int = "valid", stride: int = 1, dilation: int = 1
) -> int:
    """Output length along one axis: ⌊(n + p_before + p_after − d·(k − 1) − 1)/s⌋ + 1.

    Raises ``InvalidArgumentError`` when the (dilated) kernel does not fit in the padded input.
    """
    before, after = pad_amounts(n, k, padding=padding, stride=stride, dilation=dilation)
    k_eff = effective_kernel_size(k, dilation)
    padded = n + before + after
    if padded < k_eff:
        raise InvalidArgumentError(
            f"The kernel spans {k_eff} pixels (size {k}, dilation {dilation}) but the padded input "
            f"is only {padded} pixels wide. Use a smaller kernel or dilation, or more padding."
        )
    return (padded - k_eff) // stride + 1


def dropped_cells(
    n: int, k: int, *, padding: PaddingMode | int = "valid", stride: int = 1, dilation: int = 1
) -> int:
    """How many trailing padded rows/columns no kernel position reaches (lost to the floor)."""
    before, after = pad_amounts(n, k, padding=padding, stride=stride, dilation=dilation)
    o = output_size(n, k, padding=padding, stride=stride, dilation=dilation)
    return n + before + after - ((o - 1) * stride + effective_kernel_size(k, dilation))


def _as_hwc(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        return x[:, :, None]
    if x.ndim == 3:
        return x
    raise InvalidArgumentError(
        f"The image must be 2-D (H, W) or 3-D (H, W, C); got shape {x.shape}."
    )


def _as_kernel4(kernel: np.ndarray, channels: int) -> np.ndarray:
    """(kh, kw) | (kh, kw, C) | (kh, kw, C, F) → (kh, kw, C, F) float32.

    A 2-D kernel on a C-channel image is used for every channel (one filter spanning all
    channels, as a Conv2D filter does).
    """
    k = np.asarray(kernel, dtype=np.float32)
    if k.ndim == 2:
        k = np.repeat(k[:, :, None], channels, axis=2)
    if k.ndim == 3:
        k = k[..., None]
    if k.ndim != 4:
        raise InvalidArgumentError(
            f"The kernel must be (kh, kw), (kh, kw, C) or (kh, kw, C, F); got shape {k.shape}."
        )
    if min(k.shape) < 1:
        raise InvalidArgumentError(f"The kernel has an empty dimension: shape {k.shape}.")
    if k.shape[2] != channels:
        raise InvalidArgumentError(
            f"The kernel has {k.shape[2]} input channels but the image has {channels}. "
            "They must match."
        )
    if not np.all(np.isfinite(k)):
        raise InvalidArgumentError(
            "The kernel contains NaN or infinite values; use finite numbers."
        )
    return k


def _padding_pairs(
    shape: tuple[int, int], ksize: tuple[int, int], padding: Padding, stride, dilation
) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(padding, tuple | list):
        ph, pw = _pair(padding, "padding", minimum=0)
        per_axis: tuple = (ph, pw)
    else:
        per_axis = (padding, padding)
    return tuple(
        pad_amounts(shape[a], ksize[a], padding=per_axis[a], stride=stride[a], dilation=dilation[a])
        for a in (0, 1)
    )  # type: ignore[return-value]


#: Elements of the im2col matrix (or accumulator) handled per band of output rows, so that
#: each band stays in the CPU cache.
_BAND_ELEMENTS = 1 << 18

_blas_lock = threading.Lock()
_blas_users = 0
_blas_state: dict[str, object] = {}


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Run BLAS on one thread inside the block (process-wide, reference-counted).

    The band products here, (n × kh·kw·C)·(kh·kw·C × F), are thin and memory-bound: extra
    OpenBLAS threads barely help on an idle machine and, because they spin while waiting,
    slow them down several times over on a busy one (512×512×3 with 8 3×3 filters: 17 ms on
    one thread, 72 ms on two, while other processes ran). Concurrent calls share one limit;
    the original thread count returns when the last one leaves.
    """
    global _blas_users
    with _blas_lock:
        if _blas_users == 0:
            if "controller" not in _blas_state:
                from threadpoolctl import ThreadpoolController

                _blas_state["controller"] = ThreadpoolController()
            _blas_state["limiter"] = _blas_state["controller"].limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_state.pop("limiter").restore_original_limits()


def _phases(xp: np.ndarray, sh: int, sw: int, rows: int, cols: int) -> np.ndarray:
    """Polyphase split of the padded image: (sh, sw, C, rows·cols) float32, zero-filled.

    Phase (a, b) holds ``xp[a::sh, b::sw]`` channel-first, so that a stride-s convolution
    becomes a sum of stride-1 reads at constant offsets in one flat, contiguous array.
    """
    c = xp.shape[2]
    ph = np.zeros((sh, sw, c, rows, cols), dtype=np.float32)
    for a in range(sh):
        for b in range(sw):
            part = xp[a::sh, b::sw]
            ph[a, b, :, : part.shape[0], : part.shape[1]] = part.transpose(2, 0, 1)
    return ph.reshape(sh, sw, c, rows * cols)


def _conv_single(
    xp: np.ndarray,
    k4: np.ndarray,
    ho: int,
    wo: int,
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """One channel, one filter: valid cross-correlation of the padded ``xp`` (Hp, Wp, 1)
    → (ho, wo, 1) float32, as one multiply-accumulate of a contiguous slice per tap.

    Output row r, column q, tap (i, j) reads ``xp[r·sh + i·dh, q·sw + j·dw]``, which is
    element (r + i·dh // sh, q + j·dw // sw) of phase (i·dh % sh, j·dw % sw). On a grid
    ``width`` columns wide, every tap is then one contiguous slice; the few columns past
    ``wo`` are computed and cropped.
    """
    kh, kw, _, _ = k4.shape
    (sh, sw), (dh, dw) = stride, dilation
    width = -(-xp.shape[1] // sw)
    rows = -(-xp.shape[0] // sh) + 1  # one spare row: the last taps read past the end
    flat = _phases(xp, sh, sw, rows, width)
    taps = [
        ((i * dh) % sh, (j * dw) % sw, (i * dh) // sh * width + (j * dw) // sw)
        for i in range(kh)
        for j in range(kw)
    ]
    weights = k4.reshape(kh * kw)
    n_total = ho * width
    out = np.empty(n_total, dtype=np.float32)
    for n0 in range(0, n_total, _BAND_ELEMENTS):
        n1 = min(n_total, n0 + _BAND_ELEMENTS)
        acc = np.zeros(n1 - n0, dtype=np.float32)
        tmp = np.empty_like(acc)
        for t, (a, b, off) in enumerate(taps):
            if weights[t] != 0.0:
                np.multiply(flat[a, b, 0, n0 + off : n1 + off], weights[t], out=tmp)
                acc += tmp
        out[n0:n1] = acc
    return out.reshape(ho, width, 1)[:, :wo]


def _conv_im2col(
    x: np.ndarray,
    k4: np.ndarray,
    pads: tuple[tuple[int, int], tuple[int, int]],
    ho: int,
    wo: int,
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """Several channels or filters: (H, W, C) → (ho, wo, F) float32.

    One channel-first, zero-padded copy of the image (only the rows and columns some tap
    reads), split by column into ``sw`` phases (phase b holds padded columns b, b + sw, …),
    then, per band of output rows, im2col — each tap's columns are one contiguous run of its
    phase, its rows a strided slice, so it reads only the positions the stride visits — and
    one matrix product (kh·kw·C → F).
    """
    (pt, _), (pl, _) = pads
    h, w, c = x.shape
    kh, kw, _, f = k4.shape
    (sh, sw), (dh, dw) = stride, dilation
    hp, wp = (ho - 1) * sh + (kh - 1) * dh + 1, (wo - 1) * sw + (kw - 1) * dw + 1
    xph = np.zeros((sw, c, hp, -(-wp // sw)), dtype=np.float32)  # (phase, C, rows, columns)
    rows = max(0, min(h, hp - pt))
    for b in range(sw):
        q0 = (b - pl) % sw  # the first image column that lands in phase b
        n = len(range(q0, min(w, wp - pl), sw))
        if rows and n:
            d0 = (q0 + pl) // sw
            part = x[:rows, q0 : q0 + sw * (n - 1) + 1 : sw]  # (rows, n, C)
            xph[b, :, pt : pt + rows, d0 : d0 + n] = part.transpose(2, 0, 1)
    k = kh * kw * c
    w2 = k4.reshape(k, f)
    out = np.empty((ho * wo, f), dtype=np.float32)
    band = max(1, min(ho, _BAND_ELEMENTS // (k * wo)))  # output rows per band
    buffer = np.empty((k, band * wo), dtype=np.float32)
    with _single_threaded_blas():
        for r0 in range(0, ho, band):
            r1 = min(ho, r0 + band)
            n = (r1 - r0) * wo
            grid = buffer[:, :n].reshape(k, r1 - r0, wo)
            t = 0
            for i in range(kh):
                top = i * dh + r0 * sh
                for j in range(kw):
                    b, left = (j * dw) % sw, (j * dw) // sw
                    grid[t : t + c] = xph[
                        b, :, top : top + sh * (r1 - r0 - 1) + 1 : sh, left : left + wo
                    ]
                    t += c
            np.matmul(buffer[:, :n].T, w2, out=out[r0 * wo : r1 * wo])
    return out.reshape(ho, wo, f)


def conv2d(
    x: np.ndarray,
    kernel: np.ndarray,
    *,
    padding: Padding = "valid",
    stride: IntOrPair = 1,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    """Cross-correlate an image with a kernel exactly as Keras ``Conv2D`` (no flip, no bias).

    x: (H, W) or (H, W, C). kernel: (kh, kw), (kh, kw, C) or (kh, kw, C, F).
    Returns float32 (H′, W′) for a 2-D or 3-D kernel, (H′, W′, F) for a 4-D one, where
    H′ = ``output_size(H, kh, ...)``. Only the output positions the stride visits are computed.
    Stride > 1 together with dilation > 1 is computed too (``tf.nn.conv2d`` agrees; only
    Keras' ``Conv2D`` layer refuses that combination).
    Raises ``InvalidArgumentError`` (a ``ValueError``) for bad shapes or arguments.
    """
    xs = _as_hwc(x)
    if not np.all(np.isfinite(xs)):
        raise InvalidArgumentError("The image contains NaN or infinite values.")
    k4 = _as_kernel4(kernel, xs.shape[2])
    squeeze = np.ndim(kernel) < 4
    sh, sw = _pair(stride, "stride", minimum=1)
    dh, dw = _pair(dilation, "dilation", minimum=1)
    kh, kw = k4.shape[:2]
    (pt, pb), (pl, pr) = _padding_pairs(xs.shape[:2], (kh, kw), padding, (sh, sw), (dh, dw))
    h_pad, w_pad = xs.shape[0] + pt + pb, xs.shape[1] + pl + pr
    keh, kew = effective_kernel_size(kh, dh), effective_kernel_size(kw, dw)
    if h_pad < keh or w_pad < kew:
        raise InvalidArgumentError(
            f"The kernel spans {keh}×{kew} pixels (size {kh}×{kw}, dilation {dh}×{dw}) but the "
            f"padded image is only {h_pad}×{w_pad}. Use a smaller kernel or dilation, or more "
            "padding."
        )
    ho, wo = (h_pad - keh) // sh + 1, (w_pad - kew) // sw + 1
    if k4.shape[2] * k4.shape[3] == 1:
        xp = np.pad(xs, ((pt, pb), (pl, pr), (0, 0))) if pt or pb or pl or pr else xs
        out = _conv_single(xp, k4, ho, wo, (sh, sw), (dh, dw))
    else:
        out = _conv_im2col(xs, k4, ((pt, pb), (pl, pr)), ho, wo, (sh, sw), (dh, dw))
    return out[:, :, 0] if squeeze else out


def relu(x: np.ndarray) -> np.ndarray:
    """Rectified linear unit, max(x, 0), same shape and dtype."""
    return np.maximum(x, 0)


def _pool(x: np.ndarray, pool: int, stride: int | None, kind: str) -> np.ndarray:
    """Pooling as a running max/sum over the pool's p×p offsets, each a strided slice."""
    x = np.asarray(x)
    if x.ndim not in (2, 3):
        raise InvalidArgumentError(f"Pooling needs (H, W) or (H, W, C); got shape {x.shape}.")
    (p, _) = _pair(pool, "pool size", minimum=1)
    (s, _) = _pair(stride if stride is not None else p, "pool stride", minimum=1)
    h, w = x.shape[:2]
    if h < p or w < p:
        raise InvalidArgumentError(f"A {p}×{p} pool does not fit in a {h}×{w} map.")
    ho, wo = (h - p) // s + 1, (w - p) // s + 1
    dtype = x.dtype if kind == "max" or np.issubdtype(x.dtype, np.floating) else np.float64
    acc = np.array(x[: s * (ho - 1) + 1 : s, : s * (wo - 1) + 1 : s], dtype=dtype)
    for i in range(p):
        for j in range(p):
            if i == j == 0:
                continue
            part = x[i : i + s * (ho - 1) + 1 : s, j : j + s * (wo - 1) + 1 : s]
            if kind == "max":
                np.maximum(acc, part, out=acc)
            else:
                acc += part
    if kind == "avg":
        acc /= p * p
    return acc


def max_pool2d(x: np.ndarray, pool: int = 2, stride: int | None = None) -> np.ndarray:
    """Max pooling, "valid" as Keras ``MaxPooling2D``: (H, W[, C]) → (⌊(H−p)/s⌋+1, ..., [C])."""
    return _pool(x, pool, stride, "max")


def avg_pool2d(x: np.ndarray, pool: int = 2, stride: int | None = None) -> np.ndarray:
    """Average pooling, "valid" as Keras ``AveragePooling2D``; shapes as ``max_pool2d``."""
    return _pool(x, pool, stride, "avg")


# ------------------------------------------------------------------- transposed convolution
#
# A transposed convolution runs a convolution backwards: every input cell *writes* a copy of
# the kernel, scaled by its value, into the output, and the copies of neighbouring cells sit
# ``stride`` apart, so they overlap (and add up) where the kernel is longer than the stride.
# It is the gradient of ``conv2d`` with respect to its input, which is exactly how
# ``tf.nn.conv2d_transpose`` defines it. Padding crops the full output instead of padding the
# input.

TransposePadding = Literal["valid", "same"] | int


def transpose_pad_amounts(
    i: int, k: int, *, stride: int = 1, padding: TransposePadding = "valid"
) -> tuple[int, int]:
    """Cells cropped (before, after) from the full output, (i − 1)·s + k long, on one axis.

    "valid" crops nothing; an int p crops p on each side; "same" is TensorFlow's: the output
    has i·s cells and the crop is the padding a "same" ``conv2d`` of that output would add,
    max(k − s, 0) split with the odd one after (a negative ``after`` means zeros appended,
    when k < s).
    """
    i, k = int(i), int(k)
    if i < 1 or k < 1:
        raise InvalidArgumentError(
            f"Input size and kernel size must be at least 1, got {i} and {k}."
        )
    (s, _) = _pair(stride, "stride", minimum=1)
    full = (i - 1) * s + k
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same":
            before = max(k - s, 0) // 2
            return before, full - i * s - before
        raise InvalidArgumentError(
            f"Transposed convolutions take padding 'valid', 'same' or a number of cells, "
            f"got {padding!r}."
        )
    (p, _) = _pair(padding, "padding", minimum=0)
    if full - 2 * p < 1:
        raise InvalidArgumentError(
            f"Cropping {p} cells from each side of a {full}-cell output leaves nothing. "
            f"Use at most {(full - 1) // 2} cells of padding."
        )
    return p, p


def transpose_output_size(
    i: int, k: int, *, stride: int = 1, padding: TransposePadding = "valid"
) -> int:
    """Output length of a transposed convolution on one axis: o = (i − 1)·s + k − 2p.

    "valid" is p = 0; TensorFlow's "same" gives o = i·s.
    """
    before, after = transpose_pad_amounts(i, k, stride=stride, padding=padding)
    (s, _) = _pair(stride, "stride", minimum=1)
    return (int(i) - 1) * s + int(k) - before - after


def _as_transpose_kernel(kernel: np.ndarray, channels: int) -> np.ndarray:
    """(kh, kw) | (kh, kw, F, C) → (kh, kw, F, C) float32, as ``tf.nn.conv2d_transpose``."""
    k = np.asarray(kernel, dtype=np.float32)
    if k.ndim == 2:
        if channels != 1:
            raise InvalidArgumentError(
                f"A (kh, kw) kernel takes a one-channel image, but this one has {channels} "
                "channels. Use a (kh, kw, F, C) kernel with C = the image's channels."
            )
        k = k[:, :, None, None]
    if k.ndim != 4:
        raise InvalidArgumentError(
            f"The kernel must be (kh, kw) or (kh, kw, F, C); got shape {k.shape}."
        )
    if min(k.shape) < 1:
        raise InvalidArgumentError(f"The kernel has an empty dimension: shape {k.shape}.")
    if k.shape[3] != channels:
        raise InvalidArgumentError(
            f"The kernel's last axis takes {k.shape[3]} input channels but the image has "
            f"{channels}. In a transposed convolution's kernel (kh, kw, F, C) C comes last."
        )
    if not np.all(np.isfinite(k)):
        raise InvalidArgumentError(
            "The kernel contains NaN or infinite values; use finite numbers."
        )
    return k


def conv2d_transpose(
    x: np.ndarray,
    kernel: np.ndarray,
    *,
    stride: IntOrPair = 1,
    padding: TransposePadding = "valid",
) -> np.ndarray:
    """Transposed convolution, equal to ``tf.nn.conv2d_transpose`` (no bias).

    x: (H, W) or (H, W, C). kernel: (kh, kw) for a one-channel image, or (kh, kw, F, C) as in
    ``tf.nn.conv2d_transpose`` (output channels F before input channels C).
    Returns float32 (H′, W′) for a 2-D kernel, (H′, W′, F) for a 4-D one, with
    H′ = ``transpose_output_size(H, kh, stride=sh, padding=padding)``.
    Input cell (r, c) adds ``x[r, c] · kernel`` at output (r·sh − p_top, c·sw − p_left).
    """
    xs = _as_hwc(x)
    if not np.all(np.isfinite(xs)):
        raise InvalidArgumentError("The image contains NaN or infinite values.")
    k4 = _as_transpose_kernel(kernel, xs.shape[2])
    sh, sw = _pair(stride, "stride", minimum=1)
    h, w, _ = xs.shape
    kh, kw, f, _ = k4.shape
    pt, pb = transpose_pad_amounts(h, kh, stride=sh, padding=padding)
    pl, pr = transpose_pad_amounts(w, kw, stride=sw, padding=padding)
    full_h, full_w = (h - 1) * sh + kh, (w - 1) * sw + kw
    # Room for a negative crop (TensorFlow's "same" with k < s appends zeros).
    full = np.zeros((max(full_h, full_h - pb), max(full_w, full_w - pr), f), dtype=np.float32)
    for a in range(kh):
        for b in range(kw):
            # (H, W, C) @ (C, F): what every input cell writes through tap (a, b).
            full[a : a + sh * (h - 1) + 1 : sh, b : b + sw * (w - 1) + 1 : sw] += xs @ k4[a, b].T
    out = full[pt : full_h - pb, pl : full_w - pr]
    return out[:, :, 0] if np.ndim(kernel) == 2 else out


@dataclass(frozen=True)
class TransposeGrid:
    """Which output cells each input cell of a transposed convolution writes to.

    ``counts`` (H′, W′) int: how many (input cell, kernel tap) pairs add into each output
    cell. Where the kernel size is not a multiple of the stride, neighbouring counts differ:
    the checkerboard pattern of transposed convolutions.
    """

    input_shape: tuple[int, int]
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: TransposePadding
    #: Cells cropped from the full output at the top and left.
    crop: tuple[int, int]
    output_shape: tuple[int, int]
    counts: np.ndarray

    def feeds(self, row: int, col: int) -> tuple[range, range]:
        """Output rows and columns (kept after cropping) that input cell (row, col) writes."""
        h, w = self.input_shape
        if not (0 <= row < h and 0 <= col < w):
            raise InvalidArgumentError(f"Input cell ({row}, {col}) is outside the {h}×{w} input.")
        spans = []
        for start, k, crop, size in (
            (row * self.stride[0], self.kernel_size[0], self.crop[0], self.output_shape[0]),
            (col * self.stride[1], self.kernel_size[1], self.crop[1], self.output_shape[1]),
        ):
            lo, hi = max(start - crop, 0), min(start - crop + k, size)
            spans.append(range(lo, max(lo, hi)))
        return spans[0], spans[1]

    @property
    def uneven(self) -> bool:
        """True when some kernel size is not a multiple of its stride (a checkerboard)."""
        return any(k % s for k, s in zip(self.kernel_size, self.stride, strict=True))


def transpose_grid(
    input_shape: tuple[int, int],
    kernel_size: IntOrPair,
    *,
    stride: IntOrPair = 1,
    padding: TransposePadding = "valid",
) -> TransposeGrid:
    """The ``TransposeGrid`` of an (H, W) input and a (kh, kw) kernel (pure NumPy)."""
    h, w = _pair(tuple(input_shape), "input shape", minimum=1)
    kh, kw = _pair(kernel_size, "kernel size", minimum=1)
    sh, sw = _pair(stride, "stride", minimum=1)
    if h * w * kh * kw > 1 << 22:
        raise InvalidArgumentError(
            f"A {h}×{w} input with a {kh}×{kw} kernel is too large to draw; use a smaller grid."
        )
    counts = conv2d_transpose(
        np.ones((h, w), np.float32), np.ones((kh, kw), np.float32), stride=(sh, sw), padding=padding
    )
    crop = (
        transpose_pad_amounts(h, kh, stride=sh, padding=padding)[0],
        transpose_pad_amounts(w, kw, stride=sw, padding=padding)[0],
    )
    return TransposeGrid(
        input_shape=(h, w),
        kernel_size=(kh, kw),
        stride=(sh, sw),
        padding=padding,
        crop=crop,
        output_shape=counts.shape,
        counts=np.rint(counts).astype(np.int64),
    )
