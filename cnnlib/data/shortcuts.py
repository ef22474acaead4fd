"""The shortcut lab's cues: a mark stamped on some of one class's training images.

A model learns whatever separates the classes most easily. Stamp a coloured corner, a
border or a watermark text on most of one class's training photos and the model learns the
stamp instead of the object: validation accuracy on stamped data soars, then clean photos of
that class, and photos of other classes with the stamp, show what it really learned.

- ``Cue``: what to stamp (kind, colour, size, text);
- ``stamp(image, cue)``: one image with the cue (a new array);
- ``choose_stamped(labels, target, share, seed)``: which images of the class get it
  (deterministic for a seed);
- ``stamp_share(images, labels, target, share, cue, seed)``: a training set with the cue
  planted; ``stamp_all`` stamps every image (the "cue on other classes" test).

Images are (H, W, 3) or (N, H, W, 3) uint8 RGB; the inputs are never modified.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cnnlib.core.errors import InvalidArgumentError

__all__ = [
    "CUES",
    "DEFAULT_SIZES",
    "MAX_TEXT",
    "Cue",
    "ShortcutSet",
    "choose_stamped",
    "cue_box",
    "stamp",
    "stamp_all",
    "stamp_share",
]

#: The kinds of cue, in the order the lab offers them.
CUES = ("corner", "border", "watermark")
#: Default size of each kind, as a fraction of the image's shorter side: the corner
#: square's side, the border's width, the watermark text's height.
DEFAULT_SIZES = {"corner": 0.2, "border": 0.06, "watermark": 0.25}
#: Longest watermark text.
MAX_TEXT = 16
#: How opaque the watermark text is (0…1): visible, with the photo showing through.
WATERMARK_OPACITY = 0.75


@dataclass(frozen=True)
class Cue:
    """What to stamp: ``kind`` one of ``CUES``; ``color`` RGB 0…255; ``size`` a fraction of
    the shorter side (None: ``DEFAULT_SIZES[kind]``); ``text`` the watermark's words."""

    kind: str = "corner"
    color: tuple[int, int, int] = (255, 0, 0)
    size: float | None = None
    text: str = "CNN"

    def __post_init__(self) -> None:
        if self.kind not in CUES:
            raise InvalidArgumentError(f"Unknown cue {self.kind!r}; choose {', '.join(CUES)}.")
        if len(self.color) != 3 or not all(
            isinstance(c, int | np.integer) and 0 <= c <= 255 for c in self.color
        ):
            raise InvalidArgumentError(f"The colour is 3 whole numbers 0…255; got {self.color}.")
        if self.size is not None and not 0.0 < self.size <= 0.5:
            raise InvalidArgumentError(
                f"The cue's size is a fraction in (0, 0.5]; got {self.size}."
            )
        if self.kind == "watermark" and (
            not self.text.strip() or len(self.text) > MAX_TEXT or not self.text.isprintable()
        ):
            raise InvalidArgumentError(
                f"The watermark is 1 to {MAX_TEXT} printable characters; got {self.text!r}."
            )

    @property
    def fraction(self) -> float:
        return DEFAULT_SIZES[self.kind] if self.size is None else float(self.size)


def _pixels(cue: Cue, height: int, width: int) -> int:
    """The cue's size in pixels on an image of height × width (at least 1)."""
    return max(1, round(cue.fraction * min(height, width)))


def _font(height: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(6, height))


def cue_box(cue: Cue, height: int, width: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), bottom/right exclusive: the rectangle the cue may change
    on an image of height × width (the whole image for a border)."""
    side = _pixels(cue, height, width)
    if cue.kind == "corner":
        return 0, 0, min(side, height), min(side, width)
    if cue.kind == "border":
        return 0, 0, height, width
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox(
        (0, 0), cue.text, font=_font(side)
    )
    margin = max(1, side // 4)
    w, h = right - left, bottom - top
    return max(0, height - h - margin), max(0, width - w - margin), height, width


def _check_image(image: np.ndarray) -> np.ndarray:
    x = np.asarray(image)
    if x.ndim != 3 or x.shape[-1] != 3 or x.dtype != np.uint8 or min(x.shape[:2]) < 2:
        raise InvalidArgumentError(
            f"A cue is stamped on an RGB image (H, W, 3) uint8 of at least 2×2; got "
            f"{x.shape} {x.dtype}."
        )
    return x


def stamp(image: np.ndarray, cue: Cue) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with ``cue`` stamped: a new array, the same for the same
    inputs. Corner: a solid square at the top left; border: a solid frame round the
    edge; watermark: the text at the bottom right, ``WATERMARK_OPACITY`` opaque."""
    x = _check_image(image)
    out = x.copy()
    h, w = x.shape[:2]
    side = _pixels(cue, h, w)
    color = np.array(cue.color, dtype=np.uint8)
    if cue.kind == "corner":
        out[:side, :side] = color
    elif cue.kind == "border":
        out[:side], out[-side:], out[:, :side], out[:, -side:] = color, color, color, color
    else:
        top, left, _, _ = cue_box(cue, h, w)
        mask = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(mask)
        font = _font(side)
        x0, y0, _, _ = draw.textbbox((0, 0), cue.text, font=font)
        draw.text((left - x0, top - y0), cue.text, fill=255, font=font)
        alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255 * WATERMARK_OPACITY
        blended = x.astype(np.float32) * (1 - alpha) + color.astype(np.float32) * alpha
        out = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return out


def stamp_all(images: np.ndarray, cue: Cue) -> np.ndarray:
    """(N, H, W, 3) uint8: every image with ``cue`` (a new array)."""
    x = np.asarray(images)
    if x.ndim != 4:
        raise InvalidArgumentError(f"Expected images (N, H, W, 3); got {x.shape}.")
    return np.stack([stamp(image, cue) for image in x]) if len(x) else x.copy()


def choose_stamped(labels: np.ndarray, target: int, share: float, seed: int = 0) -> np.ndarray:
    """Indices (ascending int64) of round(``share`` × n) of the n images labelled
    ``target``, drawn at random without replacement; the same for the same seed."""
    y = np.asarray(labels)
    if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise InvalidArgumentError(f"Labels are class indices (N,); got {y.shape} {y.dtype}.")
    if not 0.0 <= share <= 1.0:
        raise InvalidArgumentError(f"The share of stamped images is in [0, 1]; got {share}.")
    members = np.flatnonzero(y == target)
    if not members.size:
        raise InvalidArgumentError(f"No image has class {target}; choose a class with images.")
    count = round(share * members.size)
    chosen = np.random.default_rng(seed).choice(members, size=count, replace=False)
    return np.sort(chosen).astype(np.int64)


@dataclass(frozen=True)
class ShortcutSet:
    """A training set with a cue planted: ``images`` (N, H, W, 3) uint8 (a new array),
    ``stamped`` the indices that carry it, ``cue``, ``target`` class and ``share``."""

    images: np.ndarray
    stamped: np.ndarray
    cue: Cue
    target: int
    share: float


def stamp_share(
    images: np.ndarray,
    labels: np.ndarray,
    target: int,
    share: float,
    cue: Cue,
    seed: int = 0,
) -> ShortcutSet:
    """``images`` with ``cue`` stamped on ``share`` of the images of class ``target``
    (``choose_stamped``); every other image unchanged."""
    x = np.asarray(images)
    if x.ndim != 4 or len(x) != len(np.asarray(labels)):
        raise InvalidArgumentError(
            f"Expected images (N, H, W, 3) and N labels; got {x.shape} and "
            f"{np.asarray(labels).shape}."
        )
    chosen = choose_stamped(labels, target, share, seed)
    out = x.copy()
    for i in chosen:
        out[i] = stamp(x[i], cue)
    return ShortcutSet(images=out, stamped=chosen, cue=cue, target=int(target), share=share)
