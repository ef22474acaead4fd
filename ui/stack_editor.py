"""The layer-stack editor: start from a preset, then add, remove, reorder and tune layers.

The stack lives in ``st.session_state`` as a list of ``[uid, LayerSpec]``; each layer's
widgets are keyed by its uid, so moving a layer moves its settings with it. Each layer's
widgets come from its ``cnnlib.models.LAYER_REGISTRY`` entry (one widget per parameter). The
editor only edits specs; ``cnnlib.models.summarize_stack`` judges them. Every widget persists
its value for the session (``persist_state="session"``), so the stack survives a visit to
another page.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from cnnlib.core.text import shape_text
from cnnlib.models import (
    DEFAULT_PRESET,
    LAYER_KINDS,
    LAYER_REGISTRY,
    MNIST_PRESETS,
    PRESET_DESCRIPTIONS,
    LayerSpec,
    Param,
    SummaryRow,
    preset_stack,
)
from ui.state import KEEP  # widget values survive page switches (the stack is session state)

#: A fresh layer of each kind, as the "Add layer" button inserts it (registry defaults).
NEW_LAYER: dict[str, LayerSpec] = {kind: LayerSpec.new(kind) for kind in LAYER_KINDS}


def _keys(prefix: str) -> tuple[str, str, str]:
    return f"{prefix}_stack", f"{prefix}_next_uid", f"{prefix}_preset"


def _widget_key(prefix: str, uid: int, param: Param) -> str:
    return f"{prefix}_layer{uid}_{param.name}"


def _load_preset(prefix: str, on_preset: Callable[[str], None] | None = None) -> None:
    """Replace the stack by the chosen preset's layers. A layer of the same kind at the same
    position keeps its uid and gets the preset's values: its widgets are updated in place
    instead of being removed and drawn anew. (Measured: the click is not faster for it; the
    layers whose kind changes are still mounted anew, see the README.)"""
    ss = st.session_state
    stack_key, uid_key, preset_key = _keys(prefix)
    old = ss.get(stack_key, [])
    next_uid = ss.get(uid_key, 0)
    stack = []
    for index, spec in enumerate(preset_stack(ss[preset_key])):
        if index < len(old) and old[index][1].kind == spec.kind:
            uid = old[index][0]
            for param in LAYER_REGISTRY[spec.kind].params:
                ss[_widget_key(prefix, uid, param)] = _widget_value(param, param.value(spec))
        else:
            uid, next_uid = next_uid, next_uid + 1
        stack.append([uid, spec])
    ss[stack_key] = stack
    ss[uid_key] = next_uid
    ss[f"{prefix}_add_position"] = max(len(stack), 1)
    if on_preset is not None:
        on_preset(st.session_state[preset_key])


def _reset_position(prefix: str) -> None:
    """After the stack changed, offer "before the output layer" again."""
    st.session_state[f"{prefix}_add_position"] = max(len(st.session_state[_keys(prefix)[0]]), 1)


def _move(prefix: str, index: int, step: int) -> None:
    stack = st.session_state[_keys(prefix)[0]]
    target = index + step
    if 0 <= target < len(stack):
        stack[index], stack[target] = stack[target], stack[index]


def _remove(prefix: str, index: int) -> None:
    stack = st.session_state[_keys(prefix)[0]]
    if 0 <= index < len(stack):
        del stack[index]
    _reset_position(prefix)


def _add(prefix: str) -> None:
    stack_key, uid_key, _ = _keys(prefix)
    stack = st.session_state[stack_key]
    kind = st.session_state[f"{prefix}_add_kind"]
    position = st.session_state[f"{prefix}_add_position"]
    uid = st.session_state.get(uid_key, 0)
    st.session_state[uid_key] = uid + 1
    stack.insert(min(max(position - 1, 0), len(stack)), [uid, NEW_LAYER[kind]])
    _reset_position(prefix)


def current_stack(prefix: str) -> list[LayerSpec]:
    """The stack being edited (the default preset until the learner changes it)."""
    stack_key, _, preset_key = _keys(prefix)
    if stack_key not in st.session_state:
        st.session_state.setdefault(preset_key, DEFAULT_PRESET)
        _load_preset(prefix)
    return [spec for _, spec in st.session_state[stack_key]]


def _widget_value(param: Param, value):
    """``value`` as the parameter's widget holds it (int, float, or one of the choices)."""
    if param.type == "choice":
        return value
    return int(value) if param.type == "int" else float(value)


def _param_widget(param: Param, key: str):
    """The widget of one registry parameter (see ``cnnlib.models.stack.Param``); its value
    is in ``st.session_state[key]`` already (``_layer_widgets``), so none is passed here."""
    if param.type == "choice":
        return st.selectbox(param.label, param.choices, key=key, help=param.help or None, **KEEP)
    if param.type == "int":
        return int(
            st.number_input(
                param.label,
                int(param.low),
                int(param.high),
                key=key,
                help=param.help or None,
                **KEEP,
            )
        )
    if param.step is not None:
        high = param.high - param.step if param.below else param.high
        return float(
            st.slider(param.label, float(param.low), float(high), step=param.step, key=key, **KEEP)
        )
    return float(
        st.number_input(
            param.label,
            float(param.low),
            float(param.high),
            key=key,
            format="%.5f",
            **KEEP,
        )
    )


def _layer_widgets(prefix: str, uid: int, spec: LayerSpec) -> LayerSpec:
    """The widgets of one layer's parameters (from its registry entry); returns the spec with
    their current values."""
    entry = LAYER_REGISTRY[spec.kind]
    if not entry.params:
        st.caption(entry.note)
        return spec
    columns = st.columns(max(5, len(entry.params)))
    changes = {}
    for column, param in zip(columns, entry.params, strict=False):
        with column:
            key = _widget_key(prefix, uid, param)
            st.session_state.setdefault(key, _widget_value(param, param.value(spec)))
            changes[param.name] = _param_widget(param, key)
    return spec.with_changes(**changes)


def stack_editor(
    prefix: str,
    *,
    disabled: bool = False,
    on_preset: Callable[[str], None] | None = None,
) -> list[LayerSpec]:
    """Preset picker and per-layer editor; returns the edited stack (not yet validated).

    ``on_preset(name)`` is called when the learner picks another preset (e.g. to load its
    training settings).
    """
    current_stack(prefix)
    stack_key, _, preset_key = _keys(prefix)
    names = list(MNIST_PRESETS)
    st.selectbox(
        "Start from a preset",
        names,
        key=preset_key,
        on_change=_load_preset,
        args=(prefix, on_preset),
        disabled=disabled,
        help="Choosing a preset replaces the layers below.",
        **KEEP,
    )
    st.caption(PRESET_DESCRIPTIONS.get(st.session_state[preset_key], ""))
    stack = st.session_state[stack_key]
    for index, (uid, spec) in enumerate(stack):
        with st.container(border=True):
            head, params, buttons = st.columns([3, 10, 2], vertical_alignment="center")
            head.markdown(f"**{index + 1}. {spec.kind}**")
            with params:
                stack[index] = [uid, _layer_widgets(prefix, uid, spec)]
            with buttons.container(horizontal=True, horizontal_alignment="right", gap=None):
                st.button(
                    ":material/arrow_upward:",
                    key=f"{prefix}_up{uid}",
                    on_click=_move,
                    args=(prefix, index, -1),
                    disabled=disabled or index == 0,
                    help="Move this layer up",
                    type="tertiary",
                )
                st.button(
                    ":material/arrow_downward:",
                    key=f"{prefix}_down{uid}",
                    on_click=_move,
                    args=(prefix, index, 1),
                    disabled=disabled or index == len(stack) - 1,
                    help="Move this layer down",
                    type="tertiary",
                )
                st.button(
                    ":material/close:",
                    key=f"{prefix}_remove{uid}",
                    on_click=_remove,
                    args=(prefix, index),
                    disabled=disabled,
                    help="Remove this layer",
                    type="tertiary",
                )
    kind_col, pos_col, add_col, _ = st.columns([3, 2, 2, 6], vertical_alignment="bottom")
    kind_col.selectbox(
        "Layer kind", LAYER_KINDS, key=f"{prefix}_add_kind", disabled=disabled, **KEEP
    )
    positions = list(range(1, len(stack) + 2))
    position_key = f"{prefix}_add_position"
    if st.session_state.get(position_key) not in positions:
        st.session_state[position_key] = max(len(stack), 1)  # before the output layer
    pos_col.selectbox("At position", positions, key=position_key, disabled=disabled, **KEEP)
    add_col.button(
        "Add layer", key=f"{prefix}_add", on_click=_add, args=(prefix,), disabled=disabled
    )
    return [spec for _, spec in stack]


def summary_table(rows: list[SummaryRow], input_shape: tuple[int, ...]) -> pd.DataFrame:
    """The summary as a table: one row per layer plus the input, shapes as "26×26×32"
    (``cnnlib.core.text.shape_text``)."""
    records = [
        {
            "Layer": "input",
            "Kind": "Input",
            "Output shape": shape_text(input_shape),
            "Size arithmetic": "",
            "Parameters": 0,
            "Parameter arithmetic": "",
        }
    ]
    for row in rows:
        records.append(
            {
                "Layer": row.name,
                "Kind": row.description or row.kind,
                "Output shape": shape_text(row.output_shape),
                "Size arithmetic": row.shape_formula,
                "Parameters": row.params,
                "Parameter arithmetic": row.formula,
            }
        )
    return pd.DataFrame.from_records(records)


def stack_label(prefix: str) -> str:
    """The preset's name if the stack is unchanged, else "Your stack (edited from …)"."""
    preset = st.session_state.get(_keys(prefix)[2], DEFAULT_PRESET)
    if current_stack(prefix) == preset_stack(preset):
        return preset
    return f"Your stack (edited from {preset})"
