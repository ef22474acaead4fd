"""Alt text: what an image shows, in words, with the numbers of the code that drew it.

A screen reader reads an image's alt text in place of the image (WCAG 2.1 success criterion
1.1.1), so every ``st.image`` and chart of the app gets one (``tests/test_alt_text.py`` fails
on a call without it). A map says what it is, its shape, its value range and what its
colours mean; a photo says what it is and its size in pixels; a grid says how many tiles it
holds and what each one is. ``""`` marks an image as decorative (Streamlit then writes
``alt=""``, and screen readers skip it).

Alt text is an HTML attribute, never markdown: a name from an upload goes in through
``plain`` (control characters out, cut to a length), not ``safe_text``.
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

from cnnlib.core.text import plain_text, shape_text


def plain(value: object, max_len: int = 60) -> str:
    """An untrusted value (a file or class name) as plain text for an alt attribute: control
    characters become spaces, longer values are cut to ``max_len`` characters ending in "…"
    (``cnnlib.core.text.plain_text``)."""
    return plain_text(value, max_len)


def unquote(text: str) -> str:
    """A name that ``safe_text`` quoted for markdown (a code span, e.g. a model view's title)
    as the plain text it shows: alt text is not markdown, and a screen reader would read the
    backticks. Other text is returned as it is."""
    match = re.fullmatch(r"(`+) ?(.*?) ?\1", text, flags=re.DOTALL)
    return match.group(2) if match else text


def values_text(lo: float, hi: float) -> str:
    """ "values from −1.27 to 1.02" (4 significant digits, as the captions write them)."""
    return f"values from {float(lo):.4g} to {float(hi):.4g}"


def size_text(image: Image.Image | np.ndarray) -> str:
    """ "224×224 pixels" of a PIL image or an (H, W[, C]) array (width × height, as photos
    are described)."""
    w, h = image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])
    return f"{w}×{h} pixels"


def photo(what: str, image: Image.Image | np.ndarray) -> str:
    """ "What the model sees: a photo, 224×224 pixels"."""
    return f"{what}, {size_text(image)}"


def map_text(what: str, values: np.ndarray, legend: str) -> str:
    """ "Feature map 3 of 8 (vertical edges): 168×254, values from −1.27 to 1.02. Colours: …" of
    an (H, W) array of values drawn with a colour scale described by ``legend``."""
    v = np.asarray(values)
    return f"{what}: {shape_text(v.shape)}, {values_text(v.min(), v.max())}. {legend}"
