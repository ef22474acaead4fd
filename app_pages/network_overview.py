"""Network overview: one image through the whole network at once (as CNN Explainer shows it),
for a model of this session (the model registry), an uploaded ``.keras`` file, ResNet50 or
VGG19 (by block): each layer a column of its maps joined by edges; a click on a map opens
that layer's maps; a click on a Conv2D map's cell opens its patch ⊙ kernel arithmetic, with
the numbers from the model; and the architecture as a graph.

Layout only: ``*_ui()`` sections return what their widgets chose; the numbers come from
``cnnlib.inspect.overview`` and ``overview_canvas``; the model, its input and the one forward
pass per (model, image) are the Feature-maps page's helpers (``ui.features_session``); the
cached graph, overview, column images and cells from ``ui.overview_session``; the drawing
from ``ui.overview_view``. Clicks write the same session keys as the keyboard's widgets.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from cnnlib.core.text import safe_text
from cnnlib.inspect import features as F
from cnnlib.inspect import overview as O
from cnnlib.inspect.overview_canvas import canvas
from ui import features_session as fs
from ui import features_view as fv
from ui import keras_runtime, model_input, overview_cell, pretrained, state
from ui import overview_session as ovs
from ui import overview_view as view_ui
from ui.errors import friendly_errors
from ui.state import KEEP, kept_tabs

UPLOAD = "Upload a .keras file"
RESNET, VGG = "ResNet50 (ImageNet), by block", "VGG19 without its classifier (ImageNet), by block"
REGISTERED = "model: "  #: prefix of a registry entry's option (the rest is its name)
SCALES = {"Each layer its own range": True, "One range for the whole network": False}
#: Maps drawn per column → the side of each map's square (canvas px).
TILES = {4: 48, 8: 40, 16: 24}

ss = st.session_state


@dataclass(frozen=True)
class OverviewOptions:
    """How the overview is drawn: ``per_layer`` colour ranges (else one for the network),
    ``maps`` drawn per column."""

    per_layer: bool
    maps: int


@dataclass(frozen=True)
class MapChoice:
    """The map opened in detail: a node of the overview and one of its channels (None for a
    vector node)."""

    node: O.GraphNode
    channel: int | None


# ----------------------------------------------------------------------------- model & input


def _option_text(option: str) -> str:
    """A registry entry's name, escaped (it may come from a learner's folder names)."""
    if option.startswith(REGISTERED):
        return safe_text(option.removeprefix(REGISTERED), 80)
    return option


def model_ui() -> fs.ModelView | None:
    """The model to look at: the session's registry (newest first), an upload, ResNet50 or
    VGG19 (None until there is one). Raises ``CNNLabError``."""
    registry = state.model_registry()
    options = [REGISTERED + name for name in registry.names()] + [UPLOAD, RESNET, VGG]
    source = st.radio("Model", options, format_func=_option_text, key="ov_model_source", **KEEP)
    if not registry.names():
        st.caption(
            "Models you train in this session (on the MNIST, own-images or Feature maps page) "
            "are listed here too."
        )
    if source.startswith(REGISTERED):
        entry = registry.get(source.removeprefix(REGISTERED))
        if entry.description:
            st.caption(safe_text(entry.description, 300))
        return fs.registry_view(entry)
    if source == UPLOAD:
        return model_input.uploaded_model_ui(prefix="ov", purpose="see it whole")
    loaded = pretrained.resnet50() if source == RESNET else pretrained.vgg19()
    pretrained.show_weights_note(loaded)
    if loaded.model is None:
        st.caption("A network with random weights is not shown as if it were ImageNet-trained.")
        return None
    return fs.shared_view(loaded.model, key="resnet50" if source == RESNET else "vgg19")


# ----------------------------------------------------------------------------- the overview


def options_ui() -> OverviewOptions:
    c1, c2 = st.columns([3, 2])
    scale = c1.radio("Colour scale", list(SCALES), horizontal=True, key="ov_scale", **KEEP)
    maps = c2.segmented_control(
        "Maps per layer", list(TILES), default=8, key="ov_maps", required=True, **KEEP
    )
    return OverviewOptions(per_layer=SCALES[scale], maps=int(maps or 8))


def _keys(view: fs.ModelView) -> tuple[str, str]:
    """(session key of the chosen node, prefix of its channel's key) for ``view``'s model."""
    return f"ov_node_{view.key}", f"ov_channel_{view.key}_"


def _chosen(view: fs.ModelView, ov: O.Overview) -> tuple[str, int | None]:
    """The node and channel chosen so far (by a click or the widgets), else the first
    Conv2D node's most active map; stale values (another model's) are replaced."""
    node_key, channel_prefix = _keys(view)
    names = [n.name for n in ov.nodes]
    if ss.get(node_key) not in names:
        convs = [n.name for n in ov.nodes if n.node.kind == "Conv2D"]
        ss[node_key] = convs[0] if convs else names[min(1, len(names) - 1)]
    node = ov.node(ss[node_key])
    if node.maps is None:
        return node.name, None
    channel_key = channel_prefix + node.name
    if not 0 <= ss.get(channel_key, -1) < node.node.output_shape[-1]:
        ss[channel_key] = node.channels[0]
    return node.name, int(ss[channel_key])


def _map_clicked(chart_key: str, view: fs.ModelView, names: list[str]) -> None:
    """A click on a map of the overview: choose its node and channel."""
    points = ((ss.get(chart_key) or {}).get("selection") or {}).get("points") or []
    hits = [p["customdata"] for p in points if len(p.get("customdata") or ()) == 2]
    if not hits:
        return
    index, channel = (int(v) for v in hits[0])
    node_key, channel_prefix = _keys(view)
    ss[node_key] = names[index]
    if channel >= 0:
        ss[channel_prefix + names[index]] = channel


def overview_section(
    view: fs.ModelView, prepared: fs.PreparedInput, acts: F.ActivationSet
) -> tuple[O.Overview, OverviewOptions]:
    options = options_ui()
    ov = ovs.overview(view, prepared, acts, options.maps)
    cv = canvas(ov, tile_px=TILES[options.maps])
    ranges = [(n.lo, n.hi) if options.per_layer else ov.range for n in ov.nodes]
    pngs = ovs.column_pngs(view, prepared, ov, cv, ranges)
    name, channel = _chosen(view, ov)
    selected = (name, -1 if channel is None else channel)
    fig = view_ui.overview_figure(
        ov, cv, pngs, ranges, per_layer=options.per_layer, selected=selected
    )
    key = f"ov_chart_{view.key}"
    names = [n.name for n in ov.nodes]
    alt = view_ui.overview_alt(view.title, ov, ranges, options.per_layer)
    view_ui.show_overview(fig, alt, key=key, on_click=lambda: _map_clicked(key, view, names))
    lo, hi = ov.range
    what = (
        "each column over its own range (written under it)"
        if options.per_layer
        else (f"one range for the whole network: {view_ui.legend(lo, hi)}")
    )
    st.caption(
        f"{len(ov.nodes)} columns, one per {'block or layer' if ov.by_block else 'layer'}, "
        f"each showing its {options.maps} most active maps (a vector layer: one strip, a band "
        f"per unit) and its output shape underneath. Colours: dark purple = low, yellow = "
        f"high, {what}. **Click a map** to open its layer below."
    )
    return ov, options


# ----------------------------------------------------------------------------- detail


def map_ui(view: fs.ModelView, ov: O.Overview) -> MapChoice:
    """The node and channel shown in detail: the keyboard's way to do what a click on the
    overview does (both write the same session keys, read by ``_chosen``)."""
    name, channel = _chosen(view, ov)
    node_key, channel_prefix = _keys(view)
    graph = {n.name: n.node for n in ov.nodes}
    c1, c2 = st.columns([3, 1])
    c1.selectbox("Layer", list(graph), format_func=lambda n: graph[n].label, key=node_key)
    if channel is None:
        return MapChoice(graph[name], None)
    n = graph[name].output_shape[-1]
    c2.number_input(f"Channel (0 to {n - 1})", 0, n - 1, key=channel_prefix + name)
    return MapChoice(graph[name], channel)


def detail_section(
    view: fs.ModelView,
    prepared: fs.PreparedInput,
    acts: F.ActivationSet,
    ov: O.Overview,
    per_layer: bool,
) -> None:
    choice = map_ui(view, ov)
    node = choice.node
    layer = node.output_layer
    if choice.channel is None:  # a vector: its units as bars
        info = view.layer(layer)
        scores = F.output_scores(view.model, acts)
        names = list(view.class_names or ()) if scores and scores.layer == layer else None
        fv.show_vector(acts[layer], info, names or None)
        return
    act = prepared.batch[0] if layer is None else acts[layer]
    stats = F.channel_stats(act) if layer is None else acts.stats(layer)
    view_ui.show_node_maps(node, act, stats)
    lo, hi = stats.layer_range if per_layer else ov.range
    info = None if layer is None else view.layer(layer)
    field = None if layer is None else view.fields.get(layer)
    facts = (info, choice.channel, stats.of(choice.channel), field, view.input_shape[:2])
    conv = info is not None and info.has_filters and node.kind != "Block"
    if not conv:  # the map enlarged; a Conv2D's is the clickable map of its cells below
        left, right = st.columns([3, 2])
        values = act[:, :, choice.channel]
        alt = view_ui.map_alt(f"Channel {choice.channel} of {node.name}", values, lo, hi)
        with left:
            view_ui.show_map(view_ui.map_figure(values, lo, hi), alt, key="ov_map")
        with right:
            view_ui.show_map_facts(*facts)
    cell = overview_cell.cell_ui(view, node, choice.channel, acts)
    if cell is not None:
        overview_cell.cell_section(view, prepared, acts, cell, facts if conv else None)


# ----------------------------------------------------------------------------- page


def main() -> None:
    # Background training and Keras models must survive Streamlit's end-of-run cleanup.
    keras_runtime.freeze_imported_objects()
    st.title("Network overview")
    st.markdown(
        "One image flows through the **whole network**: each column is a layer (or a block of "
        "layers) showing its most active feature maps, joined to the next. Watch the maps get "
        "smaller and more numerous as they go deeper, click one to open its layer, and click "
        "a cell of a convolution's map to see the multiplications and sums that made it."
    )
    view = prepared = acts = None
    with friendly_errors():
        view = model_ui()
    if view is None:
        return
    prepared, right = model_input.input_section(view, prefix="ov")
    if prepared is None:
        return
    with right, friendly_errors(), st.spinner("Running the image through every layer…"):
        acts = fs.activations(view, prepared)
    if acts is None:
        return
    tabs = kept_tabs(["The whole network", "Architecture graph"], "ov_tab")
    with tabs[0], friendly_errors():
        if tabs[0].open:
            ov, options = overview_section(view, prepared, acts)
            st.subheader("Layer detail")
            detail_section(view, prepared, acts, ov, options.per_layer)
    with tabs[1], friendly_errors():
        if tabs[1].open:
            nodes, dot = ovs.graph(view)
            blocks = any(n.kind == "Block" for n in nodes)
            label = f"Every layer ({len(view.layers)} boxes): the connections inside each block"
            if blocks and st.toggle(label, key="ov_every_layer"):
                nodes, dot = ovs.graph(view, every_layer=True)
            view_ui.show_architecture(dot, nodes, view.title)


main()
