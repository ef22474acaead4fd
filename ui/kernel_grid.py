"""The Convolution lab's kernel editor: a small browser-side widget (Streamlit Custom
Components v2, inline, no build) with one text input per weight, laid out as the kernel.

It replaces ``st.data_editor``, whose grid (a canvas, with the DataFrame code behind it) was
mounted anew for every new kernel: about 300 ms after each kernel press on the 2-core
machine. Here a new kernel only rewrites the inputs' values; each input is a plain HTML
input with its own label ("Weight row r, column c"), reached with Tab.

The widget shows ``values`` whenever ``version`` changes (a preset, a new size, Randomize,
Normalize) or when it mounts (the page shown again); what the learner types stays as typed
otherwise. A committed edit (Enter or leaving the cell) sends every cell's text with the
version it was typed on; the page parses it with ``cnnlib.conv.lab.kernel_from_cells``
(untrusted text, like any upload). Drawing and browser code only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import streamlit as st

from cnnlib.conv import lab

#: Streamlit's theme variables, so light and dark themes both fit.
_CSS = """
.cnnlab-kernel { display: grid; gap: 0.25rem; font-family: var(--st-font); }
.cnnlab-kernel input {
  box-sizing: border-box; width: 100%; min-width: 0; padding: 0.4rem 0.45rem;
  font: inherit; font-size: 0.875rem; font-variant-numeric: tabular-nums; text-align: right;
  color: var(--st-text-color); background: var(--st-secondary-background-color);
  border: 1px solid var(--st-border-color, rgba(49, 51, 63, 0.2));
  border-radius: var(--st-base-radius, 0.5rem);
}
.cnnlab-kernel input:focus-visible {
  outline: 2px solid var(--st-primary-color); outline-offset: 1px;
}
"""

_JS = """
//: The widget's state per mounted element (the module is called again on every new value).
const INSTANCES = new WeakMap();

function draw(s, data) {
  const rows = data.values.length;
  const cols = rows ? data.values[0].length : 0;
  s.grid.setAttribute("aria-label", data.label);
  s.grid.style.gridTemplateColumns = `repeat(${cols}, minmax(3rem, 1fr))`;
  s.grid.replaceChildren();
  s.inputs = data.values.map((row, r) => row.map((value, c) => {
    const input = document.createElement("input");
    input.type = "text";
    input.inputMode = "decimal";
    input.autocomplete = "off";
    input.spellcheck = false;
    input.maxLength = data.max_chars;
    input.value = value;
    input.setAttribute("aria-label", `Weight row ${r}, column ${c}`);
    input.addEventListener("change", () => s.send());
    s.grid.appendChild(input);
    return input;
  }));
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  let s = INSTANCES.get(parentElement);
  if (!s) {
    const grid = document.createElement("div");
    grid.className = "cnnlab-kernel";
    grid.setAttribute("role", "group");
    parentElement.appendChild(grid);
    s = { grid, version: null, inputs: [] };
    INSTANCES.set(parentElement, s);
  }
  s.send = () => setStateValue("cells", {
    version: s.version,
    values: s.inputs.map((row) => row.map((input) => input.value)),
  });
  if (s.version !== data.version) {
    s.version = data.version;
    draw(s, data);
  }
  return () => INSTANCES.delete(parentElement);
}
"""

_grid = st.components.v2.component("cnnlab.kernel_grid", css=_CSS, js=_JS)


def _cell_text(v: float) -> str:
    """A weight as the editor shows it: up to 4 significant digits ("0.1111", "-2")."""
    return f"{float(v):.4g}"


def kernel_grid(
    kernel: np.ndarray, *, key: str, version: int, on_change: Callable[[], None]
) -> object | None:
    """Draw the editor for the (kh, kw) ``kernel``. Returns the cells the learner committed
    on this ``version`` (untrusted: rows of texts, for ``lab.kernel_from_cells``), or None
    when there is no edit since ``version`` was drawn. ``on_change`` is called before the
    rerun an edit causes."""
    data = {
        "values": [[_cell_text(v) for v in row] for row in np.asarray(kernel)],
        "version": int(version),
        "label": "Kernel weights, row by row",
        "max_chars": lab.MAX_CELL_TEXT,
    }
    result = _grid(key=key, data=data, on_cells_change=on_change, height="content")
    cells = result.get("cells")
    if not isinstance(cells, dict) or cells.get("version") != int(version):
        return None
    return cells.get("values")
