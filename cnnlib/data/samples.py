"""Built-in images that work offline: scikit-image's public-domain photos and synthetic patterns.

Every function returns an 8-bit RGB ``PIL.Image`` (grayscale photos are replicated to 3
channels), so pages treat samples exactly like uploads.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from cnnlib.core.errors import InvalidArgumentError

#: Photo name → scikit-image loader name (all bundled with scikit-image, no download).
PHOTOS: dict[str, str] = {
    "cat (chelsea)": "chelsea",
    "coffee cup": "coffee",
    "astronaut": "astronaut",
    "rocket": "rocket",
    "camera man": "camera",
    "coins": "coins",
    "moon": "moon",
    "brick wall": "brick",
    "clock": "clock",
}


def checkerboard(size: int = 256, squares: int = 8) -> Image.Image:
    """Black and white squares: sharp vertical and horizontal edges."""
    cell = max(1, size // squares)
    yy, xx = np.indices((size, size)) // cell
    arr = ((yy + xx) % 2 * 255).astype(np.uint8)
    return Image.fromarray(arr).convert("RGB")


def shapes(size: int = 256) -> Image.Image:
    """A circle, a square, a triangle and a bar on grey: edges at many angles, in colour."""
    img = Image.new("RGB", (size, size), (128, 128, 128))
    d = ImageDraw.Draw(img)
    s = size
    d.ellipse([s * 0.08, s * 0.08, s * 0.42, s * 0.42], fill=(230, 60, 50))
    d.rectangle([s * 0.56, s * 0.1, s * 0.9, s * 0.44], fill=(40, 90, 220))
    d.polygon(
        [(s * 0.25, s * 0.55), (s * 0.08, s * 0.92), (s * 0.42, s * 0.92)], fill=(250, 220, 40)
    )
    d.rectangle([s * 0.55, s * 0.7, s * 0.92, s * 0.78], fill=(20, 20, 20))
    return img


def gradient(size: int = 256) -> Image.Image:
    """Brightness rising left to right, colour shifting top to bottom: smooth ramps, no edges."""
    x = np.linspace(0.0, 1.0, size, dtype=np.float32)
    y = x[:, None]
    rgb = np.stack(
        [np.broadcast_to(x, (size, size)), np.broadcast_to(y, (size, size)), 1.0 - 0.5 * (x + y)],
        axis=-1,
    )
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))


def stripes(size: int = 256, period: int = 16) -> Image.Image:
    """Diagonal stripes: edges that are neither vertical nor horizontal."""
    yy, xx = np.indices((size, size))
    arr = (((xx + yy) // (period // 2)) % 2 * 255).astype(np.uint8)
    return Image.fromarray(arr).convert("RGB")


PATTERNS: dict[str, Callable[[], Image.Image]] = {
    "checkerboard": checkerboard,
    "shapes": shapes,
    "gradient": gradient,
    "diagonal stripes": stripes,
}


def sample_names() -> list[str]:
    """Every built-in image: photos first, then synthetic patterns."""
    return [*PHOTOS, *PATTERNS]


def load_sample(name: str) -> Image.Image:
    """The named built-in image as 8-bit RGB."""
    if name in PATTERNS:
        return PATTERNS[name]()
    if name in PHOTOS:
        import skimage.data

        arr = np.asarray(getattr(skimage.data, PHOTOS[name])())
        if arr.dtype == bool:
            arr = arr.astype(np.uint8) * 255
        img = Image.fromarray(arr.astype(np.uint8))
        return img.convert("RGB")
    raise InvalidArgumentError(
        f"Unknown sample image {name!r}. Choose one of: {', '.join(sample_names())}."
    )
