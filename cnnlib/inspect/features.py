"""Look inside a Keras convnet: layers, activations, filters, receptive fields.

Works for any built Keras model — the Sequential MNIST convnets and functional networks such
as ResNet50 or VGG19. Conventions: images and feature maps are channels-last; a layer's
activation for one image is (H, W, C) for a spatial layer or (C,) for a vector layer (the
batch axis is removed). Keras is imported only inside the functions that need it; the pure
parts (statistics, ordering, paging, receptive fields, colour maps, grids) are NumPy.

``FeatureExtractor`` builds ONE multi-output ``keras.Model`` for a (model, layer set) and
returns every chosen layer's activation from a single forward pass per image.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cnnlib.core import colormaps
from cnnlib.core.errors import CNNLabError, InvalidArgumentError, InvalidModelError
from cnnlib.core.text import shape_text
from cnnlib.models.layers import is_preprocessing_layer
from cnnlib.models.layers import keras_module as _keras

__all__ = [
    "GLOBAL",
    "ActivationSet",
    "ChannelStats",
    "FeatureExtractor",
    "FilterWeights",
    "Geometry",
    "HierarchyStep",
    "LayerInfo",
    "MapStats",
    "ReceptiveField",
    "Scores",
    "activation_grid",
    "channel_order",
    "channel_stats",
    "colorize",
    "conv_layer_names",
    "default_layer",
    "digit_input",
    "digit_to_image",
    "filter_grid",
    "filter_weights",
    "first_conv_layer",
    "image_input",
    "layer_geometry",
    "layer_kernel",
    "list_layers",
    "model_input_shape",
    "model_receptive_fields",
    "output_scores",
    "page_of",
    "receptive_field_chain",
    "receptive_fields",
    "spatial_hierarchy",
    "stage_layers",
    "tile_grid",
    "to_png",
    "top_channel",
    "weight_grid",
]

ScaleMode = Literal["per_map", "shared"]
Pair = tuple[int, int]

# --------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class LayerInfo:
    """One layer as the layer picker shows it.

    ``output_shape`` has no batch axis: (H, W, C) for spatial layers, (C,) for vectors.
    ``has_filters``: the layer is a ``Conv2D`` whose kernel (kh, kw, C_in, F) can be shown.
    ``relu``: its output goes through a ReLU (a ReLU layer, or ``activation="relu"``), so its
    zeros are units the ReLU switched off.
    """

    index: int
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    has_filters: bool
    relu: bool = False

    @property
    def spatial(self) -> bool:
        """True for a (H, W, C) output: its channels are 2-D feature maps."""
        return len(self.output_shape) == 3

    @property
    def channels(self) -> int:
        """Number of channels (feature maps), or units for a vector layer."""
        return int(self.output_shape[-1])

    @property
    def label(self) -> str:
        """ "conv2d · Conv2D · 26×26×32" — name, type and output shape."""
        return f"{self.name} · {self.kind} · {shape_text(self.output_shape)}"


def _node_in(model, layer):
    """The call of ``layer`` that belongs to ``model``'s graph (None if not found). For a
    nested model (a transfer model's backbone) ``layer.output`` is the output of its own
    inner graph, and one backbone may be called by several models."""
    if model is None or not getattr(layer, "_inbound_nodes", None):
        return None
    graph = getattr(model, "_functional", None) or model  # a Sequential wraps a Functional
    keys = getattr(graph, "_nodes", None) or ()
    return next(
        (n for i, n in enumerate(layer._inbound_nodes) if f"{id(layer)}_ib-{i}" in keys), None
    )


def layer_tensors(model, layer, which: Literal["input", "output"] = "output"):
    """``layer``'s input or output tensor(s) in ``model``'s graph (see ``_node_in``)."""
    node = _node_in(model, layer)
    if node is None:
        return layer.output if which == "output" else layer.input
    tensors = node.output_tensors if which == "output" else node.input_tensors
    return tensors[0] if len(tensors) == 1 else list(tensors)


def _single_output_shape(layer, model=None) -> tuple[int, ...] | None:
    """The layer's output shape without the batch axis, or None (several or unknown outputs)."""
    try:
        out = layer_tensors(model, layer)
    except Exception:  # a layer used several times has no single output
        return None
    if isinstance(out, list | tuple | dict):
        return None
    shape = tuple(out.shape[1:])
    if any(s is None for s in shape):
        return None
    return tuple(int(s) for s in shape)


def _is_input_layer(layer) -> bool:
    return type(layer).__name__ == "InputLayer"


def _check_model(model) -> None:
    try:
        inputs = model.inputs
    except Exception:
        inputs = None
    if not inputs:
        raise InvalidModelError(
            "This model has not been built yet (it has no input shape). Build or train it "
            "first, or save it after training and upload it again."
        )
    if len(inputs) != 1:
        raise InvalidModelError(
            f"This model has {len(inputs)} inputs; the feature-map viewer needs a model with "
            "one image input."
        )
    shape = tuple(inputs[0].shape[1:])
    if len(shape) != 3 or any(s is None for s in shape):
        raise InvalidModelError(
            f"This model's input has shape {shape_text(shape)}; the feature-map viewer "
            "needs a fixed-size image input (height × width × channels)."
        )


def list_layers(model) -> list[LayerInfo]:
    """Every layer of ``model`` in order, with type and output shape; input layers and the
    model's own preprocessing layers (scaling, augmentation) are left out.

    Layers whose output is not a single fixed-shape tensor are left out. Raises
    ``InvalidModelError`` for a model without one fixed-size image input.
    """
    _check_model(model)
    keras = _keras()
    infos: list[LayerInfo] = []
    for layer in model.layers:
        if _is_input_layer(layer) or is_preprocessing_layer(layer):
            continue
        shape = _single_output_shape(layer, model)
        if shape is None or len(shape) not in (1, 3):
            continue
        infos.append(
            LayerInfo(
                index=len(infos),
                name=layer.name,
                kind=type(layer).__name__,
                output_shape=shape,
                params=int(layer.count_params()) if layer.built else 0,
                has_filters=isinstance(layer, keras.layers.Conv2D),
                relu=_ends_with_relu(layer),
            )
        )
    return infos


def _ends_with_relu(layer) -> bool:
    if type(layer).__name__ == "ReLU":
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") == "relu"


def default_layer(layers: Sequence[LayerInfo]) -> str:
    """The layer to show first: the first feature maps after a ReLU (what the first filters
    found), else the first Conv2D, else the first layer."""
    for test in (lambda i: i.spatial and i.relu, lambda i: i.has_filters):
        found = next((info for info in layers if test(info)), None)
        if found is not None:
            return found.name
    if not layers:
        raise InvalidModelError("This model has no layer whose activations can be shown.")
    return layers[0].name


def model_input_shape(model) -> tuple[int, int, int]:
    """(H, W, C) the model takes (no batch axis)."""
    _check_model(model)
    return tuple(int(s) for s in model.inputs[0].shape[1:])  # type: ignore[return-value]


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class MapStats:
    """Statistics of one feature map (or one unit): min, max, mean, fraction of exact zeros."""

    min: float
    max: float
    mean: float
    zero_fraction: float


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel statistics of one layer's activation: four (C,) float arrays."""

    min: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    zero_fraction: np.ndarray

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    def of(self, channel: int) -> MapStats:
        """The statistics of one channel."""
        c = int(channel)
        return MapStats(
            float(self.min[c]),
            float(self.max[c]),
            float(self.mean[c]),
            float(self.zero_fraction[c]),
        )

    @property
    def layer_range(self) -> tuple[float, float]:
        """(min, max) over the whole layer: the shared colour scale."""
        return float(self.min.min()), float(self.max.max())


def _as_channels(act: np.ndarray) -> np.ndarray:
    """(H, W, C) → (H·W, C); (C,) → (1, C), as float32."""
    a = np.asarray(act, dtype=np.float32)
    if a.ndim == 3:
        return a.reshape(-1, a.shape[2])
    if a.ndim == 1:
        return a[None, :]
    raise InvalidArgumentError(
        f"An activation must be (H, W, C) or (C,); got an array of shape {a.shape}."
    )


def channel_stats(act: np.ndarray) -> ChannelStats:
    """Min, max, mean and fraction of zeros of each channel of (H, W, C) or (C,)."""
    flat = _as_channels(act)
    return ChannelStats(
        min=flat.min(axis=0),
        max=flat.max(axis=0),
        mean=flat.mean(axis=0, dtype=np.float64).astype(np.float32),
        zero_fraction=(flat == 0).mean(axis=0).astype(np.float32),
    )


def channel_order(stats: ChannelStats, *, by: Literal["index", "mean"] = "mean") -> np.ndarray:
    """Channel indices in display order: by index, or by mean activation, highest first.

    Ties keep index order (stable sort).
    """
    n = len(stats)
    if by == "index":
        return np.arange(n)
    if by == "mean":
        return np.argsort(-stats.mean, kind="stable")
    raise InvalidArgumentError(f"Order channels by 'index' or 'mean', not {by!r}.")


def top_channel(stats: ChannelStats) -> int:
    """Index of the channel with the highest mean activation (first one on ties)."""
    return int(np.argmax(stats.mean))


def page_of(order: np.ndarray, page: int, per_page: int) -> tuple[np.ndarray, int]:
    """(channels on ``page`` (0-based), number of pages) for ``order`` cut in pages."""
    if per_page < 1:
        raise InvalidArgumentError(f"Channels per page must be at least 1, got {per_page}.")
    n_pages = max(1, -(-len(order) // per_page))
    if not 0 <= page < n_pages:
        raise InvalidArgumentError(
            f"Page {page + 1} does not exist: this layer has {n_pages} page(s) of channels."
        )
    return np.asarray(order[page * per_page : (page + 1) * per_page]), n_pages


# --------------------------------------------------------------------------- forward pass


@dataclass
class ActivationSet:
    """Every chosen layer's activation for one image, from one forward pass.

    ``maps[name]`` is (H, W, C) or (C,). Large sets (over ``FeatureExtractor.compact_bytes``)
    are stored as float16 (relative error under 0.05 %) and returned as float32 on access.
    Channel statistics are computed on first use and kept.
    """

    maps: dict[str, np.ndarray]
    _stats: dict[str, ChannelStats] = field(default_factory=dict, repr=False)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            arr = self.maps[name]
        except KeyError:
            raise InvalidArgumentError(f"No activation was recorded for layer {name!r}.") from None
        return arr.astype(np.float32, copy=False)

    def __contains__(self, name: object) -> bool:
        return name in self.maps

    def stats(self, name: str) -> ChannelStats:
        """``channel_stats`` of one layer, computed once."""
        if name not in self._stats:
            self._stats[name] = channel_stats(self[name])
        return self._stats[name]


def _short_message(err: BaseException, limit: int = 300) -> str:
    """An exception's message for a learner: Keras' terminal colours and its "Arguments
    received by …" paragraph dropped, whitespace collapsed, at most ``limit`` characters."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    text = text.split("Arguments received by", 1)[0]
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class FeatureExtractor:
    """One multi-output ``keras.Model`` returning the activations of ``layer_names``.

    Built once per (model, layer set); ``run`` does exactly one forward pass per call (counted
    in ``forward_passes``) and is thread-safe (a lock), so one extractor of a shared model can
    serve every session. ``layer_names`` defaults to every layer of ``list_layers``.
    ``guard``: the context manager each forward pass runs in instead of the extractor's own
    lock — a shared model's ``PretrainedModel.use()``, so that it is called under its one lock
    with a bounded wait (``ModelBusyError``).
    """

    #: Activation sets bigger than this (float32 bytes) are stored as float16.
    compact_bytes = 64 * 1024 * 1024

    def __init__(self, model, layer_names: Sequence[str] | None = None, *, guard=None):
        keras = _keras()
        self.model = model
        self.layers = list_layers(model)
        by_name = {info.name: info for info in self.layers}
        names = [info.name for info in self.layers] if layer_names is None else list(layer_names)
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise InvalidArgumentError(
                f"The model has no viewable layer named {', '.join(map(repr, unknown))}."
            )
        if not names:
            raise InvalidModelError("This model has no layer whose activations can be shown.")
        self.layer_names = tuple(names)
        self.input_shape = model_input_shape(model)
        outputs = [layer_tensors(model, model.get_layer(n)) for n in names]
        self._model = keras.Model(inputs=model.inputs[0], outputs=outputs)
        self._lock = threading.Lock() if guard is None else guard
        self.forward_passes = 0
        self._float32_bytes = 4 * sum(int(np.prod(by_name[n].output_shape)) for n in names)

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[0] != 1 or tuple(x.shape[1:]) != self.input_shape:
            raise InvalidArgumentError(
                f"The model takes one image of shape {shape_text(self.input_shape)}; got an "
                f"array of shape {shape_text(x.shape)}."
            )
        if not np.all(np.isfinite(x)):
            raise InvalidArgumentError("The input contains NaN or infinite values.")
        return x

    def run(self, x: np.ndarray) -> ActivationSet:
        """Activations of every chosen layer for one image (H, W, C) or (1, H, W, C)."""
        batch = self._check_input(x)
        with self._lock:
            try:
                outputs = self._model(batch, training=False)
            except Exception as err:  # an uploaded model whose layers fail on this input
                raise InvalidModelError(
                    f"The model could not run on this image ({type(err).__name__}: "
                    f"{_short_message(err)}). Try another image, or a model saved from the "
                    "MNIST page."
                ) from err
            self.forward_passes += 1
        if not isinstance(outputs, list | tuple):
            outputs = [outputs]
        compact = self._float32_bytes > self.compact_bytes
        maps: dict[str, np.ndarray] = {}
        for name, out in zip(self.layer_names, outputs, strict=True):
            arr = np.asarray(out)[0]
            if compact and np.abs(arr).max(initial=0.0) < 6.0e4:
                arr = arr.astype(np.float16)
            maps[name] = arr
        return ActivationSet(maps)


@dataclass(frozen=True)
class Scores:
    """The model's output for the image: (K,) values; ``probabilities`` if softmax."""

    layer: str
    values: np.ndarray
    probabilities: bool

    @property
    def predicted(self) -> int:
        """Index of the highest score."""
        return int(np.argmax(self.values))


def output_scores(model, acts: ActivationSet) -> Scores | None:
    """The output layer's values from the same forward pass, or None if it was not recorded."""
    try:
        layer = model.outputs[0]._keras_history[0]
    except (AttributeError, IndexError):
        return None
    if layer.name not in acts:
        return None
    values = acts[layer.name]
    if values.ndim != 1:
        return None
    activation = getattr(getattr(layer, "activation", None), "__name__", "")
    softmax = activation == "softmax" or type(layer).__name__ == "Softmax"
    return Scores(layer.name, values, softmax)


# --------------------------------------------------------------------------- inputs


def digit_input(
    digit: np.ndarray, input_shape: Sequence[int], *, raw_pixels: bool = False
) -> np.ndarray:
    """A (28, 28) digit in [0, 1] as a model's batch (1, H, W, C) float32: in [0, 255] for a
    model that scales its own input (``raw_pixels``), else in [0, 1].

    Resized (bilinear) when the model is not 28×28; repeated to 3 channels for a colour model.
    """
    d = np.asarray(digit, dtype=np.float32)
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[:, :, 0]
    if d.ndim != 2:
        raise InvalidArgumentError(f"A digit must be (H, W); got an array of shape {d.shape}.")
    h, w, c = (int(s) for s in input_shape)
    if d.shape != (h, w):
        d = np.asarray(Image.fromarray(d, mode="F").resize((w, h), Image.Resampling.BILINEAR))
    d = np.clip(d, 0.0, 1.0) * (255.0 if raw_pixels else 1.0)
    return np.repeat(d[None, :, :, None], c, axis=3).astype(np.float32)


def digit_to_image(digit: np.ndarray) -> Image.Image:
    """A (28, 28) digit in [0, 1] as an 8-bit RGB image (for models that take photos)."""
    d = np.clip(np.asarray(digit, dtype=np.float32), 0.0, 1.0)
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[:, :, 0]
    return Image.fromarray((d * 255.0 + 0.5).astype(np.uint8), mode="L").convert("RGB")


def image_input(
    image: Image.Image, input_shape: Sequence[int], *, raw_pixels: bool = False
) -> np.ndarray:
    """A photo as a model's batch (1, H, W, C) float32: resized to H×W, gray if C = 1, raw
    pixels in [0, 255] for a model that scales its own input (``raw_pixels``), else in [0, 1].
    """
    h, w, c = (int(s) for s in input_shape)
    if c not in (1, 3):
        raise InvalidArgumentError(
            f"This model takes {c}-channel images; only 1 (gray) or 3 (RGB) channels can be "
            "made from a photo."
        )
    img = image.convert("L" if c == 1 else "RGB").resize((w, h), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / (1.0 if raw_pixels else 255.0)
    return arr.reshape(1, h, w, c)


# --------------------------------------------------------------------------- colour & grids

#: ``colorize``'s colour maps → ``cnnlib.core.colormaps.SCALES`` names (as plotly spells them).
_CMAPS = {"viridis": colormaps.MAGNITUDE, "diverging": colormaps.SIGN}


def colorize(
    values: np.ndarray,
    lo: float,
    hi: float,
    cmap: Literal["viridis", "diverging"] = "viridis",
) -> np.ndarray:
    """Map values in [lo, hi] (clipped) to colours: (...,) → (..., 3) uint8.

    A flat range (hi ≤ lo) gives the colour of ``lo`` (viridis) or of the middle (diverging).
    """
    flat = 0.5 if cmap == "diverging" else 0.0
    return colormaps.colorize(values, colormaps.table(_CMAPS[cmap]), lo, hi, flat=flat)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=11)
    except Exception:  # no FreeType: Pillow's bitmap font
        return ImageFont.load_default()


def tile_grid(
    tiles: Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
    *,
    columns: int,
    tile_px: int,
    gap: int = 3,
) -> np.ndarray:
    """Compose RGB tiles (h, w, 3) uint8 into one image, each resized to fit a ``tile_px``
    square (enlarged pixel by pixel, shrunk by averaging), with an optional label above each.
    Returns (H, W, 3) uint8 on white.
    """
    if not tiles:
        raise InvalidArgumentError("There is nothing to show: the grid has no tiles.")
    columns = max(1, min(int(columns), len(tiles)))
    rows = -(-len(tiles) // columns)
    label_h = 13 if labels else 0
    cell_w, cell_h = tile_px + gap, tile_px + gap + label_h
    canvas = Image.new("RGB", (columns * cell_w + gap, rows * cell_h + gap), (255, 255, 255))
    draw = ImageDraw.Draw(canvas) if labels else None
    font = _font() if labels else None
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        h, w = tile.shape[:2]
        scale = tile_px / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        # Enlarge with crisp pixels (each cell stays a square); shrink by averaging (no aliasing).
        resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
        img = Image.fromarray(np.ascontiguousarray(tile)).resize(size, resample)
        x0, y0 = gap + c * cell_w, gap + r * cell_h + label_h
        canvas.paste(img, (x0 + (tile_px - size[0]) // 2, y0 + (tile_px - size[1]) // 2))
        if draw is not None and labels is not None:
            draw.text((x0, y0 - label_h), str(labels[i]), fill=(40, 40, 40), font=font)
    return np.asarray(canvas)


#: A grid's palette: this many viridis levels, then white (background) and the label colour.
_GRID_LEVELS = 250
_WHITE, _INK = _GRID_LEVELS, _GRID_LEVELS + 1


def _grid_palette() -> list[int]:
    viridis = colormaps.table(colormaps.MAGNITUDE)
    levels = np.rint(np.linspace(0, len(viridis) - 1, _GRID_LEVELS)).astype(np.intp)
    colours = np.vstack([viridis[levels], [[255, 255, 255], [40, 40, 40]]])
    return colours.astype(np.uint8).ravel().tolist()


_PALETTE = _grid_palette()


def _fit_maps(maps: np.ndarray, tile_px: int) -> np.ndarray:
    """(n, h, w) maps resized to fit a ``tile_px`` square: enlarged cell by cell (nearest, each
    cell stays a square), shrunk by averaging (box filter, no aliasing)."""
    _, h, w = maps.shape
    scale = tile_px / max(h, w)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    if scale >= 1:
        rows = (np.arange(th) * h) // th
        cols = (np.arange(tw) * w) // tw
        return maps[:, rows][:, :, cols]
    return np.stack(
        [
            np.asarray(Image.fromarray(m, mode="F").resize((tw, th), Image.Resampling.BOX))
            for m in np.ascontiguousarray(maps, dtype=np.float32)
        ]
    )


def activation_grid(
    act: np.ndarray,
    channels: Sequence[int],
    *,
    stats: ChannelStats | None = None,
    scale: ScaleMode = "per_map",
    columns: int = 16,
    tile_px: int = 64,
    gap: int = 3,
    labels: bool = True,
) -> Image.Image:
    """The chosen channels of a spatial activation (H, W, C) as ONE palette image (mode "P").

    Each map is coloured with viridis: ``per_map`` stretches each map's own min..max,
    ``shared`` uses the min..max of the whole layer (all channels), so brightness compares
    across maps; a flat range gives the darkest colour. Maps are resized to fit ``tile_px``
    squares on a white background, labelled with their channel index. Built with whole-array
    NumPy operations and a 252-colour palette, so hundreds of maps compose and encode as PNG
    in tens of milliseconds.
    """
    a = np.asarray(act)
    if a.ndim != 3:
        raise InvalidArgumentError(
            f"An activation grid needs (H, W, C) feature maps; got shape {a.shape}."
        )
    chosen = np.asarray(channels, dtype=np.intp)
    if chosen.size == 0:
        raise InvalidArgumentError("There is nothing to show: no channel was chosen.")
    stats = stats if stats is not None else channel_stats(a)
    if scale == "shared":
        lo_all, hi_all = stats.layer_range
        lo = np.full(chosen.size, lo_all, np.float32)
        hi = np.full(chosen.size, hi_all, np.float32)
    elif scale == "per_map":
        lo, hi = stats.min[chosen], stats.max[chosen]
    else:
        raise InvalidArgumentError(f"The colour scale is 'per_map' or 'shared', not {scale!r}.")
    maps = _fit_maps(np.moveaxis(a[:, :, chosen], 2, 0).astype(np.float32), tile_px)
    span = (hi - lo)[:, None, None]
    t = np.where(span > 0, (maps - lo[:, None, None]) / np.where(span > 0, span, 1), 0.0)
    index = np.rint(np.clip(t, 0.0, 1.0) * (_GRID_LEVELS - 1)).astype(np.uint8)

    n, th, tw = index.shape
    columns = max(1, min(int(columns), n))
    rows = -(-n // columns)
    label_h = 13 if labels else 0
    cell_w, cell_h = tile_px + gap, tile_px + gap + label_h
    canvas = np.full((rows * cell_h + gap, columns * cell_w + gap), _WHITE, np.uint8)
    dy, dx = (tile_px - th) // 2, (tile_px - tw) // 2
    for i in range(n):
        r, c = divmod(i, columns)
        y0, x0 = gap + r * cell_h + label_h + dy, gap + c * cell_w + dx
        canvas[y0 : y0 + th, x0 : x0 + tw] = index[i]
    image = Image.fromarray(canvas, mode="P")
    image.putpalette(_PALETTE)
    if labels:
        draw, font = ImageDraw.Draw(image), _font()
        for i, ch in enumerate(chosen):
            r, c = divmod(i, columns)
            draw.text((gap + c * cell_w, gap + r * cell_h), str(int(ch)), fill=_INK, font=font)
    return image


def to_png(image: np.ndarray | Image.Image) -> bytes:
    """An (H, W, 3) uint8 array or a PIL image → PNG bytes (fast compression, for display)."""
    import io

    img = image if isinstance(image, Image.Image) else Image.fromarray(np.ascontiguousarray(image))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class FilterWeights:
    """One filter of a Conv2D layer: ``kernel`` (kh, kw, C_in) float32 and its bias."""

    layer: str
    index: int
    kernel: np.ndarray
    bias: float | None

    @property
    def stats(self) -> MapStats:
        """Min, max, mean and fraction of zeros of the kernel's weights."""
        k = self.kernel
        return MapStats(float(k.min()), float(k.max()), float(k.mean()), float((k == 0).mean()))

    @property
    def strongest_channel(self) -> int:
        """The input channel with the largest sum of absolute weights."""
        return int(np.argmax(np.abs(self.kernel).sum(axis=(0, 1))))


def conv_layer_names(model) -> list[str]:
    """Names of the layers whose filters can be shown (``Conv2D``), in order."""
    return [info.name for info in list_layers(model) if info.has_filters]


def first_conv_layer(model) -> str | None:
    """Name of the first ``Conv2D`` layer, or None."""
    names = conv_layer_names(model)
    return names[0] if names else None


def _kernel(model, layer_name: str) -> tuple[np.ndarray, np.ndarray | None]:
    keras = _keras()
    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        raise InvalidArgumentError(f"The model has no layer named {layer_name!r}.") from None
    if not isinstance(layer, keras.layers.Conv2D):
        raise InvalidArgumentError(
            f"Layer {layer_name!r} is a {type(layer).__name__}, not a Conv2D: it has no filters."
        )
    kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), dtype=np.float32)
    bias = layer.bias
    return kernel, (
        None if bias is None else np.asarray(keras.ops.convert_to_numpy(bias), np.float32)
    )


def layer_kernel(model, layer_name: str) -> np.ndarray:
    """A Conv2D layer's kernel, (kh, kw, C_in, F) float32."""
    return _kernel(model, layer_name)[0]


def filter_weights(model, layer_name: str, index: int) -> FilterWeights:
    """Filter ``index`` of Conv2D ``layer_name``: its (kh, kw, C_in) weights and bias."""
    kernel, bias = _kernel(model, layer_name)
    n = kernel.shape[3]
    if not 0 <= int(index) < n:
        raise InvalidArgumentError(
            f"Layer {layer_name!r} has {n} filters (0 to {n - 1}); there is no filter {index}."
        )
    return FilterWeights(
        layer_name,
        int(index),
        np.ascontiguousarray(kernel[:, :, :, index]),
        None if bias is None else float(bias[index]),
    )


def filter_grid(
    kernel: np.ndarray,
    *,
    bgr: bool = False,
    columns: int = 16,
    tile_px: int = 48,
    labels: bool = True,
) -> np.ndarray:
    """All filters of a first layer (kh, kw, C_in, F) as one (H, W, 3) uint8 image.

    3-channel filters are shown in colour: each filter scaled so its largest |weight| is
    full strength, zero at mid-grey; ``bgr`` swaps the channels back to RGB for networks fed
    BGR images (ResNet50 and VGG19's "caffe" preprocessing). Other filters are shown per
    filter on a blue (negative) – white (0) – red (positive) scale, averaged over channels
    when C_in ≠ 1.
    """
    k = np.asarray(kernel, dtype=np.float32)
    if k.ndim != 4:
        raise InvalidArgumentError(f"A Conv2D kernel is (kh, kw, C_in, F); got shape {k.shape}.")
    tiles = []
    for f in range(k.shape[3]):
        w = k[:, :, :, f]
        top = float(np.abs(w).max())
        if k.shape[2] == 3:
            rgb = w[:, :, ::-1] if bgr else w
            scaled = 0.5 + 0.5 * rgb / top if top > 0 else np.full_like(rgb, 0.5)
            tiles.append((np.clip(scaled, 0, 1) * 255.0 + 0.5).astype(np.uint8))
        else:
            m = w.mean(axis=2)
            tiles.append(colorize(m, -top, top, "diverging"))
    names = [str(f) for f in range(k.shape[3])] if labels else None
    return tile_grid(tiles, names, columns=columns, tile_px=tile_px)


def weight_grid(
    kernel: np.ndarray, *, columns: int = 16, tile_px: int = 32, labels: bool = True
) -> np.ndarray:
    """One filter's weights (kh, kw, C_in): one kh×kw tile per input channel, on one
    blue–white–red scale symmetric around 0 shared by all channels. (H, W, 3) uint8.
    """
    k = np.asarray(kernel, dtype=np.float32)
    if k.ndim != 3:
        raise InvalidArgumentError(f"One filter's weights are (kh, kw, C_in); got {k.shape}.")
    top = float(np.abs(k).max())
    tiles = [colorize(k[:, :, c], -top, top, "diverging") for c in range(k.shape[2])]
    names = [str(c) for c in range(k.shape[2])] if labels else None
    return tile_grid(tiles, names, columns=columns, tile_px=tile_px)


# --------------------------------------------------------------------------- receptive fields


@dataclass(frozen=True)
class Geometry:
    """How a layer moves over its input along (rows, columns): kernel, stride, dilation.

    Layers that do not look at neighbours (activations, batch norm, add, padding, ...) have
    the identity geometry (1, 1, 1).
    """

    kernel: Pair = (1, 1)
    stride: Pair = (1, 1)
    dilation: Pair = (1, 1)


#: A layer whose every output sees the whole input (Flatten, Dense, global pooling).
GLOBAL = "global"


@dataclass(frozen=True)
class ReceptiveField:
    """Input pixels one output cell can see: ``size`` (rows, cols); ``jump``: input pixels
    between neighbouring output cells (the product of the strides so far).

    ``whole_input``: the layer mixes every position (Flatten, Dense, global pooling); then
    ``size`` is the input size and ``jump`` is None. A ``size`` larger than the input is the
    theoretical field: the cell sees all of the (padded) image.
    """

    size: Pair
    jump: Pair | None
    whole_input: bool = False

    @property
    def label(self) -> str:
        """ "18×18 px" or "the whole image"."""
        if self.whole_input:
            return "the whole image"
        h, w = self.size
        return f"{h} px" if h == w else f"{h}×{w} px"

    def describe(self, input_size: Pair) -> str:
        """``label``, saying so when the field is larger than the (H, W) input image."""
        h, w = input_size
        if not self.whole_input and (self.size[0] > h or self.size[1] > w):
            return f"{self.label}, more than the whole {h}×{w} image"
        return self.label


def _grow(rf: ReceptiveField, g: Geometry) -> ReceptiveField:
    """r_out = r_in + d·(k − 1)·j_in; j_out = j_in·s (per axis)."""
    assert rf.jump is not None
    axes = zip(rf.size, g.kernel, g.dilation, rf.jump, g.stride, strict=True)
    size = tuple(r + d * (k - 1) * j for r, k, d, j, _ in axes)
    jump = tuple(j * s for j, s in zip(rf.jump, g.stride, strict=True))
    return ReceptiveField(size, jump)  # type: ignore[arg-type]


def receptive_field_chain(geometries: Sequence[Geometry]) -> list[ReceptiveField]:
    """Receptive field after each layer of a plain chain (no branches), from a 1-pixel input."""
    rf = ReceptiveField((1, 1), (1, 1))
    out = []
    for g in geometries:
        rf = _grow(rf, g)
        out.append(rf)
    return out


def receptive_fields(
    graph: Sequence[tuple[str, Geometry | str | None, Sequence[str]]],
    *,
    input_size: Pair,
) -> dict[str, ReceptiveField | None]:
    """Receptive field of every node of a layer graph, in topological order.

    ``graph``: (name, geometry, input names); a node without inputs is an input (1 pixel).
    geometry ``GLOBAL`` = sees the whole input; None = unknown (e.g. upsampling), and so is
    everything downstream of it. Where branches merge (Add, Concatenate), each output cell
    sees the union: the largest field of its inputs.
    """
    out: dict[str, ReceptiveField | None] = {}
    for name, geometry, inputs in graph:
        if not inputs:
            out[name] = ReceptiveField((1, 1), (1, 1))
            continue
        parents = [out.get(p) for p in inputs]
        if geometry is None or any(p is None for p in parents):
            out[name] = None
            continue
        if geometry == GLOBAL or any(p.whole_input for p in parents):  # type: ignore[union-attr]
            out[name] = ReceptiveField(tuple(input_size), None, True)  # type: ignore[arg-type]
            continue
        size = tuple(max(p.size[a] for p in parents) for a in (0, 1))  # type: ignore[union-attr]
        jump = tuple(max(p.jump[a] for p in parents) for a in (0, 1))  # type: ignore[union-attr,index]
        out[name] = _grow(ReceptiveField(size, jump), geometry)  # type: ignore[arg-type]
    return out


def _pair(value: Any) -> Pair:
    if isinstance(value, int):
        return (value, value)
    a, b = value
    return (int(a), int(b))


def layer_geometry(layer, model=None) -> Geometry | str | None:
    """A Keras layer's ``Geometry`` (in ``model``'s graph when given); ``GLOBAL`` if its
    output is not spatial (Flatten, Dense, global pooling); None for layers that enlarge maps
    (transposed conv, upsampling) and nested models (a backbone: not worked out here).
    """
    kind = type(layer).__name__
    shape = _single_output_shape(layer, model)
    if shape is not None and len(shape) != 3:
        return GLOBAL
    if "Transpose" in kind or kind.startswith("UpSampling"):
        return None
    if isinstance(layer, _keras().Model):
        return None
    if hasattr(layer, "kernel_size") and hasattr(layer, "strides"):
        return Geometry(
            _pair(layer.kernel_size),
            _pair(layer.strides),
            _pair(getattr(layer, "dilation_rate", 1)),
        )
    if hasattr(layer, "pool_size") and hasattr(layer, "strides"):
        strides = layer.strides if layer.strides is not None else layer.pool_size
        return Geometry(_pair(layer.pool_size), _pair(strides), (1, 1))
    return Geometry()


def _inbound_names(layer, model=None) -> list[str] | None:
    try:
        inputs = layer_tensors(model, layer, "input")
    except Exception:
        return None
    names = []
    for t in _keras().tree.flatten(inputs):
        history = getattr(t, "_keras_history", None)
        if history is None:
            return None
        names.append(history[0].name)
    return names


def model_receptive_fields(model) -> dict[str, ReceptiveField | None]:
    """Receptive field (in input pixels) of every layer of ``model``, from its layer graph."""
    h, w, _ = model_input_shape(model)
    graph: list[tuple[str, Geometry | str | None, list[str]]] = []
    previous: str | None = None
    for layer in model.layers:
        if _is_input_layer(layer):
            graph.append((layer.name, Geometry(), []))
            previous = layer.name
            continue
        inbound = _inbound_names(layer, model)
        if inbound is None:  # shared or unusual layer: assume a chain
            inbound = [previous] if previous else []
        graph.append((layer.name, layer_geometry(layer, model), inbound))
        previous = layer.name
    if graph and graph[0][2]:  # Sequential models may not list their InputLayer
        first_inputs = {n for _, _, ins in graph for n in ins} - {n for n, _, _ in graph}
        graph = [(n, Geometry(), []) for n in sorted(first_inputs)] + graph
    return receptive_fields(graph, input_size=(h, w))


# --------------------------------------------------------------------------- hierarchy

#: Layers that only pad or crop: never the representative of a stage.
_PADDING_KINDS = ("ZeroPadding2D", "Cropping2D")


def stage_layers(layers: Sequence[LayerInfo]) -> list[str]:
    """The last spatial layer of each run of layers with the same spatial size.

    A "stage" is where the maps keep their size (e.g. VGG19's block2_pool + block3 convs);
    its last layer is the stage's output. Padding and cropping layers are skipped.
    """
    stages: list[str] = []
    current: tuple[int, int] | None = None
    for info in layers:
        if not info.spatial or info.kind in _PADDING_KINDS:
            continue
        size = info.output_shape[:2]
        if size == current:
            stages[-1] = info.name
        else:
            stages.append(info.name)
            current = size  # type: ignore[assignment]
    return stages


@dataclass(frozen=True)
class HierarchyStep:
    """The most active feature map of one stage: (H, W) float32, where it comes from, and how
    much of the input each of its cells sees."""

    layer: str
    kind: str
    channel: int
    channels: int
    map: np.ndarray
    mean: float
    receptive_field: ReceptiveField | None

    @property
    def size(self) -> Pair:
        """Spatial size (H, W) of the map."""
        return (int(self.map.shape[0]), int(self.map.shape[1]))


def spatial_hierarchy(
    acts: ActivationSet,
    layers: Sequence[LayerInfo],
    fields: Mapping[str, ReceptiveField | None],
) -> list[HierarchyStep]:
    """One step per stage (``stage_layers``): its most active channel (highest mean)."""
    kinds = {info.name: info for info in layers}
    steps = []
    for name in stage_layers([info for info in layers if info.name in acts]):
        stats = acts.stats(name)
        ch = top_channel(stats)
        steps.append(
            HierarchyStep(
                layer=name,
                kind=kinds[name].kind,
                channel=ch,
                channels=len(stats),
                map=acts[name][:, :, ch],
                mean=float(stats.mean[ch]),
                receptive_field=fields.get(name),
            )
        )
    return steps


def open_model(model, *, guard=None) -> tuple[FeatureExtractor, dict[str, ReceptiveField | None]]:
    """The ``FeatureExtractor`` and the receptive fields of any model, e.g. an uploaded one.
    ``guard``: see ``FeatureExtractor`` (a shared model's ``use()``).

    A model the viewer cannot open raises ``InvalidModelError`` naming what went wrong,
    whatever Keras raised (an unusual custom layer, a graph it cannot slice, …).
    """
    try:
        return FeatureExtractor(model, guard=guard), model_receptive_fields(model)
    except CNNLabError:
        raise
    except Exception as err:
        raise InvalidModelError(
            f"The feature-map viewer cannot open this model ({type(err).__name__}: "
            f"{_short_message(err)})."
        ) from err
