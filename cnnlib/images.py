"""Public API: the one safe image loader and its array helpers (``cnnlib.data.images``)."""

from cnnlib.data.images import (
    downscale,
    letterbox,
    load_image,
    read_image,
    side_for_pixels,
    to_array,
    to_image,
)

__all__ = [
    "downscale",
    "letterbox",
    "load_image",
    "read_image",
    "side_for_pixels",
    "to_array",
    "to_image",
]
