"""ImageNet networks (ResNet50, VGG19) with offline-safe weights and thread-safe inference.

Where the weights come from, for ``weights="imagenet"`` (the default):

1. the file named by the environment variable (``CNNLAB_RESNET50_WEIGHTS``,
   ``CNNLAB_VGG19_WEIGHTS``) when it is set — for machines without internet;
2. otherwise Keras' cache (``~/.keras/models`` or ``$KERAS_HOME/models``): a cached file is
   used when its MD5 is the one Keras publishes; a missing or corrupt one is downloaded with
   a timeout into a temporary file, checked, then renamed into place. A failed download is
   remembered for ``FAILURE_MEMORY_SECONDS`` so that reruns do not retry it every time.

When neither works, ``WeightsUnavailableError`` names the expected file and both ways to
provide it. Random weights are built only when asked for explicitly (``weights=None``, for
tests and benchmarks), and ``PretrainedModel.imagenet_verified`` says whether the loaded file
is byte for byte Keras' official ImageNet file (its MD5 matches), so a page can tell real
ImageNet predictions from the output of any other weights.

Keras is imported only when a model is loaded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from cnnlib.core.budgets import budgets
from cnnlib.core.errors import ModelBusyError, WeightsUnavailableError
from cnnlib.core.paths import keras_home

__all__ = [
    "MOBILENETV2_NOTOP",
    "RESNET50",
    "RESNET50_NOTOP",
    "VGG19",
    "VGG19_NOTOP",
    "ModelUse",
    "PretrainedModel",
    "WeightsSpec",
    "file_md5",
    "forget_failures",
    "how_to_provide",
    "keras_cache_dir",
    "load_mobilenetv2",
    "load_resnet50",
    "load_vgg19",
    "model_wait_seconds",
]

T = TypeVar("T")


@dataclass(frozen=True)
class WeightsSpec:
    """Keras' official ImageNet weights file for one architecture."""

    #: Display name, e.g. "ResNet50".
    model_name: str
    #: File name Keras downloads and caches, e.g. "resnet50_weights_tf_dim_ordering_tf_kernels.h5".
    file_name: str
    #: URL Keras downloads it from.
    origin: str
    #: MD5 Keras checks the download against (the same values as keras.applications); None
    #: where Keras publishes none (MobileNetV2): such a file is never reported as verified.
    md5: str | None
    #: Environment variable that names a local copy of the file.
    env_var: str
    #: Size of the official file in MB (10^6 bytes), for the "one-time download" message.
    size_mb: int


_KERAS_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"

RESNET50 = WeightsSpec(
    model_name="ResNet50",
    file_name="resnet50_weights_tf_dim_ordering_tf_kernels.h5",
    origin=_KERAS_APPS + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
    md5="2cb95161c43110f7111970584f804107",
    env_var="CNNLAB_RESNET50_WEIGHTS",
    size_mb=103,
)
RESNET50_NOTOP = WeightsSpec(
    model_name="ResNet50 (without the classifier)",
    file_name="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    origin=_KERAS_APPS + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    md5="4d473c1dd8becc155b73f8504c6f6626",
    env_var="CNNLAB_RESNET50_WEIGHTS",
    size_mb=95,
)
VGG19 = WeightsSpec(
    model_name="VGG19",
    file_name="vgg19_weights_tf_dim_ordering_tf_kernels.h5",
    origin=_KERAS_APPS + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels.h5",
    md5="cbe5617147190e668d6c5d5026f83318",
    env_var="CNNLAB_VGG19_WEIGHTS",
    size_mb=575,
)
VGG19_NOTOP = WeightsSpec(
    model_name="VGG19 (without the classifier)",
    file_name="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
    origin=_KERAS_APPS + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
    md5="253f8cb515780f3b799900260a226db6",
    env_var="CNNLAB_VGG19_WEIGHTS",
    size_mb=80,
)

MOBILENETV2_NOTOP = WeightsSpec(
    model_name="MobileNetV2 (without the classifier)",
    file_name="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
    origin=_KERAS_APPS
    + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
    md5=None,  # keras.applications.MobileNetV2 downloads it without a published hash
    env_var="CNNLAB_MOBILENETV2_WEIGHTS",
    size_mb=9,
)


#: Seconds one network wait (connect, each read) may take before a download fails.
DOWNLOAD_TIMEOUT = 30.0
#: Seconds a whole weights download may take.
DOWNLOAD_SECONDS = 900
#: Seconds a failed download is remembered: reruns fail at once instead of retrying.
FAILURE_MEMORY_SECONDS = 300.0

_DOWNLOAD_LOCK = threading.Lock()
_FILE_LOCKS: dict[str, threading.Lock] = {}
#: file name → (time.monotonic() of the failure, the learner's message).
_FAILURES: dict[str, tuple[float, str]] = {}
#: (resolved path, size, mtime_ns) → MD5, so a verified file is not hashed again.
_MD5_CACHE: dict[tuple[str, int, int], str] = {}


def model_wait_seconds() -> float:
    """How long a request waits for a shared model: ``budgets().model_wait_seconds``
    (``$CNNLAB_MODEL_WAIT_SECONDS``, default 20 s)."""

    return float(budgets().model_wait_seconds)


class ModelUse:
    """``with pm.use():`` — hold a shared model's lock, waiting at most ``timeout`` seconds.

    Reusable and re-entrant (the lock is an ``RLock``: a thread that holds it may enter again
    at once). Raises ``ModelBusyError`` when other threads keep the model longer.
    """

    def __init__(self, lock: threading.RLock, name: str, timeout: float):
        self._lock, self._name, self.timeout = lock, name, float(timeout)

    def __enter__(self) -> ModelUse:
        if not self._lock.acquire(timeout=max(self.timeout, 0.0)):
            raise ModelBusyError(self._name, self.timeout)
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class PretrainedModel:
    """A Keras ImageNet network, where its weights came from, and a thread-safe forward pass.

    One instance is shared by every Streamlit session (``st.cache_resource``), so every call
    of the network goes through ``use()`` (its one lock, a bounded wait, then
    ``ModelBusyError``); ``predict`` runs a ``tf.function``-compiled forward pass
    (about 2.5× faster than ``keras.Model.predict`` for one image on a 2-core CPU).
    ``cached(key, build)`` keeps other compiled functions (Grad-CAM, feature extractors) with
    the model, built once.
    """

    def __init__(
        self,
        model: Any,
        spec: WeightsSpec,
        *,
        weights_source: str,
        weights_path: Path | None,
        imagenet_verified: bool,
        load_seconds: float,
    ) -> None:
        #: The ``keras.Model`` (functional), input (None, 224, 224, 3) for ResNet50.
        self.model = model
        self.spec = spec
        #: Learner-facing sentence: where the weights came from.
        self.weights_source = weights_source
        #: The weights file loaded, or None for random initial weights.
        self.weights_path = weights_path
        #: True only when the loaded file's MD5 equals Keras' official ImageNet file's.
        self.imagenet_verified = imagenet_verified
        #: Seconds to build the network and load the weights.
        self.load_seconds = load_seconds
        #: Serialises inference and the building of cached functions across threads; take it
        #: with ``use()`` (a bounded wait), not directly.
        self.lock = threading.RLock()
        self._cache: dict[str, Any] = {}
        self._forward: Callable[[Any], Any] | None = None

    @property
    def name(self) -> str:
        return self.spec.model_name

    @property
    def input_shape(self) -> tuple:
        """The model's input shape, e.g. (None, 224, 224, 3)."""
        return tuple(self.model.input_shape)

    def use(self, timeout: float | None = None) -> ModelUse:
        """``with pm.use():`` — the model to oneself, waiting at most ``timeout`` seconds
        (None: ``model_wait_seconds()``); raises ``ModelBusyError`` ("ResNet50 is busy with
        other visitors' photos; try again in a few seconds") when it stays busy."""
        return ModelUse(self.lock, self.name, model_wait_seconds() if timeout is None else timeout)

    def cached(self, key: str, build: Callable[[], T]) -> T:
        """``build()``'s result, built once per model and key (thread-safe; ``ModelBusyError``
        when the model stays busy)."""
        with self.use():
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Forward pass: preprocessed (N, H, W, 3) float32 → the model's output as numpy."""
        import tensorflow as tf

        x = tf.convert_to_tensor(np.asarray(batch, dtype=np.float32))
        with self.use():
            if self._forward is None:
                model = self.model
                self._forward = tf.function(
                    lambda t: model(t, training=False), reduce_retracing=True, autograph=False
                )
            return self._forward(x).numpy()

    def __repr__(self) -> str:
        return f"PretrainedModel({self.name}, {self.weights_source!r})"


def keras_cache_dir() -> Path:
    """Where Keras caches downloaded weights: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    return keras_home() / "models"


def file_md5(path: Path) -> str:
    """MD5 hex digest of a file (read in 1 MB chunks; remembered while the file is unchanged)."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    with _DOWNLOAD_LOCK:
        if key in _MD5_CACHE:
            return _MD5_CACHE[key]
    digest = hashlib.md5()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    with _DOWNLOAD_LOCK:
        _MD5_CACHE[key] = digest.hexdigest()
    return digest.hexdigest()


def how_to_provide(spec: WeightsSpec) -> str:
    """The two ways to make ``spec``'s weights available, as one learner-facing paragraph."""
    return (
        f"{spec.model_name} needs Keras' ImageNet weights file `{spec.file_name}` "
        f"(about {spec.size_mb} MB). Provide it in one of two ways: "
        f"(1) run CNN Lab once on a machine with internet access — Keras downloads the file "
        f"into its cache `{keras_cache_dir()}` (set `KERAS_HOME` to move the cache), or copy "
        f"the file there yourself; "
        f"(2) download it from {spec.origin} and set the environment variable "
        f"`{spec.env_var}` to the file's path before starting the app."
    )


def _local_file(path: Path, spec: WeightsSpec, *, via: str) -> Path:
    if not path.is_file():
        raise WeightsUnavailableError(
            f"{via} names `{path}`, which is not a file. " + how_to_provide(spec)
        )
    return path


def forget_failures() -> None:
    """Forget remembered download failures (the next request tries again)."""
    with _DOWNLOAD_LOCK:
        _FAILURES.clear()


def _fetch(url: str, dest, *, timeout: float, deadline: float, max_bytes: int) -> str:
    """Stream ``url`` into the open binary file ``dest``; returns the MD5 of what was written.

    ``timeout`` bounds each network wait (connect, every read), ``deadline`` (a
    ``time.monotonic()`` value) the whole download; more than ``max_bytes`` is refused.
    Raises ``OSError`` (``urllib.error.URLError``, ``TimeoutError``) on failure.
    """
    import urllib.request

    digest, total = hashlib.md5(), 0
    with urllib.request.urlopen(url, timeout=timeout) as response:
        while chunk := response.read(1 << 16):
            total += len(chunk)
            if total > max_bytes:
                raise OSError(f"the server sent more than {max_bytes:,} bytes")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the download took more than {DOWNLOAD_SECONDS} s")
            digest.update(chunk)
            dest.write(chunk)
    return digest.hexdigest()


def _download(spec: WeightsSpec, path: Path) -> None:
    """Download ``spec`` to ``path``: a temporary file in the same folder, MD5-checked, then
    renamed over ``path`` (readers never see a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{spec.file_name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as dest:
            md5 = _fetch(
                spec.origin,
                dest,
                timeout=DOWNLOAD_TIMEOUT,
                deadline=time.monotonic() + DOWNLOAD_SECONDS,
                max_bytes=int(spec.size_mb * 1.1e6) + (1 << 20),
            )
        if md5 != spec.md5:
            raise OSError(f"the downloaded file's MD5 is {md5}, not the published {spec.md5}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _keras_download(spec: WeightsSpec) -> Path:
    """Keras' cached copy of the file (MD5-checked), downloading it first if it is missing
    or corrupt. A failure is remembered for ``FAILURE_MEMORY_SECONDS``: until then every
    request fails at once with the same message instead of trying again."""
    path = keras_cache_dir() / spec.file_name
    with _DOWNLOAD_LOCK:
        failed = _FAILURES.get(spec.file_name)
    if failed and time.monotonic() - failed[0] < FAILURE_MEMORY_SECONDS:
        wait = FAILURE_MEMORY_SECONDS - (time.monotonic() - failed[0])
        raise WeightsUnavailableError(
            f"{failed[1]} CNN Lab tries again in about {max(1, round(wait / 60))} min."
        )
    with _file_lock(spec.file_name):  # one download per file, whatever the sessions
        try:
            if path.is_file() and file_md5(path) == spec.md5:
                return path
            _download(spec, path)  # missing, or corrupt: replaced atomically
            return path
        except OSError as err:  # no network, timeout, bad MD5, unwritable cache, ...
            reason = str(getattr(err, "reason", "") or err).strip() or type(err).__name__
            message = (
                f"The {spec.model_name} ImageNet weights could not be downloaded ({reason}). "
                + how_to_provide(spec)
            )
            with _DOWNLOAD_LOCK:
                _FAILURES[spec.file_name] = (time.monotonic(), message)
            raise WeightsUnavailableError(message) from None


def _file_lock(name: str) -> threading.Lock:
    with _DOWNLOAD_LOCK:
        return _FILE_LOCKS.setdefault(name, threading.Lock())


def _load(
    spec: WeightsSpec, weights: str | os.PathLike | None, build: Callable[[], Any]
) -> PretrainedModel:
    start = time.perf_counter()
    if weights is None:
        path, source = None, "random initial weights (weights=None): not trained, not ImageNet"
    elif isinstance(weights, str) and weights == "imagenet":
        env = os.environ.get(spec.env_var, "").strip()
        if env:
            path = _local_file(Path(env).expanduser(), spec, via=f"`{spec.env_var}`")
            source = f"local file `{path}` (from `{spec.env_var}`)"
        else:
            path = _keras_download(spec)
            source = f"Keras' cache `{path}`"
    else:
        path = _local_file(Path(weights).expanduser(), spec, via="The weights argument")
        source = f"local file `{path}`"

    model = build()
    if path is not None:
        try:
            model.load_weights(str(path))
        except Exception as err:  # wrong format, wrong architecture, damaged file, ...
            raise WeightsUnavailableError(
                f"`{path}` could not be loaded into {spec.model_name} ({err}). It must be a "
                f"Keras weights file (.h5 or .weights.h5) for exactly this architecture. "
                + how_to_provide(spec)
            ) from None
    verified = path is not None and spec.md5 is not None and file_md5(path) == spec.md5
    return PretrainedModel(
        model,
        spec,
        weights_source=source,
        weights_path=path,
        imagenet_verified=verified,
        load_seconds=time.perf_counter() - start,
    )


def load_resnet50(weights: str | os.PathLike | None = "imagenet") -> PretrainedModel:
    """ResNet50 with its 1000-class ImageNet head: input (N, 224, 224, 3), output (N, 1000).

    ``weights``: ``"imagenet"`` ($CNNLAB_RESNET50_WEIGHTS if set, else Keras' cache/download),
    a path to a weights file, or ``None`` for random initial weights. Raises
    ``WeightsUnavailableError`` when the weights cannot be had.
    """

    def build():
        import keras

        return keras.applications.ResNet50(weights=None)

    return _load(RESNET50, weights, build)


def load_vgg19(
    weights: str | os.PathLike | None = "imagenet", include_top: bool = False
) -> PretrainedModel:
    """VGG19, by default without its classifier (the food example's feature extractor).

    ``include_top=False``: input (N, 224, 224, 3) → block5_pool (N, 7, 7, 512) — the file is
    ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``; ``include_top=True``: output
    (N, 1000) probabilities. ``weights`` as for ``load_resnet50`` ($CNNLAB_VGG19_WEIGHTS).
    """
    spec = VGG19 if include_top else VGG19_NOTOP

    def build():
        import keras

        return keras.applications.VGG19(
            weights=None, include_top=include_top, input_shape=(224, 224, 3)
        )

    return _load(spec, weights, build)


def load_mobilenetv2(
    weights: str | os.PathLike | None = "imagenet", input_shape: tuple = (224, 224, 3)
) -> PretrainedModel:
    """MobileNetV2 (alpha 1.0) without its classifier: the own-images page's default backbone.

    Input (N, H, W, 3) preprocessed to [-1, 1] → out_relu (N, H/32, W/32, 1280); the weights
    are the same for every input size. ``weights`` as for ``load_resnet50``
    ($CNNLAB_MOBILENETV2_WEIGHTS). Keras publishes no checksum for this file, so
    ``imagenet_verified`` is always False for it.
    """

    def build():
        import keras

        return keras.applications.MobileNetV2(
            weights=None, include_top=False, input_shape=tuple(input_shape)
        )

    return _load(MOBILENETV2_NOTOP, weights, build)
