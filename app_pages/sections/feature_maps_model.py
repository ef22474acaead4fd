"""Feature maps, section "Model": which model to look inside — one of this session's (its
model registry: trained on the MNIST or own-images page, or quick-trained here), an uploaded
``.keras`` file, ResNet50 or VGG19 — and the quick training that adds one."""

from __future__ import annotations

import streamlit as st

from cnnlib.core.text import safe_text
from ui import features_session as fs
from ui import model_input, pretrained, runs, state
from ui.state import KEEP

QUICK, UPLOAD = "Quick-train a convnet", "Upload a .keras file"
RESNET, VGG = "ResNet50 (ImageNet)", "VGG19 without its classifier (ImageNet)"
REGISTERED = "model: "  #: prefix of a registry entry's option (the rest is its name)

ss = st.session_state


def _quick_training() -> None:
    """Quick-train the tutorials' convnet here; once trained it is listed with the others."""
    if runs.current(fs.QUICK_RUN) is not None:
        _training_progress()
        return
    st.markdown(
        f"Train the tutorials' convnet here on {fs.QUICK_IMAGES:,} real MNIST digits for "
        f"{fs.QUICK_EPOCHS} epochs (it trains in the background; the time it took is shown "
        "afterwards), or train your own on the **Train on MNIST** or **own images** page and "
        "come back: every model trained in this session is listed above."
    )
    busy = runs.busy_message()
    if busy:
        st.info(busy, icon="⏳")
    if st.button("Train it now", key="fm_quick_start", disabled=bool(busy)):
        fs.start_quick_training()
        st.rerun()
    runs.rerun_when_free()


@st.fragment(run_every=0.5)
def _training_progress() -> None:
    status = fs.quick_training_status()
    if status.finished:
        st.rerun(scope="app")
    if status.error:
        st.error(status.error, icon="⚠️")
        if st.button("Try again", key="fm_quick_retry"):
            runs.forget(fs.QUICK_RUN)
            st.rerun(scope="app")
        return
    st.progress(status.fraction, text=status.text)


def _uploaded() -> fs.ModelView | None:
    return model_input.uploaded_model_ui(prefix="fm", purpose="look inside it")


def _pretrained(which: str) -> fs.ModelView | None:
    loaded = pretrained.resnet50() if which == RESNET else pretrained.vgg19()
    pretrained.show_weights_note(loaded)
    if loaded.model is None:
        st.caption(
            "Without weights there is nothing real to look at: a network with random weights "
            "is not shown as if it were ImageNet-trained."
        )
        return None
    return fs.shared_view(loaded.model, key="resnet50" if which == RESNET else "vgg19")


def _option_text(option: str) -> str:
    """A registry entry's name, escaped (it may come from a learner's folder names)."""
    return (
        safe_text(option.removeprefix(REGISTERED), 80) if option.startswith(REGISTERED) else option
    )


def model_ui() -> fs.ModelView | None:
    """The model to look inside: the session's registry (newest first), quick training, an
    upload, ResNet50 or VGG19 (None until there is one). Raises ``CNNLabError``."""
    registry = state.model_registry()
    added = ss.pop(fs.QUICK_ADDED, None)
    if added is not None and added in registry:
        ss["fm_model_source"] = REGISTERED + added  # show the model just quick-trained
    options = [REGISTERED + name for name in registry.names()] + [QUICK, UPLOAD, RESNET, VGG]
    source = st.radio("Model", options, format_func=_option_text, key="fm_model_source", **KEEP)
    if source.startswith(REGISTERED):
        entry = registry.get(source.removeprefix(REGISTERED))
        if entry.description:
            st.caption(safe_text(entry.description, 300))
        return fs.registry_view(entry)
    if source == QUICK:
        _quick_training()
        return None
    if source == UPLOAD:
        return _uploaded()
    return _pretrained(source)
