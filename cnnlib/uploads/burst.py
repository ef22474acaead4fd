"""Webcam frames sent by the browser: a "hold to record" burst, or one live frame.

The browser widget sends a burst as one JSON value, a list of data URLs
(``"data:image/jpeg;base64,…"``), each frame already shrunk to the training size. Nothing
in it is trusted: ``parse_frames`` checks its shape (a list of at most ``max_frames``
strings, each a JPEG, PNG or WebP data URL of valid base64, ``max_bytes`` in all, counted
before any base64 is decoded) and returns the frames' bytes, never touching a pixel;
``decode_frames`` decodes them in the decoding sandbox (``cnnlib.data.images``' "image"
task, every decoder at once), each at most ``FRAME_PIXELS`` pixels, shrunk to ``side`` as it
comes back so the server holds a few frames at a time. A frame its decoder refuses is
skipped and named in ``DecodedFrames.problems``; a malformed burst is refused whole
(``InvalidImageError``: our widget never sends one).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from cnnlib.core.budgets import Budgets, format_bytes
from cnnlib.core.errors import CNNLabError, InvalidImageError
from cnnlib.core.sandbox import SandboxJob, SandboxResult, run_many
from cnnlib.data.images import decode_options, decoded_image, downscale

#: The data URL of one frame: its type (what the widget sends) and its base64 body.
_DATA_URL = re.compile(r"data:image/(jpeg|png|webp);base64,")
#: Largest frame, pixels (width × height): the widget sends frames at the training size
#: (at most 224 × 224); a bigger one is refused before it is decoded.
FRAME_PIXELS = 640 * 640
#: Longest data URL prefix (``data:image/jpeg;base64,``), characters.
_PREFIX = len("data:image/jpeg;base64,")


@dataclass(frozen=True)
class DecodedFrames:
    """What ``decode_frames`` made of a burst: the ``images`` it decoded (RGB, at most
    ``side`` pixels on a side, in the burst's order) and a learner's message for each frame
    it skipped (``problems``)."""

    images: tuple[Image.Image, ...]
    problems: tuple[str, ...]


def _refuse(what: str) -> InvalidImageError:
    return InvalidImageError(
        f"The webcam sent {what}, so nothing was added. Reload the page and record again."
    )


def parse_frames(payload: object, *, max_frames: int, max_bytes: int) -> list[bytes]:
    """The encoded frames of a burst ``payload`` (a list of data URLs), each one's bytes.

    Raises ``InvalidImageError`` (nothing kept) when the payload is not a list, holds no
    frame or more than ``max_frames``, a frame that is not a string or not a JPEG, PNG or
    WebP data URL of valid base64, an empty frame, or more than ``max_bytes`` of frames in
    all (checked on the text's length before decoding anything).
    """
    if not isinstance(payload, list | tuple):
        raise _refuse(f"{type(payload).__name__} instead of a list of photos")
    if not payload:
        raise _refuse("no photos")
    if len(payload) > max_frames:
        raise InvalidImageError(
            f"The webcam sent {len(payload):,} photos in one burst, more than the {max_frames} "
            "one burst may hold, so nothing was added. Hold the button for a shorter time."
        )
    text_limit = (max_bytes + 2) // 3 * 4  # base64 text of max_bytes
    frames: list[bytes] = []
    chars = total = 0
    for i, item in enumerate(payload, 1):
        if not isinstance(item, str):
            raise _refuse(f"photo {i} as {type(item).__name__}, not an image")
        chars += max(0, len(item) - _PREFIX)
        if chars > text_limit + 4 * i:  # before decoding any of it (each pads ≤ 4 chars)
            raise _too_big(max_bytes)
        match = _DATA_URL.match(item)
        if match is None:
            raise _refuse(f"photo {i} in a form it does not send (not a JPEG, PNG or WebP)")
        try:
            raw = base64.b64decode(item[match.end() :], validate=True)
        except (binascii.Error, ValueError):
            raise _refuse(f"photo {i} with damaged base64 text") from None
        if not raw:
            raise _refuse(f"photo {i} empty")
        total += len(raw)
        if total > max_bytes:
            raise _too_big(max_bytes)
        frames.append(raw)
    return frames


def _too_big(max_bytes: int) -> InvalidImageError:
    return InvalidImageError(
        f"The webcam's burst holds more than {format_bytes(max_bytes)} of photos, the most one "
        "burst may, so nothing was added. Hold the button for a shorter time."
    )


def decode_frames(frames: Sequence[bytes], *, side: int, budgets: Budgets) -> DecodedFrames:
    """Decode ``frames`` (from ``parse_frames``) in the sandbox, each shrunk to at most
    ``side`` pixels on its longer side; a frame the decoder refuses (not an image, over
    ``FRAME_PIXELS``, damaged, over a sandbox limit) is skipped with its message."""
    options = decode_options(budgets, max_pixels=min(FRAME_PIXELS, budgets.image_pixels))
    jobs = (
        SandboxJob("image", raw, f"Photo {i} of the burst", options)
        for i, raw in enumerate(frames, 1)
    )
    images: list[Image.Image] = []
    problems: list[str] = []
    for answer in run_many(jobs):
        try:
            if isinstance(answer, CNNLabError):
                raise answer
            image = _image(answer, options)
        except CNNLabError as err:
            problems.append(str(err))
            continue
        images.append(downscale(image, side))
    return DecodedFrames(tuple(images), tuple(problems))


def _image(answer: SandboxResult, options: dict) -> Image.Image:
    try:
        return decoded_image(answer, options).image.convert("RGB")
    except CNNLabError as err:
        raise InvalidImageError(str(err)) from err


def parse_live_frame(payload: object, *, max_bytes: int) -> tuple[int, bytes]:
    """(its number, its bytes) of one live frame ``payload`` ({"n": a whole number ≥ 1,
    "image": a data URL}, at most ``max_bytes``). Raises ``InvalidImageError``."""
    if not isinstance(payload, dict) or set(payload) != {"n", "image"}:
        raise _refuse("a live frame in a form it does not send")
    n = payload["n"]
    if type(n) is not int or not 1 <= n <= 2**53:
        raise _refuse("a live frame without its number")
    (raw,) = parse_frames([payload["image"]], max_frames=1, max_bytes=max_bytes)
    return n, raw
