"""Webcam capture per class for the "Train on your own images" page: the session's photos.

Each photo from ``st.camera_input`` is decoded in the decoding sandbox like any upload
(``ui.image_input.load_uploaded``: counted against the session's upload caps), shrunk to at
most ``CAPTURE_SIDE`` pixels and kept with the class it was taken for. ``use_captures()``
turns them into the page's data through the same archive reader, checks and health report
as an upload (a zip of class folders made here, read in the sandbox). A photo can be
removed one at a time. A "hold to record" burst (``add_burst``: the widget's list of data
URLs) is parsed and decoded by ``cnnlib.uploads.burst`` (the sandbox) and counts as ONE
upload of its bytes, like a zip of photos; every kept photo together stays within
``session_image_bytes``. Session bookkeeping only; nothing is drawn here.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass

import streamlit as st
from PIL import Image

from cnnlib.core.budgets import budgets, check_session_images
from cnnlib.core.errors import InvalidArgumentError
from cnnlib.data.images import downscale
from cnnlib.uploads.burst import decode_frames, parse_frames
from ui import own_images_session as session
from ui.image_input import count_upload, load_uploaded

CAPTURES = "own_captures"  #: list[Capture], oldest first
CLASSES = "own_capture_classes"  #: the class names made so far, in order
SHOTS = "own_capture_shots"  #: file ids of the camera photos already kept
#: Longest side of a kept photo (pixels): above the page's largest training size.
CAPTURE_SIDE = 256
#: Longest class name.
MAX_NAME = 40


@dataclass(frozen=True, eq=False)
class Capture:
    """One photo: its ``id`` (unique in the session), the ``class_name`` it was taken for and
    the ``image`` (RGB, at most ``CAPTURE_SIDE`` pixels on a side)."""

    id: int
    class_name: str
    image: Image.Image


def captures() -> list[Capture]:
    return st.session_state.setdefault(CAPTURES, [])


def classes() -> list[str]:
    return st.session_state.setdefault(CLASSES, [])


def check_class_name(text: str) -> str:
    """``text`` stripped, if it can name a class folder; else ``InvalidArgumentError``."""
    name = " ".join(str(text).split())
    if (
        not name
        or len(name) > MAX_NAME
        or not name.isprintable()
        or any(c in name for c in "/\\:")
        or name.startswith(".")
    ):
        raise InvalidArgumentError(
            f"A class name is 1 to {MAX_NAME} characters, without / \\ : and not starting "
            "with a dot."
        )
    return name


def add_class(text: str) -> str:
    """Add a class (once); returns its checked name."""
    name = check_class_name(text)
    if name not in classes():
        classes().append(name)
    return name


def add_capture(class_name: str, shot) -> Capture | None:
    """Keep the camera photo ``shot`` for ``class_name`` (decoded in the sandbox, counted
    against the session's upload caps); None when this very photo was already kept (the
    widget returns it on every rerun). Raises ``InvalidImageError`` / ``BudgetError``."""
    kept = st.session_state.setdefault(SHOTS, set())
    if shot.file_id in kept:
        return None
    picked = load_uploaded(shot, name="The camera photo", label="camera")
    kept.add(shot.file_id)
    return _keep(class_name, downscale(picked.image.convert("RGB"), CAPTURE_SIDE))


def _keep(class_name: str, image: Image.Image) -> Capture:
    ids = [c.id for c in captures()]
    capture = Capture(max(ids, default=0) + 1, class_name, image)
    captures().append(capture)
    return capture


@dataclass(frozen=True)
class BurstAdded:
    """What a burst added: the ``photos`` kept for the class, and a learner's message for
    each frame that was skipped (``problems``)."""

    photos: tuple[Capture, ...]
    problems: tuple[str, ...]


def add_burst(class_name: str, payload: object) -> BurstAdded:
    """Keep the frames of a "hold to record" burst (the widget's untrusted ``payload``: a
    list of data URLs) for ``class_name``: parsed (at most ``budgets().burst_frames`` frames
    and ``burst_bytes``), counted as one upload of the session, decoded in the sandbox and
    shrunk to ``CAPTURE_SIDE``. Raises ``InvalidImageError`` (a malformed burst, nothing
    kept) or ``BudgetError`` (over a session cap, nothing kept)."""
    limits = budgets()
    frames = parse_frames(payload, max_frames=limits.burst_frames, max_bytes=limits.burst_bytes)
    kept = [c.image.size for c in captures()]
    # the most the burst can add, checked before any decoding: frames come back at most
    # CAPTURE_SIDE × CAPTURE_SIDE
    check_session_images(kept + [(CAPTURE_SIDE, CAPTURE_SIDE)] * len(frames), budgets=limits)
    count_upload(sum(len(f) for f in frames))
    decoded = decode_frames(frames, side=CAPTURE_SIDE, budgets=limits)
    photos = tuple(_keep(class_name, image) for image in decoded.images)
    return BurstAdded(photos, decoded.problems)


def remove_capture(capture_id: int) -> None:
    st.session_state[CAPTURES] = [c for c in captures() if c.id != capture_id]


def by_class() -> dict[str, list[Capture]]:
    """The photos of each class, classes in the order they were made."""
    out: dict[str, list[Capture]] = {name: [] for name in classes()}
    for capture in captures():
        out.setdefault(capture.class_name, []).append(capture)
    return out


def capture_archive(photos: list[Capture]) -> bytes:
    """``photos`` as a zip of class folders of PNGs (``<class>/<id>.png``)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for capture in photos:
            png = io.BytesIO()
            capture.image.save(png, format="PNG")
            zf.writestr(f"{capture.class_name}/{capture.id}.png", png.getvalue())
    return out.getvalue()


def use_captures() -> session.OwnData:
    """The photos as the page's data: the zip read like any upload (sandbox, checks,
    health). Raises ``ArchiveError`` (e.g. fewer than 2 classes) or ``InvalidArgumentError``
    (a training is running)."""
    photos = list(captures())
    if len(photos) > budgets().max_archive_members:
        raise InvalidArgumentError("Too many photos: remove some before using them.")
    digest = hashlib.sha1(",".join(f"{c.id}:{c.class_name}" for c in photos).encode())
    return session.use_data(f"camera:{digest.hexdigest()}", lambda: capture_archive(photos))
