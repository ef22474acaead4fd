"""Layers in blocks: ResNet50's ``conv3_block2_*``, VGG19's ``block4_*``, MobileNetV2's
``block_5_*``, read from the layers' names, and a model's leaf layers in graph order.

The network overview and the sanity check's cascade use the same rule, so a block is the same
thing in both. Names without a block (a Sequential's ``conv2d``, ResNet50's ``conv1_conv`` or
``predictions``) are a block of one.
"""

from __future__ import annotations

import re
from typing import Any

from cnnlib.models.layers import keras_module as _keras

__all__ = ["block_of", "group_by_block", "leaf_layers"]

#: Everything up to "block<n>" or "block_<n>" at the start of a name, or after an underscore.
_BLOCK = re.compile(r"^((?:.*?_)?block_?\d+)(?:_|$)")


def block_of(name: str) -> str:
    """The block a layer named ``name`` belongs to: "conv3_block2" for
    "conv3_block2_1_conv", "block4" for "block4_conv1", else the name itself."""
    m = _BLOCK.match(name)
    return m.group(1) if m else name


def group_by_block(names: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """Consecutive names of the same block as (block, names) pairs, in order."""
    groups: list[tuple[str, list[str]]] = []
    for name in names:
        block = block_of(name)
        if groups and groups[-1][0] == block:
            groups[-1][1].append(name)
        else:
            groups.append((block, [name]))
    return [(block, tuple(members)) for block, members in groups]


def leaf_layers(model: Any) -> list[Any]:
    """``model``'s layers in graph order, with every nested model (a backbone used as one
    layer) replaced by its own leaf layers; input layers left out."""
    keras = _keras()
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out += leaf_layers(layer)
        elif type(layer).__name__ != "InputLayer":
            out.append(layer)
    return out
