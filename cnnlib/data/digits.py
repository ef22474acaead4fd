"""Turn a drawn or photographed digit into an MNIST-style input, the way MNIST was made.

MNIST's digits are light on a dark background, cropped to their bounding box, scaled so the
longer side is 20 pixels (aspect kept, anti-aliased) and pasted into a 28×28 field so that
their centre of mass sits at pixel (14, 14). A model trained on MNIST only understands
digits prepared the same way, so ``prepare_digit`` repeats those steps on any image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from cnnlib.core.errors import InvalidImageError

__all__ = [
    "BOX_SIZE",
    "FIELD_SIZE",
    "DigitPreparation",
    "grayscale_ink",
    "prepare_digit",
    "preprocess_digit",
]

#: Side of MNIST's images, in pixels.
FIELD_SIZE = 28
#: Side of the box the digit is scaled to fit (MNIST: 20 × 20, aspect ratio kept).
BOX_SIZE = 20
#: Where MNIST puts the centre of mass: (row, column) pixel index (measured on the test set).
CENTRE = (14.0, 14.0)
#: Largest side worked on; bigger photos are shrunk first (the result is 28×28 anyway).
_WORK_SIDE = 512
#: Ink fainter than this fraction of the strongest ink is background (paper texture, noise).
_INK_THRESHOLD = 0.2
#: Less contrast than this between ink and background means there is no digit.
_MIN_CONTRAST = 0.08

_EMPTY_MESSAGE = (
    "There is no digit in this image: draw a digit first (or upload a photo of one digit "
    "written in dark ink on light paper)."
)


@dataclass(frozen=True)
class DigitPreparation:
    """The steps of ``prepare_digit``, to show the learner what the model receives.

    ``ink``: (H, W) float32 in [0, 1], light digit on dark background, background removed;
    ``inverted``: whether the input was dark-on-light and had to be inverted;
    ``box``: (top, left, bottom, right) of the digit in ``ink`` (bottom/right exclusive);
    ``scaled``: the cropped digit scaled to fit ``BOX_SIZE`` × ``BOX_SIZE`` (aspect kept);
    ``digit``: (28, 28) float32 in [0, 1], centred by centre of mass (for display);
    ``pixels``: the same as raw pixels, (28, 28) float32 in 0…255 — what a model receives
    (models own their rescaling: ``model.predict(prep.pixels[None, :, :, None])``).
    """

    ink: np.ndarray
    inverted: bool
    box: tuple[int, int, int, int]
    scaled: np.ndarray
    digit: np.ndarray

    @property
    def pixels(self) -> np.ndarray:
        """(28, 28) float32 in 0…255: ``digit`` as the raw pixels a model is fed."""
        return self.digit * np.float32(255.0)


def _to_gray(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any image → (H, W) float32 luminance in [0, 1]; transparency handled (see below).

    A transparent background (a drawing canvas without background colour) is filled with
    whichever of black or white contrasts with the opaque pixels, so the strokes stay visible.
    """
    if isinstance(image, Image.Image):
        transparent = image.mode in ("RGBA", "LA", "PA") or (
            image.mode == "P" and "transparency" in image.info
        )
        factor = max(image.size) // (2 * _WORK_SIDE)
        if factor >= 2:  # a big photo: box-average it down before any float copy
            if image.mode not in ("L", "RGB", "RGBA"):
                image = image.convert("RGBA" if transparent else "RGB")
            image = image.reduce(factor)
        if transparent:
            arr = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        else:
            arr = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    else:
        arr = np.asarray(image)
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        elif arr.dtype == bool:
            arr = arr.astype(np.float32)
        elif np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float32)
            if arr.size and float(np.nanmax(arr)) > 1.0:
                arr = arr / 255.0
        else:
            raise InvalidImageError(f"Expected an image array of numbers, got {arr.dtype}.")
        arr = np.nan_to_num(np.clip(arr, 0.0, 1.0))
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        gray = arr
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        rgb = arr[:, :, :3]
        gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if arr.shape[2] == 4:
            alpha = arr[:, :, 3]
            opaque = alpha > 0.5
            if not opaque.any():
                raise InvalidImageError(_EMPTY_MESSAGE)
            if not opaque.all():
                backdrop = 1.0 if float(gray[opaque].mean()) < 0.5 else 0.0
                gray = gray * alpha + backdrop * (1.0 - alpha)
    else:
        raise InvalidImageError(
            f"Expected a grayscale, RGB or RGBA image, got an array of shape {arr.shape}."
        )
    if gray.shape[0] < 1 or gray.shape[1] < 1:
        raise InvalidImageError(f"The image has no pixels ({gray.shape[1]}×{gray.shape[0]}).")
    return np.ascontiguousarray(gray, dtype=np.float32)


def _shrink(gray: np.ndarray, max_side: int) -> np.ndarray:
    height, width = gray.shape
    if max(height, width) <= max_side:
        return gray
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(gray, mode="F").resize(size, Image.Resampling.BOX))


def _keep_strokes(ink: np.ndarray) -> np.ndarray:
    """``ink`` with specks and paper texture away from the strokes set to 0.

    Strokes are the pixels above Otsu's threshold; connected pieces smaller than 2 % of the
    stroke area are noise and dropped. The kept strokes, widened by a few pixels so their soft
    anti-aliased edges survive, mask the ink.
    """
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    strong = ink > max(_INK_THRESHOLD, float(threshold_otsu(ink)))
    labels, count = ndimage.label(strong, structure=np.ones((3, 3)))
    if count > 1:
        sizes = np.bincount(labels.ravel())[1:]
        keep = np.flatnonzero(sizes >= 0.02 * sizes.sum()) + 1
        strong = np.isin(labels, keep)
    margin = max(1, round(max(ink.shape) / 100))
    near = ndimage.binary_dilation(strong, iterations=margin)
    cleaned = np.where(near & (ink >= _INK_THRESHOLD), ink, 0.0)
    return cleaned.astype(np.float32)


def grayscale_ink(image: Image.Image | np.ndarray) -> tuple[np.ndarray, bool]:
    """The digit as light ink on a black background: ((H, W) float32 in [0, 1], inverted).

    Polarity is detected from the border (the median of the outermost pixels is the
    background): a light border means dark ink on light paper, which is inverted. The
    background level is subtracted and the strongest ink scaled to 1; ink fainter than
    20 % of that, and specks away from the strokes, are set to 0. Raises
    ``InvalidImageError`` when there is no ink at all.
    """
    gray = _shrink(_to_gray(image), _WORK_SIDE)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    inverted = background > 0.5
    ink = (1.0 - gray) if inverted else gray
    ink = ink - (1.0 - background if inverted else background)
    top = float(ink.max())
    if top < _MIN_CONTRAST:
        raise InvalidImageError(_EMPTY_MESSAGE)
    ink = np.clip(ink / top, 0.0, 1.0)
    return _keep_strokes(ink), inverted


def _bounding_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(ink.max(axis=1) > 0)
    cols = np.flatnonzero(ink.max(axis=0) > 0)
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _fit_box(crop: np.ndarray, box_size: int) -> np.ndarray:
    """Scale ``crop`` so its longer side is ``box_size`` (aspect kept, at least 1 pixel)."""
    height, width = crop.shape
    scale = box_size / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(crop.astype(np.float32), mode="F").resize(
        size, Image.Resampling.LANCZOS
    )
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def _paste_centred(scaled: np.ndarray) -> np.ndarray:
    """Paste ``scaled`` in a 28×28 field so its centre of mass lands on ``CENTRE``."""
    height, width = scaled.shape
    total = float(scaled.sum())
    rows, cols = np.indices(scaled.shape)
    com_r = float((rows * scaled).sum() / total)
    com_c = float((cols * scaled).sum() / total)
    top = round(CENTRE[0] - com_r)
    left = round(CENTRE[1] - com_c)
    # Keep the whole digit inside the field (a lopsided digit could otherwise be clipped).
    top = min(max(top, 0), FIELD_SIZE - height)
    left = min(max(left, 0), FIELD_SIZE - width)
    field = np.zeros((FIELD_SIZE, FIELD_SIZE), dtype=np.float32)
    field[top : top + height, left : left + width] = scaled
    return field


def prepare_digit(image: Image.Image | np.ndarray) -> DigitPreparation:
    """Run MNIST's preprocessing on a drawn or photographed digit, keeping every step.

    ``image``: a PIL image (any mode) or an array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4),
    uint8 in [0, 255] or float in [0, 1]; dark-on-light or light-on-dark (detected).
    Raises ``InvalidImageError`` ("draw a digit first") when the image holds no digit.
    """
    ink, inverted = grayscale_ink(image)
    box = _bounding_box(ink)
    top, left, bottom, right = box
    scaled = _fit_box(ink[top:bottom, left:right], BOX_SIZE)
    if float(scaled.sum()) <= 0.0:
        raise InvalidImageError(_EMPTY_MESSAGE)
    peak = float(scaled.max())
    scaled = scaled / peak if peak > 0 else scaled
    return DigitPreparation(
        ink=ink, inverted=inverted, box=box, scaled=scaled, digit=_paste_centred(scaled)
    )


def preprocess_digit(image: Image.Image | np.ndarray) -> np.ndarray:
    """A drawn or photographed digit MNIST-style: (28, 28) float32 in [0, 1] (for display;
    a model takes ``prepare_digit(image).pixels``, the same in 0…255).

    See ``prepare_digit`` for the steps and the accepted inputs.
    """
    return prepare_digit(image).digit
