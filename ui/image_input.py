"""The one image picker used by every page that takes a photo: sample, upload or camera.

Uploads and camera shots go through ``cnnlib.data.images.read_image``: decoded in the
decoding sandbox, never in the server, handed back shrunk to the largest size a page uses,
so a bad file gets the same learner-friendly message everywhere (its name shown verbatim,
``safe_text``). Uploads are decoded once per session and counted against
the session's caps (``cnnlib.core.budgets``: ``session_uploads``, ``session_upload_bytes``,
``session_image_bytes``); past a cap the learner reads what happened and what to do, and the
session goes on with samples. ``show_image`` is the one way to show a learner's image:
any size and aspect ratio.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image

from cnnlib.core.budgets import SessionUsage, budgets, check_session_images
from cnnlib.core.errors import BudgetError, InvalidImageError
from cnnlib.core.text import safe_text
from cnnlib.data import images, samples
from ui import state


@dataclass(frozen=True)
class PickedImage:
    """An image the learner chose, as 8-bit RGB (at most ``budgets().lab_pixels`` pixels),
    where it came from (``label``: a sample's name or the uploaded file's name, hostile text:
    show it with ``safe_text``), the file's own size (``original_size``: (width, height);
    the image's size when it was not shrunk) and ``token``: the one cache key of this image,
    the same on every rerun ("sample:<name>", "file:<upload's file id>"; an image made
    elsewhere is named by a digest of its pixels)."""

    image: Image.Image
    label: str
    original_size: tuple[int, int] | None = None
    token: str = ""

    def __post_init__(self) -> None:
        if not self.token:
            img = self.image
            digest = hashlib.sha1(img.tobytes()).hexdigest()
            object.__setattr__(self, "token", f"pixels:{digest}-{img.mode}-{img.size}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the picture as the learner's file has it."""
        return self.original_size or self.image.size


def _picked(file, name: str, label: str, token: str = "") -> PickedImage:
    decoded = images.read_image(file, name=name)
    return PickedImage(decoded.image, label, decoded.original_size, token)


@st.cache_data(max_size=budgets().cache_bytes, show_spinner=False, max_entries=32)
def _sample(name: str) -> Image.Image:
    return samples.load_sample(name)


#: Session key of this session's ``cnnlib.core.budgets.SessionUsage`` (uploads decoded so far).
_USAGE = "image_input_usage"


def _usage() -> SessionUsage:
    return state.session_object(_USAGE, SessionUsage)


# One entry per upload (Streamlit's file id), per session, dropped when the session ends; the
# entries of one session together at most budgets().cache_bytes (pickled bytes, oldest first).
@st.cache_data(show_spinner=False, scope="session", max_entries=32, max_size=budgets().cache_bytes)
def _decode(file_id: str, name: str, label: str, _file, _usage: SessionUsage) -> PickedImage:
    # Runs only for an upload this session has not decoded yet: count it against the
    # session's caps first (BudgetError, nothing decoded), then decode.
    _usage.admit(_file.size if hasattr(_file, "size") else len(_file.getvalue()), budgets=budgets())
    return _picked(_file, name, label, f"file:{file_id}")


def count_upload(file_bytes: int) -> None:
    """Count one more upload of ``file_bytes`` against the session's caps (a batch decoded
    elsewhere, e.g. a webcam burst); ``BudgetError``, nothing counted, past a cap."""
    _usage().admit(file_bytes, budgets=budgets())


def load_uploaded(file, *, name: str | None = None, label: str | None = None) -> PickedImage:
    """Decode one ``UploadedFile`` (or camera photo) in the sandbox. Raises
    ``InvalidImageError`` naming it (``name``: markdown, by default its file name verbatim),
    or ``BudgetError`` once the session has decoded ``budgets().session_uploads`` uploads or
    ``session_upload_bytes`` bytes (``SessionUsage.admit``).

    Each upload is decoded and counted once per session (a session-scoped ``st.cache_data``
    by the file's id), so a rerun that only changes a setting does not decode it again.
    """
    name, label = name or safe_text(file.name), label or file.name
    file_id = getattr(file, "file_id", None)
    if file_id is None:  # not from a Streamlit widget: nothing to key a cache entry on
        count_upload(len(file.getvalue()))
        return _picked(file, name, label)
    return _decode(file_id, name, label, file, _usage())


def _load_all(files: list) -> list[PickedImage]:
    """Decode ``files``, reporting each bad one (and an over-the-cap session) as it comes;
    the images kept together stay within ``budgets().session_image_bytes``."""
    picked: list[PickedImage] = []
    for file in files:
        try:
            image = load_uploaded(file)
            check_session_images(
                [p.image.size for p in picked] + [image.image.size], budgets=budgets()
            )
            picked.append(image)
        except BudgetError as err:
            st.error(str(err), icon="⚠️")
            break  # the caps hold for the remaining files too
        except InvalidImageError as err:
            st.error(str(err), icon="⚠️")
    return picked


def pick_images(
    key: str,
    *,
    default_sample: str = "cat (chelsea)",
    multiple: bool = False,
    sources: tuple[str, ...] = ("Sample", "Upload", "Camera"),
    persist_state: str | None = "session",
    bind: str | None = None,
    keep_sample: bool = False,
) -> list[PickedImage]:
    """Widgets to choose images; returns the decoded ones (bad files are reported, skipped).

    ``key`` prefixes the widget keys so several pages (or two pickers) do not collide.
    ``persist_state`` ("session": the choice survives page switches) applies to the source
    and sample widgets, ``bind`` ("query-params": the sample's name is in the URL under
    ``{key}_sample``) to the sample selectbox; uploads cannot persist. ``keep_sample``: while
    no file is uploaded (or no photo taken) yet, the last sample stays chosen, and the page
    says so, instead of nothing.
    """
    source = st.radio(
        "Image source",
        sources,
        horizontal=True,
        key=f"{key}_source",
        persist_state=persist_state,
    )
    picked: list[PickedImage] = []
    names = samples.sample_names()
    sample_key = f"{key}_sample"
    waiting = ""  # what to do while no file or photo is chosen
    if source == "Sample":
        index = names.index(default_sample) if default_sample in names else 0
        name = st.selectbox(
            "Sample image",
            names,
            index=index,
            key=sample_key,
            persist_state=persist_state,
            bind=bind,
        )
        picked.append(_sample_pick(name))
    elif source == "Upload":
        files = st.file_uploader(
            "Upload " + ("images" if multiple else "an image"),
            type=images.UPLOAD_TYPES,
            accept_multiple_files=multiple,
            key=f"{key}_upload",
        )
        picked.extend(_load_all(list(files or []) if multiple else ([files] if files else [])))
        if not files:
            waiting = "Upload a JPEG, PNG, WebP, BMP, GIF or TIFF image to continue."
    else:
        shot = st.camera_input("Take a photo", key=f"{key}_camera")
        if shot is not None:
            try:
                picked.append(load_uploaded(shot, name="The camera photo", label="camera"))
            except (BudgetError, InvalidImageError) as err:
                st.error(str(err), icon="⚠️")
        else:
            waiting = "Allow camera access in your browser and take a photo."
    if waiting:
        kept = _kept_sample(sample_key, default_sample, names) if keep_sample else None
        st.info(waiting + (f" Until then the sample “{kept}” stays below." if kept else ""))
        if kept:
            picked.append(_sample_pick(kept))
    return picked


def _sample_pick(name: str) -> PickedImage:
    return PickedImage(_sample(name), name, token=f"sample:{name}")


def _kept_sample(sample_key: str, default_sample: str, names: list[str]) -> str | None:
    """The sample that stays while no file or photo is chosen yet: the last one chosen under
    ``sample_key``, else ``default_sample``; None when it is not a sample."""
    name = st.session_state.get(sample_key, default_sample)
    return name if name in names else None


#: Longest side sent to the browser, and the most one side of a shown image may exceed the other.
SHOW_MAX_SIDE = 1600
SHOW_MAX_ASPECT = 3.0


def show_image(
    img: Image.Image | np.ndarray,
    *,
    width: int | str = "stretch",
    caption: str | None = None,
    alt: str,
) -> None:
    """Show a learner's image at ``width`` (pixels or "stretch"), whatever its shape.

    ``img``: a PIL image, or an (H, W) / (H, W, C) array, uint8 or float in [0, 1] (clipped).
    ``alt``: what it shows, for screen readers (``ui.alt_text``; "" marks it decorative).
    Very large images are shrunk to ``SHOW_MAX_SIDE`` first; then extreme strips (8 × 3000,
    3000 × 8) are letterboxed with grey bars to at most 3 : 1, so they neither vanish nor
    shrink to zero pixels (shrinking first: a 1 × 30,000 strip costs 534 × 1600 pixels, not
    10,000 × 30,000). ``caption`` is markdown: quote uploaded names with ``safe_text``.
    """
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img) if img.dtype == np.uint8 else images.to_image(img)
    img = images.letterbox(img, max_aspect=SHOW_MAX_ASPECT, max_side=SHOW_MAX_SIDE)
    st.image(img, caption=caption, width=width, alt=alt)
