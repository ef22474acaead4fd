"""What a filter wants to see: an input image that maximises one channel of one layer.

``maximize_activation`` follows the keras-io example "Visualizing what convnets learn": start
from a grey image with a little noise, then gradient ascent on the mean activation of the
channel (a border of the feature map left out), with the gradient normalised each step and
the usual regularisation: random jitter (the image is rolled a few pixels before each step),
a light blur every few steps and a decay towards grey.

The image is optimised in [0, 1] and mapped to the model's own input range (``input_range``,
e.g. (0, 255)) and then through ``preprocess`` (e.g. ``keras.applications.resnet50.
preprocess_input``, which accepts tensors) before the model sees it: models own their
preprocessing, so the returned image is in [0, 1] whatever the model takes. ``preprocess`` is
part of the cache key: pass the same function object each time (a new lambda is a new key).

Results are cached per (model, layer, channel, steps, seed, options) in a bounded in-process
cache that lives as long as the model (``cached_filter`` reads it without computing). Given
``should_stop``, the optimisation checks it between two steps and raises
``cnnlib.core.errors.WorkStopped``: ``cnnlib.training.filter_grid.FilterGridJob`` fills a grid of
one layer's filters that way, as a task of the one task base.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlib.core.checks import is_whole
from cnnlib.core.errors import InvalidArgumentError, WorkStopped
from cnnlib.inspect.saliency import input_shape, keras_model_and_lock, layer_output, model_function

__all__ = [
    "CACHE_BYTES",
    "DEFAULT_OPTIONS",
    "MAX_STEPS",
    "FilterImage",
    "cached_filter",
    "check_filter",
    "check_options",
    "clear_cache",
    "feature_layer_channels",
    "maximize_activation",
]

#: Budget, checked before any work.
MAX_STEPS = 500
#: Bytes of result images kept per model (least recently used dropped first).
CACHE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class FilterImage:
    """One maximised channel."""

    layer: str
    channel: int
    steps: int
    seed: int
    #: (H, W, C) float32 in [0, 1]: the input (before mapping to the model's range).
    image: np.ndarray
    #: Mean activation (border excluded) of the image after 0, 1, …, ``steps`` steps; each
    #: value but the last is measured on the jittered copy the next step saw.
    activations: tuple[float, ...]
    #: Seconds the optimisation took (a cache hit returns the stored result, seconds and all).
    seconds: float

    def stretched(self) -> np.ndarray:
        """The image with its contrast stretched for display (keras-io's ``deprocess_image``:
        mean 0.5, standard deviation 0.15, clipped to [0, 1])."""
        img = self.image.astype(np.float64)
        std = float(img.std())
        out = (img - img.mean()) / (std if std > 1e-8 else 1.0) * 0.15 + 0.5
        return np.clip(out, 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------- checks and the step


def feature_layer_channels(model: Any, layer_name: str) -> int:
    """Number of channels of ``layer_name``'s (batch, h, w, channels) output."""
    keras_model, _ = keras_model_and_lock(model)
    try:
        layer = keras_model.get_layer(layer_name)
    except ValueError:
        raise InvalidArgumentError(f"The model has no layer named {layer_name!r}.") from None
    shape = tuple(layer.output.shape)
    if len(shape) != 4:
        raise InvalidArgumentError(
            f"Layer {layer_name!r} has no feature maps (its output is {shape}); choose a "
            "convolution or pooling layer."
        )
    return int(shape[-1])


def check_filter(model: Any, layer_name: str, channel: int, steps: int) -> None:
    """Raise ``InvalidArgumentError`` unless ``layer_name`` has feature maps, ``channel`` is
    one of them and ``steps`` is from 1 to ``MAX_STEPS`` (checked before any work)."""
    n = feature_layer_channels(model, layer_name)
    if not is_whole(channel):
        raise InvalidArgumentError(f"The channel must be a whole number, got {channel!r}.")
    if not 0 <= channel < n:
        raise InvalidArgumentError(
            f"Layer {layer_name!r} has {n} channels: choose one from 0 to {n - 1}, got {channel}."
        )
    if not is_whole(steps, 1, MAX_STEPS):
        raise InvalidArgumentError(f"steps must be from 1 to {MAX_STEPS}, got {steps!r}.")


def _step_function(keras_model: Any, layer_name: str, input_range, preprocess):
    """Compiled (u (1, H, W, C) in [0, 1], shift (2,), channel, step size) →
    (u after one normalised gradient-ascent step, mean activation of the rolled u)."""
    import keras
    import tensorflow as tf

    layer = keras_model.get_layer(layer_name)
    sub = keras.Model(keras_model.inputs[0], layer_output(keras_model, layer))
    lo, hi = float(input_range[0]), float(input_range[1])
    h, w = (int(s) for s in sub.outputs[0].shape[1:3])
    b = min(2, (min(h, w) - 1) // 2)  # border left out (keras-io: 2)

    def step(u, shift, channel, step_size):
        with tf.GradientTape() as tape:
            tape.watch(u)
            x = lo + tf.roll(u, shift, axis=[1, 2]) * (hi - lo)
            if preprocess is not None:
                x = preprocess(x)
            act = tf.gather(sub(x, training=False), channel, axis=-1)
            loss = tf.reduce_mean(act[:, b : h - b, b : w - b])
        g = tape.gradient(loss, u)
        g = g / (tf.sqrt(tf.reduce_mean(tf.square(g))) + 1e-8)
        return u + step_size * g, loss

    return tf.function(
        step,
        input_signature=[
            tf.TensorSpec([1, *input_shape(keras_model)], tf.float32),
            tf.TensorSpec([2], tf.int32),
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([], tf.float32),
        ],
        autograph=False,
    )


def _blur(u: np.ndarray) -> np.ndarray:
    """3 × 3 binomial blur of (H, W, C), edges repeated."""
    p = np.pad(u, ((1, 1), (1, 1), (0, 0)), mode="edge")
    v = 0.25 * p[:-2] + 0.5 * p[1:-1] + 0.25 * p[2:]
    return 0.25 * v[:, :-2] + 0.5 * v[:, 1:-1] + 0.25 * v[:, 2:]


def _optimize(
    model: Any,
    layer_name: str,
    channel: int,
    *,
    steps: int,
    seed: int,
    options: dict[str, Any],
    should_stop: Callable[[], bool] | None = None,
) -> FilterImage:
    import tensorflow as tf

    keras_model, lock = keras_model_and_lock(model)
    o = options
    key = ("maximize", layer_name, o["input_range"], o["preprocess"])
    fn = model_function(
        keras_model,
        key,
        lambda: _step_function(keras_model, layer_name, o["input_range"], o["preprocess"]),
    )
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    shape = input_shape(keras_model)
    u = (0.5 + rng.uniform(-0.05, 0.05, size=shape)).astype(np.float32)
    ch, size = tf.constant(int(channel), tf.int32), tf.constant(float(o["step_size"]), tf.float32)
    activations = []
    for i in range(steps + 1):
        if should_stop is not None and should_stop():
            raise WorkStopped
        last = i == steps
        j = 0 if last else int(o["jitter"])
        shift = rng.integers(-j, j + 1, size=2).astype(np.int32) if j else np.zeros(2, np.int32)
        with lock:
            new, loss = fn(tf.constant(u[None]), tf.constant(shift), ch, size)
        activations.append(float(loss))
        if last:
            break
        u = new.numpy()[0]
        if o["decay"]:
            u = 0.5 + (u - 0.5) * (1.0 - o["decay"])
        if o["blur_every"] and (i + 1) % o["blur_every"] == 0:
            u = _blur(u)
        u = np.clip(u, 0.0, 1.0).astype(np.float32)
    return FilterImage(
        layer=layer_name,
        channel=int(channel),
        steps=steps,
        seed=seed,
        image=u,
        activations=tuple(activations),
        seconds=time.perf_counter() - start,
    )


# ---------------------------------------------------------------- options and the cache

#: Regularisation and input options, with their defaults.
DEFAULT_OPTIONS: dict[str, Any] = {
    "step_size": 0.03,
    "jitter": 2,
    "blur_every": 4,
    "decay": 0.01,
    "input_range": (0.0, 1.0),
    "preprocess": None,
}


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """``DEFAULT_OPTIONS`` updated with ``options``, each checked (``InvalidArgumentError``
    for an unknown or out-of-range one); the input range as a pair of floats."""
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise InvalidArgumentError(
            f"Unknown option {', '.join(unknown)}; options: {', '.join(DEFAULT_OPTIONS)}."
        )
    o = {**DEFAULT_OPTIONS, **options}
    if not isinstance(o["step_size"], int | float) or not 0 < o["step_size"] <= 1:
        raise InvalidArgumentError(f"step_size must be in (0, 1], got {o['step_size']!r}.")
    if not isinstance(o["jitter"], int) or not 0 <= o["jitter"] <= 16:
        raise InvalidArgumentError(f"jitter must be 0 to 16 pixels, got {o['jitter']!r}.")
    if not isinstance(o["blur_every"], int) or not 0 <= o["blur_every"] <= MAX_STEPS:
        raise InvalidArgumentError(
            f"blur_every must be 0 (never) to {MAX_STEPS} steps, got {o['blur_every']!r}."
        )
    if not isinstance(o["decay"], int | float) or not 0 <= o["decay"] < 1:
        raise InvalidArgumentError(f"decay must be in [0, 1), got {o['decay']!r}.")
    try:
        lo, hi = (float(v) for v in o["input_range"])
    except (TypeError, ValueError):
        lo = hi = float("nan")
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InvalidArgumentError(
            f"input_range must be (low, high) with low < high, got {o['input_range']!r}."
        )
    o["input_range"] = (lo, hi)
    if o["preprocess"] is not None and not callable(o["preprocess"]):
        raise InvalidArgumentError("preprocess must be a function of a tensor, or None.")
    return o


class _ResultCache:
    """Per model (weakly held): an LRU of results keyed by (layer, channel, steps, seed,
    options), at most ``CACHE_BYTES`` of images per model."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._per_model: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def get(self, keras_model: Any, key: tuple) -> FilterImage | None:
        with self._lock:
            entries = self._per_model.get(keras_model)
            if entries is None or key not in entries:
                return None
            entries.move_to_end(key)
            return entries[key]

    def put(self, keras_model: Any, key: tuple, result: FilterImage) -> None:
        with self._lock:
            entries = self._per_model.setdefault(keras_model, OrderedDict())
            entries[key] = result
            while sum(r.image.nbytes for r in entries.values()) > CACHE_BYTES and len(entries) > 1:
                entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._per_model = weakref.WeakKeyDictionary()


_cache = _ResultCache()


def _cache_key(layer_name: str, channel: int, steps: int, seed: int, o: dict) -> tuple:
    return (layer_name, int(channel), steps, seed, *sorted(o.items(), key=lambda kv: kv[0]))


def clear_cache() -> None:
    """Forget every cached result (for tests and benchmarks)."""
    _cache.clear()


def maximize_activation(
    model: Any,
    layer_name: str,
    channel: int,
    *,
    steps: int = 40,
    seed: int = 0,
    cache: bool = True,
    should_stop: Callable[[], bool] | None = None,
    **options: Any,
) -> FilterImage:
    """Gradient ascent on the mean activation of ``channel`` of ``layer_name``.

    ``model``: a ``keras.Model`` or ``PretrainedModel`` with one (H, W, C) input. Options
    (``DEFAULT_OPTIONS``): step_size (change of the image per step, root mean square, in
    [0, 1] units), jitter (pixels), blur_every (steps; 0 = never), decay (towards grey, per
    step), input_range (what [0, 1] maps to, e.g. (0, 255)), preprocess (applied after that,
    on a tensor). Returns the cached result object when the same question was asked before.
    ``should_stop``: asked before each step; when it answers True, ``WorkStopped`` is raised
    (nothing is cached). Raises ``InvalidArgumentError`` for an unknown layer, a layer
    without feature maps, a channel out of range or a bad option.
    """
    check_filter(model, layer_name, channel, steps)
    o = check_options(options)
    keras_model, _ = keras_model_and_lock(model)
    key = _cache_key(layer_name, channel, steps, seed, o)
    if cache and (hit := _cache.get(keras_model, key)) is not None:
        return hit
    result = _optimize(
        model, layer_name, channel, steps=steps, seed=seed, options=o, should_stop=should_stop
    )
    if cache:
        _cache.put(keras_model, key, result)
    return result


def cached_filter(
    model: Any, layer_name: str, channel: int, *, steps: int = 40, seed: int = 0, **options: Any
) -> FilterImage | None:
    """``maximize_activation``'s cached result for the same question, or None (no work)."""
    keras_model, _ = keras_model_and_lock(model)
    key = _cache_key(layer_name, channel, steps, seed, check_options(options))
    return _cache.get(keras_model, key)
