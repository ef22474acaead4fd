"""Real examples beside "what a filter wants to see": the image patches that excite one
channel most (Distill's "Feature Visualization": dataset examples).

``top_patches(model, layer, channel, inputs)`` runs a set of images (MNIST test digits, a
learner's photos, the sample photos for ResNet50 / VGG19) through the model up to ``layer``,
finds the cells where ``channel`` is largest and crops each to the cell's receptive field: the
input pixels the cell can see. ``cell_window`` computes that field's position from the layer
graph (kernel, stride, dilation and padding of every layer on the way, the union where
branches merge); its size is ``features.model_receptive_fields``'s.

Within one image, two cells whose fields overlap by more than half are the same place: only
the stronger counts. Each image gives at most ``per_image`` patches (default: as few as the
number of images allows, one per image when there are at least ``k`` images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlib.core.errors import InvalidArgumentError, InvalidModelError
from cnnlib.inspect import features
from cnnlib.inspect.saliency import keras_model_and_lock, model_function

__all__ = [
    "MAX_MAP_BYTES",
    "Patch",
    "TopPatches",
    "Window",
    "cell_window",
    "padding_before",
    "top_patches",
]

#: Bytes of one channel's maps kept for the whole image set (float32), checked before work.
MAX_MAP_BYTES = 256 * 1024 * 1024
#: Images per forward pass.
BATCH_IMAGES = 64


@dataclass(frozen=True)
class Window:
    """Input pixels one cell sees: rows ``top``..``bottom`` − 1, columns ``left``..``right``
    − 1. May reach beyond the image (into the padding)."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def size(self) -> tuple[int, int]:
        return (self.bottom - self.top, self.right - self.left)

    def clipped(self, height: int, width: int) -> Window:
        """The part inside an image of ``height`` × ``width``."""
        return Window(
            max(self.top, 0), max(self.left, 0), min(self.bottom, height), min(self.right, width)
        )


@dataclass(frozen=True)
class Patch:
    """One of the top patches: image ``image_index`` of the set, ``cell`` (row, column) of the
    layer's map, its ``activation``, its receptive field ``window`` (unclipped) and
    ``pixels``, the display image cropped to the window's part inside the image: (h, w, C)."""

    image_index: int
    cell: tuple[int, int]
    activation: float
    window: Window
    pixels: np.ndarray


@dataclass(frozen=True)
class TopPatches:
    """The ``k`` patches that excite ``channel`` of ``layer`` most, strongest first, out of
    ``images_searched`` images; ``field``: the receptive field's (rows, cols) size."""

    layer: str
    channel: int
    field: tuple[int, int]
    patches: tuple[Patch, ...]
    images_searched: int


# ---------------------------------------------------------------- receptive-field windows


def padding_before(layer: Any, size: tuple[int, int], g: features.Geometry) -> tuple[int, int]:
    """Rows and columns of padding ``layer`` adds before its (H, W) input: Keras' "same"
    (TensorFlow's rule: half of the total, the extra one after), ZeroPadding2D's top/left,
    minus Cropping2D's."""
    kind = type(layer).__name__
    if kind == "ZeroPadding2D":
        (top, _), (left, _) = layer.padding
        return (int(top), int(left))
    if kind == "Cropping2D":
        (top, _), (left, _) = layer.cropping
        return (-int(top), -int(left))
    if getattr(layer, "padding", None) != "same":
        return (0, 0)
    pads = []
    for n, k, s, d in zip(size, g.kernel, g.stride, g.dilation, strict=True):
        out = -(-n // s)
        pads.append(max((out - 1) * s + (k - 1) * d + 1 - n, 0) // 2)
    return (pads[0], pads[1])


def cell_window(model: Any, layer: str, row: int, col: int) -> Window:
    """The input pixels cell (``row``, ``col``) of ``layer``'s map sees, from the layer graph.

    For each layer on the way down, output cells a…b see input a·s − p … b·s − p + (k − 1)·d
    (kernel k, stride s, dilation d, padding before p); where branches merge, the union.
    Raises ``InvalidModelError`` for a layer whose field is not known (upsampling, a nested
    model) and ``InvalidArgumentError`` for a layer without a spatial map or a cell outside it.
    """
    keras_model, _ = keras_model_and_lock(model)
    names = [lyr.name for lyr in keras_model.layers]
    try:
        target = keras_model.get_layer(layer)
    except ValueError:
        raise InvalidArgumentError(f"The model has no layer named {layer!r}.") from None
    shape = features._single_output_shape(target, keras_model)
    if shape is None or len(shape) != 3:
        raise InvalidArgumentError(
            f"Layer {layer!r} has no feature maps (output {shape}); choose a convolution or "
            "pooling layer."
        )
    if not (0 <= row < shape[0] and 0 <= col < shape[1]):
        raise InvalidArgumentError(
            f"Layer {layer!r}'s maps are {shape[0]}×{shape[1]}: no cell ({row}, {col})."
        )
    # Ranges (r0, r1, c0, c1), inclusive, in each layer's output coordinates.
    ranges: dict[str, list[int]] = {layer: [row, row, col, col]}
    found: list[int] | None = None
    for lyr in reversed(keras_model.layers[: names.index(layer) + 1]):
        span = ranges.pop(lyr.name, None)
        if span is None:
            continue
        inbound = features._inbound_names(lyr, keras_model) or []
        if type(lyr).__name__ == "InputLayer" or not inbound:
            found = _union(found, span)
            continue
        g = features.layer_geometry(lyr, keras_model)
        if not isinstance(g, features.Geometry):
            raise InvalidModelError(
                f"The receptive field through layer {lyr.name!r} ({type(lyr).__name__}) is "
                "not known, so its patches cannot be cropped."
            )
        p = padding_before(lyr, _input_size(keras_model, lyr), g)
        (kr, kc), (sr, sc), (dr, dc) = g.kernel, g.stride, g.dilation
        below = [
            span[0] * sr - p[0],
            span[1] * sr - p[0] + (kr - 1) * dr,
            span[2] * sc - p[1],
            span[3] * sc - p[1] + (kc - 1) * dc,
        ]
        for name in inbound:
            if name in names and type(keras_model.get_layer(name)).__name__ != "InputLayer":
                ranges[name] = _union(ranges.get(name), below)
            else:  # the model's input (a Sequential does not list its InputLayer)
                found = _union(found, below)
    if found is None:
        raise InvalidModelError(f"Layer {layer!r} is not connected to the model's input.")
    return Window(found[0], found[2], found[1] + 1, found[3] + 1)


def _input_size(keras_model: Any, layer: Any) -> tuple[int, int]:
    """(H, W) of ``layer``'s (first) input in ``keras_model``'s graph."""
    tensors = features.layer_tensors(keras_model, layer, "input")
    first = tensors[0] if isinstance(tensors, list) else tensors
    shape = tuple(first.shape[1:3])
    if len(shape) != 2 or any(s is None for s in shape):
        raise InvalidModelError(f"Layer {layer.name!r} has no fixed-size spatial input.")
    return (int(shape[0]), int(shape[1]))


def _union(a: list[int] | None, b: list[int]) -> list[int]:
    if a is None:
        return list(b)
    return [min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])]


# ---------------------------------------------------------------- the search


def _channel_function(keras_model: Any, layer: str):
    """Compiled (N, H, W, C) batch, channel → (N, h, w) that channel of ``layer``."""
    import keras
    import tensorflow as tf

    out = features.layer_tensors(keras_model, keras_model.get_layer(layer))
    sub = keras.Model(keras_model.inputs[0], out)

    def run(x, channel):
        return tf.gather(sub(x, training=False), channel, axis=-1)

    shape = features.model_input_shape(keras_model)
    return tf.function(
        run,
        input_signature=[
            tf.TensorSpec([None, *shape], tf.float32),
            tf.TensorSpec([], tf.int32),
        ],
        autograph=False,
    )


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not lo <= value <= hi:
        raise InvalidArgumentError(
            f"{name} must be a whole number from {lo} to {hi}, got {value!r}."
        )
    return int(value)


def _best_cells(m: np.ndarray, limit: int, apart: tuple[float, float]) -> list[tuple[int, int]]:
    """Up to ``limit`` cells of one (h, w) map, strongest first, no two closer than ``apart``
    (rows, cols) cells on both axes (their fields would overlap by more than half)."""
    order = np.argsort(-m, axis=None, kind="stable")
    chosen: list[tuple[int, int]] = []
    for flat in order:
        r, c = divmod(int(flat), m.shape[1])
        if all(abs(r - r2) >= apart[0] or abs(c - c2) >= apart[1] for r2, c2 in chosen):
            chosen.append((r, c))
            if len(chosen) == limit:
                break
    return chosen


def top_patches(
    model: Any,
    layer: str,
    channel: int,
    inputs: np.ndarray,
    *,
    images: np.ndarray | None = None,
    k: int = 9,
    per_image: int | None = None,
) -> TopPatches:
    """The ``k`` image patches (1 to 64) that excite ``channel`` of ``layer`` most.

    ``inputs``: (N, H, W, C) float32, the images prepared as the model expects (raw pixels for
    a model that rescales inside, ``preprocess_input``-ed for ResNet50/VGG19). ``images``:
    the same N images as they should be shown, (N, H, W) or (N, H, W, C) of any dtype
    (default: ``inputs``). ``per_image``: the most patches one image may give (default
    ⌈k / N⌉). Fewer than ``k`` patches come back only when the images hold fewer separate
    places. Raises ``InvalidArgumentError`` for a bad layer, channel, shape or size.
    """
    keras_model, lock = keras_model_and_lock(model)
    x = np.asarray(inputs, dtype=np.float32)
    shape = features.model_input_shape(keras_model)
    if x.ndim != 4 or tuple(x.shape[1:]) != shape or len(x) == 0:
        raise InvalidArgumentError(
            f"The model takes images of shape {shape}; give a batch (N, "
            f"{', '.join(map(str, shape))}) with N ≥ 1, not an array of shape {x.shape}."
        )
    if not np.all(np.isfinite(x)):
        raise InvalidArgumentError("The images contain NaN or infinite values.")
    shown = x if images is None else np.asarray(images)
    if shown.shape[:3] != x.shape[:3]:
        raise InvalidArgumentError(
            f"images must be the same {len(x)} images of {shape[0]}×{shape[1]} as inputs; got "
            f"an array of shape {shown.shape}."
        )
    k = _check_int("k", k, 1, 64)
    per_image = math.ceil(k / len(x)) if per_image is None else per_image
    per_image = _check_int("per_image", per_image, 1, k)
    window = cell_window(keras_model, layer, 0, 0)  # checks the layer; the field's size
    out_shape = features._single_output_shape(keras_model.get_layer(layer), keras_model)
    h, w, channels = out_shape  # type: ignore[misc]
    channel = _check_int("channel", channel, 0, channels - 1)
    if len(x) * h * w * 4 > MAX_MAP_BYTES:
        raise InvalidArgumentError(
            f"{len(x):,} images give {len(x) * h * w * 4 / 2**20:,.0f} MB of maps at layer "
            f"{layer!r}, more than {MAX_MAP_BYTES // 2**20} MB: use fewer images."
        )
    field = features.model_receptive_fields(keras_model).get(layer)
    jump = field.jump if field is not None and field.jump else (1, 1)
    apart = (window.size[0] / 2 / jump[0], window.size[1] / 2 / jump[1])

    import tensorflow as tf

    fn = model_function(
        keras_model, ("channel", layer), lambda: _channel_function(keras_model, layer)
    )
    index = tf.constant(channel, tf.int32)
    maps = np.empty((len(x), h, w), np.float32)
    for i in range(0, len(x), BATCH_IMAGES):
        with lock:
            maps[i : i + BATCH_IMAGES] = fn(tf.constant(x[i : i + BATCH_IMAGES]), index).numpy()

    best = maps.reshape(len(x), -1).max(axis=1)
    found: list[tuple[float, int, int, int]] = []  # (activation, image, row, col)
    for i in np.argsort(-best, kind="stable"):
        if len(found) >= k and best[i] <= found[k - 1][0]:
            break  # no cell of this image (or any later one) beats the k-th patch
        for r, c in _best_cells(maps[i], per_image, apart):
            found.append((float(maps[i, r, c]), int(i), r, c))
        found.sort(key=lambda f: (-f[0], f[1], f[2], f[3]))
        del found[k:]

    patches = []
    for value, i, r, c in found:
        win = cell_window(keras_model, layer, r, c)
        part = win.clipped(shape[0], shape[1])
        pixels = shown[i, part.top : part.bottom, part.left : part.right].copy()
        patches.append(Patch(i, (r, c), value, win, pixels))
    return TopPatches(layer, channel, window.size, tuple(patches), len(x))
