"""The whole network at once (as CNN Explainer shows it), for any Keras model: one image's
activations in every layer as small maps, each layer's output shape, the edges between
layers; the arithmetic behind one cell of a Conv2D map; and the architecture as DOT text for
``st.graphviz_chart``.

``layer_graph(model)`` is the graph both views share: the model's input and every layer the
feature-map viewer can show (``features.list_layers``: preprocessing layers such as
``Rescaling`` are passed through, so an edge may skip them), joined by edges. For a big
network whose layers have block names (ResNet50's ``conv3_block2_*``, VGG19's ``block4_*``,
``cnnlib.inspect.blocks``) a node is a block, shown by its last layer's output.

``network_overview(model, x)`` runs ``x`` once through the model (one multi-output forward
pass, ``features.FeatureExtractor``) and keeps, per node, up to ``maps`` channels (the most
active first) shrunk to at most ``thumb_px`` pixels a side, and the node's value range;
``overview_from_activations`` does the same from activations computed already.

``conv_cell(model, layer, x, row, col, filter)`` is one output cell of a Conv2D layer worked
out from the numbers in the model: its input patch (zeros where it reaches into the padding),
the filter's weights, patch ⊙ kernel summed per input channel, the bias, the activation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.core.text import shape_text
from cnnlib.inspect import features
from cnnlib.inspect.blocks import group_by_block
from cnnlib.inspect.patches import padding_before
from cnnlib.inspect.saliency import keras_model_and_lock
from cnnlib.models.layers import keras_module as _keras

__all__ = [
    "MAX_MAPS",
    "ConvCell",
    "GraphNode",
    "Overview",
    "OverviewNode",
    "architecture_dot",
    "conv_cell",
    "layer_graph",
    "network_overview",
    "overview_from_activations",
]

#: Most channels drawn per node, and the largest thumbnail side.
MAX_MAPS = 64
MAX_THUMB_PX = 128


@dataclass(frozen=True)
class GraphNode:
    """One column of the overview: the model's input, a layer, or a block of layers.

    ``name``: the layer's (or block's) name; ``kind``: the layer's class name, "Input", or
    "Block"; ``output_shape``: without the batch axis (the block's last layer's);
    ``layers``: the model's layers it stands for (none for the input); ``inputs``: the names
    of the nodes that feed it.
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    layers: tuple[str, ...]
    inputs: tuple[str, ...]

    @property
    def output_layer(self) -> str | None:
        """The layer whose output the node shows (the block's last), None for the input."""
        return self.layers[-1] if self.layers else None

    @property
    def label(self) -> str:
        what = f"{len(self.layers)} layers" if self.kind == "Block" else self.kind
        return f"{self.name} · {what} · {shape_text(self.output_shape)}"


def _input_name(model: Any) -> str:
    history = getattr(model.inputs[0], "_keras_history", None)
    return history[0].name if history else "input"


def layer_graph(model: Any, *, by_block: bool | None = None) -> list[GraphNode]:
    """The overview's nodes in graph order, the input first (see the module's docstring).

    ``by_block``: one node per block; default: when some block has more than one layer.
    Raises ``InvalidModelError`` for a model without one fixed-size image input.
    """
    keras_model, _ = keras_model_and_lock(model)
    infos = features.list_layers(keras_model)
    shown = {info.name: info for info in infos}
    first = _input_name(keras_model)
    parents: dict[str, list[str]] = {}
    previous = first
    for layer in keras_model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        parents[layer.name] = features._inbound_names(layer, keras_model) or [previous]
        previous = layer.name

    memo: dict[str, list[str]] = {}

    def feeding(name: str) -> list[str]:
        """The shown layers (or the input) that ``name``'s output comes from."""
        if name in shown:
            return [name]
        if name not in parents:  # the input layer
            return [first]
        if name not in memo:
            memo[name] = list(dict.fromkeys(n for p in parents[name] for n in feeding(p)))
        return memo[name]

    groups = group_by_block(list(shown))
    if by_block is None:
        by_block = any(len(members) > 1 for _, members in groups)
    if not by_block:
        groups = [(name, (name,)) for name in shown]
    # A block of one layer is shown under the layer's own name.
    groups = [(members[0] if len(members) == 1 else block, members) for block, members in groups]
    owner = {member: node for node, members in groups for member in members}
    owner[first] = first
    nodes = [GraphNode(first, "Input", features.model_input_shape(keras_model), (), ())]
    for node, members in groups:
        last = shown[members[-1]]
        feeds = [owner[n] for m in members for p in parents[m] for n in feeding(p)]
        nodes.append(
            GraphNode(
                name=node,
                kind=last.kind if len(members) == 1 else "Block",
                output_shape=last.output_shape,
                layers=tuple(members),
                inputs=tuple(dict.fromkeys(f for f in feeds if f != node)),
            )
        )
    return nodes


# ---------------------------------------------------------------- the overview


@dataclass(frozen=True)
class OverviewNode:
    """A ``GraphNode`` with one image's activation.

    Spatial nodes: ``maps`` (n, h, w) float32, ``channels`` the n channels shown (most active
    first), each map shrunk (box average) to at most ``thumb_px`` a side. Vector nodes:
    ``values`` (C,) float32, every unit. ``lo``, ``hi``: the whole activation's range (all
    channels), the node's colour scale.
    """

    node: GraphNode
    maps: np.ndarray | None
    channels: tuple[int, ...]
    values: np.ndarray | None
    lo: float
    hi: float

    @property
    def name(self) -> str:
        return self.node.name


@dataclass(frozen=True)
class Overview:
    """Every node of ``layer_graph`` with its activation; ``edges`` (from, to) node names;
    ``by_block``: some node is a block of layers."""

    nodes: tuple[OverviewNode, ...]
    edges: tuple[tuple[str, str], ...]
    by_block: bool

    @property
    def range(self) -> tuple[float, float]:
        """(min, max) over the whole network: the colour scale shared by every node."""
        return min(n.lo for n in self.nodes), max(n.hi for n in self.nodes)

    def node(self, name: str) -> OverviewNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise InvalidArgumentError(f"The overview has no node named {name!r}.")


def _thumbnails(act: np.ndarray, channels: np.ndarray, thumb_px: int) -> np.ndarray:
    """(h, w, C) → (n, h', w') float32 of the chosen channels, box-shrunk to fit thumb_px."""
    h, w = act.shape[:2]
    maps = np.moveaxis(act[:, :, channels], 2, 0).astype(np.float32)
    scale = thumb_px / max(h, w)
    if scale >= 1:
        return maps
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.stack(
        [np.asarray(Image.fromarray(m, mode="F").resize(size, Image.Resampling.BOX)) for m in maps]
    )


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not lo <= value <= hi:
        raise InvalidArgumentError(
            f"{name} must be a whole number from {lo} to {hi}, got {value!r}."
        )
    return int(value)


def network_overview(
    model: Any,
    x: np.ndarray,
    *,
    maps: int = 8,
    thumb_px: int = 32,
    by_block: bool | None = None,
) -> Overview:
    """One image through the whole network (see the module's docstring).

    ``model``: a ``keras.Model`` or ``PretrainedModel``; ``x``: one (H, W, C) or (1, H, W, C)
    input prepared as the model expects; ``maps``: channels kept per node (1 to
    ``MAX_MAPS``); ``thumb_px``: their largest side (4 to ``MAX_THUMB_PX``).
    """
    maps = _check_int("maps", maps, 1, MAX_MAPS)
    thumb_px = _check_int("thumb_px", thumb_px, 4, MAX_THUMB_PX)
    keras_model, lock = keras_model_and_lock(model)
    graph = layer_graph(keras_model, by_block=by_block)
    names = [n.output_layer for n in graph if n.output_layer is not None]
    extractor = features.FeatureExtractor(keras_model, names, guard=lock)
    return overview_from_activations(graph, extractor.run(x), x, maps=maps, thumb_px=thumb_px)


def overview_from_activations(
    graph: Sequence[GraphNode],
    acts: features.ActivationSet,
    x: np.ndarray,
    *,
    maps: int = 8,
    thumb_px: int = 32,
) -> Overview:
    """``network_overview`` from activations computed already, without a forward pass.

    ``graph``: ``layer_graph(model)``; ``acts``: holds every node's output layer (e.g. the
    ``FeatureExtractor`` of every layer that the Feature-maps page runs once per image; its
    channel statistics are reused); ``x``: the input those activations came from, one
    (H, W, C) or (1, H, W, C) image (the input node's maps).
    """
    maps = _check_int("maps", maps, 1, MAX_MAPS)
    thumb_px = _check_int("thumb_px", thumb_px, 4, MAX_THUMB_PX)
    image = np.asarray(x, dtype=np.float32).reshape(graph[0].output_shape)
    nodes = []
    for node in graph:
        layer = node.output_layer
        act = image if layer is None else acts[layer]
        stats = features.channel_stats(image) if layer is None else acts.stats(layer)
        lo, hi = stats.layer_range
        if act.ndim == 3:
            order = features.channel_order(stats, by="mean")[:maps]
            thumbs = _thumbnails(act, order, thumb_px)
            nodes.append(OverviewNode(node, thumbs, tuple(int(c) for c in order), None, lo, hi))
        else:
            nodes.append(OverviewNode(node, None, (), act.astype(np.float32), lo, hi))
    edges = tuple((src, n.name) for n in graph for src in n.inputs)
    return Overview(tuple(nodes), edges, any(n.kind == "Block" for n in graph))


# ---------------------------------------------------------------- one Conv2D cell


@dataclass(frozen=True)
class ConvCell:
    """Output cell (``row``, ``col``) of filter ``filter`` of Conv2D ``layer``, by hand.

    ``rows``, ``cols``: the input rows and columns the kernel's taps land on (negative or
    past the end = padding, read as 0). ``patch``: (kh, kw, C) those input values for the
    filter's C input channels (``first_channel`` onwards); ``kernel``: (kh, kw, C) the
    filter's weights; ``per_channel``: (C,) Σ patch ⊙ kernel per input channel (float64);
    ``total`` = Σ per_channel + ``bias``; ``value`` = ``activation``(total), the layer's
    output at the cell by hand; ``model_value``: the same cell of the layer's output as the
    model computes it (Keras' forward pass, float32), the number to check ``value`` against.
    """

    layer: str
    row: int
    col: int
    filter: int
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    first_channel: int
    patch: np.ndarray
    kernel: np.ndarray
    per_channel: np.ndarray
    bias: float
    total: float
    activation: str
    value: float
    model_value: float


def conv_cell(model: Any, layer: str, x: np.ndarray, row: int, col: int, filter: int) -> ConvCell:
    """The arithmetic of one output cell of Conv2D ``layer`` for input ``x`` (one (H, W, C)
    image prepared as the model expects), with the numbers from the model (see ``ConvCell``).
    Raises ``InvalidArgumentError`` for a layer that is not a Conv2D or a cell outside it."""
    keras = _keras()
    keras_model, lock = keras_model_and_lock(model)
    try:
        conv = keras_model.get_layer(layer)
    except ValueError:
        raise InvalidArgumentError(f"The model has no layer named {layer!r}.") from None
    if not isinstance(conv, keras.layers.Conv2D) or conv.data_format != "channels_last":
        raise InvalidArgumentError(
            f"Layer {layer!r} is a {type(conv).__name__}, not a (channels-last) Conv2D."
        )
    kernel_all, bias_all = features._kernel(keras_model, layer)
    kh, kw, c_per_group, n_filters = kernel_all.shape
    h_out, w_out = (int(s) for s in features.layer_tensors(keras_model, conv).shape[1:3])
    row = _check_int("row", row, 0, h_out - 1)
    col = _check_int("col", col, 0, w_out - 1)
    filter = _check_int("filter", filter, 0, n_filters - 1)

    tensors = [features.layer_tensors(keras_model, conv, which) for which in ("input", "output")]
    sub = keras.Model(keras_model.inputs[0], tensors)
    batch = np.asarray(x, dtype=np.float32).reshape(1, *features.model_input_shape(keras_model))
    with lock:
        a, out = (keras.ops.convert_to_numpy(t)[0] for t in sub(batch, training=False))
    # a: (H, W, C_in) the layer's input; out: (h_out, w_out, F) its output
    g = features.layer_geometry(conv, keras_model)
    assert isinstance(g, features.Geometry)
    pad = padding_before(conv, a.shape[:2], g)
    rows = tuple(row * g.stride[0] - pad[0] + i * g.dilation[0] for i in range(kh))
    cols = tuple(col * g.stride[1] - pad[1] + j * g.dilation[1] for j in range(kw))
    group = filter // (n_filters // conv.groups)
    first = group * c_per_group
    patch = np.zeros((kh, kw, c_per_group), np.float32)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            if 0 <= r < a.shape[0] and 0 <= c < a.shape[1]:
                patch[i, j] = a[r, c, first : first + c_per_group]
    kernel = kernel_all[:, :, :, filter]
    per_channel = (patch.astype(np.float64) * kernel).sum(axis=(0, 1))
    bias = 0.0 if bias_all is None else float(bias_all[filter])
    total = float(per_channel.sum() + bias)
    value = float(keras.ops.convert_to_numpy(conv.activation(np.float32(total))))
    name = getattr(conv.activation, "__name__", type(conv.activation).__name__)
    return ConvCell(
        layer=layer,
        row=row,
        col=col,
        filter=filter,
        rows=rows,
        cols=cols,
        first_channel=first,
        patch=patch,
        kernel=kernel,
        per_channel=per_channel,
        bias=bias,
        total=total,
        activation=name,
        value=value,
        model_value=float(out[row, col, filter]),
    )


# ---------------------------------------------------------------- the architecture graph


def _dot_text(text: str) -> str:
    """``text`` inside a DOT double-quoted string: backslashes and quotes escaped, line
    breaks as DOT's centred line break, other control characters dropped."""
    clean = "".join(ch for ch in text if ch == "\n" or ch.isprintable())
    return clean.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def architecture_dot(model: Any, *, by_block: bool | None = None, rankdir: str = "TB") -> str:
    """The model's layer graph (``layer_graph``) as DOT text for ``st.graphviz_chart``: one
    box per node labelled with its name, kind (or layer count) and output shape; an arrow per
    edge. ``rankdir``: "TB" (top to bottom) or "LR"."""
    if rankdir not in ("TB", "LR"):
        raise InvalidArgumentError(f"rankdir must be 'TB' or 'LR', got {rankdir!r}.")
    graph = layer_graph(model, by_block=by_block)
    ids = {node.name: f"n{i}" for i, node in enumerate(graph)}
    lines = [
        "digraph model {",
        f"  rankdir={rankdir};",
        '  node [shape=box, style="rounded,filled", fillcolor="#f3f4f6", fontname="Helvetica"];',
    ]
    for node in graph:
        what = f"{len(node.layers)} layers" if node.kind == "Block" else node.kind
        label = _dot_text(f"{node.name}\n{what}\n{shape_text(node.output_shape)}")
        lines.append(f'  {ids[node.name]} [label="{label}"];')
    for node in graph:
        for src in node.inputs:
            lines.append(f"  {ids[src]} -> {ids[node.name]};")
    lines.append("}")
    return "\n".join(lines) + "\n"
