"""CNN Lab: entry point. Page config, navigation and the home page.

Run with ``streamlit run app.py``. Nothing here imports TensorFlow: pages that need it
import it lazily, so the home page and the Convolution lab open in about a second.
"""

from __future__ import annotations

import streamlit as st

from cnnlib.training.task_process import share_gpu_memory
from ui import session_cleanup
from ui.keras_runtime import keep_keras_state_between_runs

st.set_page_config(page_title="CNN Lab", page_icon="🧠", layout="wide")
# Process-wide setup, idempotent: Streamlit's end-of-run hook must leave Keras alone.
keep_keras_state_between_runs()
# Trainings run in their own processes (cnnlib.training.task_process): on a GPU, each takes memory
# as it needs it, so that they and this server fit on one card.
share_gpu_memory()
# A closed tab's trainings stop, its temporary folders go and its state is emptied once
# server.disconnectedSessionTTL has passed (the install is process-wide and idempotent).
session_cleanup.install()
session_cleanup.track()

#: (file, title, icon, what the page teaches) — the home page and the sidebar use this list.
PAGES: list[tuple[str, str, str, str]] = [
    (
        "app_pages/convolution_lab.py",
        "Convolution lab",
        ":material/grid_on:",
        "Slide a kernel over a real image. See how padding, stride and dilation set the "
        "output size, check the arithmetic cell by cell, and stack filters into a Conv2D layer.",
    ),
    (
        "app_pages/train_mnist.py",
        "Train on MNIST",
        ":material/draw:",
        "Build a convnet layer by layer, train it on handwritten digits in the background with "
        "live curves, then test it on digits you draw and see why convnets beat dense networks.",
    ),
    (
        "app_pages/own_images.py",
        "Train on your own images",
        ":material/photo_library:",
        "Upload folders of your own photos, check them, preview the augmentation, train from "
        "scratch or by transfer learning, fix wrong labels, and export the model.",
    ),
    (
        "app_pages/classify.py",
        "Classify with ResNet50",
        ":material/photo_camera:",
        "Upload a photo or take one with your camera: watch each preprocessing step, read "
        "ResNet50's top-5 guesses and see where it looked with Grad-CAM.",
    ),
    (
        "app_pages/feature_maps.py",
        "Feature maps",
        ":material/layers:",
        "Open any layer of your trained convnet, ResNet50 or VGG19 and see its activations "
        "and filters on your own image: edges first, abstract patterns deeper.",
    ),
    (
        "app_pages/network_overview.py",
        "Network overview",
        ":material/account_tree:",
        "See one image flow through the whole network at once, every layer's maps side by "
        "side, then click a map to open its layer and a cell to check its arithmetic by hand.",
    ),
]


def home() -> None:
    st.title("CNN Lab")
    st.markdown(
        "Learn how **convolutional neural networks** see, by doing it: every number on these "
        "pages is computed from real images, real data and real Keras models."
    )
    for page, (_, title, icon, teaches) in zip(pages[1:], PAGES, strict=True):
        with st.container(border=True):
            st.page_link(page, label=title, icon=icon)
            st.caption(teaches)
    st.caption(
        "Start with the Convolution lab (no deep learning library needed), then train your "
        "own network on MNIST and look inside it on the Feature maps page."
    )


pages = [st.Page(home, title="Home", icon=":material/home:", default=True)] + [
    st.Page(path, title=title, icon=icon) for path, title, icon, _ in PAGES
]
st.navigation(pages).run()
