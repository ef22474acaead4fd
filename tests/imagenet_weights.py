"""Test helper: one ResNet50 weights file per test process, offline.

This machine cannot download ImageNet weights, so the tests build ResNet50 with
``weights=None`` once, write its (random) weights in the same legacy HDF5 layout and under the
same file name as Keras' official ``resnet50_weights_tf_dim_ordering_tf_kernels.h5``, and load
that file through the app's real loading code (``CNNLAB_RESNET50_WEIGHTS`` or Keras' cache).
Building ResNet50 costs seconds on 2 cores, so everything here is built once per process
(``functools.cache``) and shared by the unit, page and browser tests.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from cnnlib.models.pretrained import RESNET50


@functools.cache
def _folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="cnnlab-imagenet-tests-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.cache
def resnet50_reference():
    """(keras ResNet50 with random weights, path of its weights file in Keras' legacy .h5)."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    model = keras.applications.ResNet50(weights=None)
    path = _folder() / RESNET50.file_name
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return model, path


def resnet50_weights_file() -> Path:
    """Path of the random-weights ResNet50 file (legacy .h5, Keras' official file name)."""
    return resnet50_reference()[1]


def missing_weights_file() -> Path:
    """A path where no weights file exists (for the 'no weights anywhere' tests)."""
    return _folder() / "no-such-dir" / RESNET50.file_name


@functools.cache
def resnet50_loaded():
    """``load_resnet50`` of that file (the real loading code, path route), once per process."""
    from cnnlib.models import load_resnet50

    return load_resnet50(resnet50_weights_file())
