"""The inference model: a trained classifier without its augmentation layers.

Keras' random augmentation layers (``cnnlib.models.layers.AUGMENTATION_LAYERS``) are an
identity outside training, but an exported file would still carry them (their seed state,
and for some converters their random ops). ``inference_model`` rebuilds the model without
them, sharing every other layer (and so its trained weights) with the original.

Keras is imported only when a model is rebuilt.
"""

from __future__ import annotations

from typing import Any

from cnnlib.core.errors import InvalidModelError
from cnnlib.models.layers import AUGMENTATION_LAYERS, keras_module

__all__ = ["augmentation_layer_names", "inference_model", "is_augmentation"]


def is_augmentation(layer: Any) -> bool:
    """True for a random augmentation layer, or a nested model made only of them (the
    ``augmentation`` block of ``cnnlib.training.transfer``)."""
    if type(layer).__name__ in AUGMENTATION_LAYERS:
        return True
    inner = getattr(layer, "layers", None)
    if type(layer).__name__ in ("Sequential", "Functional", "Model") and inner:
        return all(is_augmentation(child) for child in inner)
    return False


def augmentation_layer_names(model: Any) -> list[str]:
    """Names of ``model``'s top-level layers that ``inference_model`` leaves out."""
    return [layer.name for layer in model.layers if is_augmentation(layer)]


def _skip_augmentation(layer: Any, *args: Any, **kwargs: Any) -> Any:
    """``clone_model``'s call function: an augmentation layer passes its input through."""
    return args[0] if is_augmentation(layer) else layer(*args, **kwargs)


def inference_model(model: Any) -> Any:
    """``model`` without its augmentation layers, or ``model`` itself when it has none.

    The new model takes the same input (N, H, W, C) raw pixels and returns the same
    probabilities (N, K) as ``model(x, training=False)``; its other layers are ``model``'s
    own instances (shared weights, nothing copied). Sequential and Functional models only;
    anything else raises ``InvalidModelError``.
    """
    if not augmentation_layer_names(model):
        return model
    keras = keras_module()
    kind = type(model).__name__
    if kind == "Sequential":
        kept = [layer for layer in model.layers if not is_augmentation(layer)]
        stripped = keras.Sequential(
            [keras.Input(model.input_shape[1:], name=model.layers[0].name + "_input"), *kept],
            name=model.name,
        )
    elif kind in ("Functional", "Model") and hasattr(model, "inputs"):
        inputs = [keras.Input(t.shape[1:], dtype=t.dtype, name=t.name) for t in model.inputs]
        stripped = keras.models.clone_model(
            model,
            input_tensors=inputs if len(inputs) > 1 else inputs[0],
            clone_function=lambda layer: layer,  # share the trained layer
            call_function=_skip_augmentation,
        )
    else:
        raise InvalidModelError(
            f"A {kind} model cannot be rebuilt without its augmentation layers; build it "
            "with keras.Sequential or the functional API."
        )
    return stripped
