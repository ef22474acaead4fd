"""Named kernel presets (2-D float32 arrays) and small kernel utilities."""

from __future__ import annotations

import numpy as np

from cnnlib.core.errors import InvalidArgumentError

#: Largest kernel side the lab offers.
MAX_KERNEL_SIZE = 7


def gaussian(size: int = 3, sigma: float | None = None) -> np.ndarray:
    """(size, size) Gaussian blur kernel, normalized to sum 1; sigma defaults to size / 6."""
    if size < 1:
        raise InvalidArgumentError(f"Kernel size must be at least 1, got {size}.")
    sigma = sigma if sigma is not None else max(size / 6.0, 0.5)
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(ax**2) / (2.0 * sigma**2))
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def _k(rows: list[list[float]]) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


#: Preset name → (kernel, what it does). Edge detectors follow Keras' cross-correlation
#: (no flip): "vertical edges" responds to left-to-right intensity changes.
PRESETS: dict[str, tuple[np.ndarray, str]] = {
    "identity": (
        _k([[0, 0, 0], [0, 1, 0], [0, 0, 0]]),
        "Copies the input: the output equals the input.",
    ),
    "box blur": (np.full((3, 3), 1 / 9, dtype=np.float32), "Averages each 3×3 neighbourhood."),
    "gaussian blur": (
        gaussian(5, 1.0),
        "Weighted average, nearer pixels count more: a smooth blur.",
    ),
    "sharpen": (
        _k([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
        "Boosts a pixel against its neighbours.",
    ),
    "vertical edges": (
        _k([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]),
        "Prewitt: responds where brightness changes from left to right.",
    ),
    "horizontal edges": (
        _k([[-1, -1, -1], [0, 0, 0], [1, 1, 1]]),
        "Prewitt: responds where brightness changes from top to bottom.",
    ),
    "sobel x": (
        _k([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
        "Horizontal gradient, smoothed vertically.",
    ),
    "sobel y": (
        _k([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]),
        "Vertical gradient, smoothed horizontally.",
    ),
    "laplacian": (
        _k([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
        "Second derivative: zero on flat areas and ramps.",
    ),
    "emboss": (
        _k([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]),
        "Lights one side of each edge, shades the other.",
    ),
    "outline": (
        _k([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]),
        "Keeps only where a pixel differs from all around it.",
    ),
}


def preset(name: str) -> np.ndarray:
    """A copy of the named preset kernel (kh, kw) float32."""
    try:
        return PRESETS[name][0].copy()
    except KeyError:
        raise InvalidArgumentError(
            f"Unknown kernel preset {name!r}. Choose one of: {', '.join(PRESETS)}."
        ) from None


def random_kernel(size: int | tuple[int, int], *, seed: int | None = None) -> np.ndarray:
    """Random (kh, kw) float32 kernel, values rounded to 0.1 in [-1, 1]."""
    kh, kw = (size, size) if isinstance(size, int) else size
    if not (1 <= kh <= MAX_KERNEL_SIZE and 1 <= kw <= MAX_KERNEL_SIZE):
        raise InvalidArgumentError(f"Kernel sides must be 1–{MAX_KERNEL_SIZE}, got {kh}×{kw}.")
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(-1.0, 1.0, (kh, kw)), 1).astype(np.float32)


def normalize(kernel: np.ndarray) -> np.ndarray:
    """Scale a kernel so its weights sum to 1 (or, if they sum to 0, its absolute values do).

    Raises ``InvalidArgumentError`` for an all-zero kernel.
    """
    k = np.asarray(kernel, dtype=np.float32)
    total = float(k.sum())
    if abs(total) > 1e-6:
        return (k / total).astype(np.float32)
    abs_total = float(np.abs(k).sum())
    if abs_total == 0.0:
        raise InvalidArgumentError("An all-zero kernel cannot be normalized; enter some weights.")
    return (k / abs_total).astype(np.float32)


def resize_kernel(kernel: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop or zero-pad a kernel to (kh, kw), keeping it centred."""
    k = np.asarray(kernel, dtype=np.float32)
    kh, kw = size
    if not (1 <= kh <= MAX_KERNEL_SIZE and 1 <= kw <= MAX_KERNEL_SIZE):
        raise InvalidArgumentError(f"Kernel sides must be 1–{MAX_KERNEL_SIZE}, got {kh}×{kw}.")
    out = np.zeros((kh, kw), dtype=np.float32)
    h, w = min(kh, k.shape[0]), min(kw, k.shape[1])
    sy, sx = (k.shape[0] - h) // 2, (k.shape[1] - w) // 2
    dy, dx = (kh - h) // 2, (kw - w) // 2
    out[dy : dy + h, dx : dx + w] = k[sy : sy + h, sx : sx + w]
    return out
