"""The MNIST models of the tutorials (and the app's fast default), as editable layer stacks.

Every preset is a ``LayerSpec`` stack, so the page can show its exact summary and let the
learner edit it; ``build_*`` returns the uncompiled Keras model for raw (28, 28, 1) pixels
0…255 (its first layer is ``Rescaling(1/255)``) and 10 classes (Keras is imported only when
a model is built). ``dtype`` is a Keras dtype policy for the layers (e.g. "mixed_float16";
the softmax stays float32).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cnnlib.core.errors import InvalidModelError
from cnnlib.models.stack import LayerSpec, build_from_stack

__all__ = [
    "DEFAULT_PRESET",
    "MNIST_PRESETS",
    "PRESET_DESCRIPTIONS",
    "PRESET_TRAINING",
    "build_dense_baseline",
    "build_dropout_convnet",
    "build_fast_convnet",
    "build_intro_convnet",
    "build_tutorial_convnet",
    "preset_stack",
]

_conv, _pool, _drop = LayerSpec.conv2d, LayerSpec.max_pool, LayerSpec.dropout
_dense, _flat, _bn = LayerSpec.dense, LayerSpec.flatten, LayerSpec.batch_norm

_STACKS: dict[str, tuple[LayerSpec, ...]] = {
    "Fast convnet (default)": (
        _conv(32, 3, strides=2, padding="same"),
        _bn(),
        _conv(64, 3, strides=2, padding="same"),
        _bn(),
        _flat(),
        _dense(128),
        _dense(10, activation="softmax"),
    ),
    "Tutorial convnet": (
        _conv(32, 3),
        _pool(2),
        _conv(64, 3),
        _pool(2),
        _conv(64, 3),
        _flat(),
        _dense(64),
        _dense(10, activation="softmax"),
    ),
    "Intro convnet": (
        _conv(64, 3),
        _conv(32, 3),
        _flat(),
        _dense(10, activation="softmax"),
    ),
    "Dropout convnet": (
        _conv(32, 3),
        _pool(2),
        _drop(0.25),
        _conv(64, 3),
        _pool(2),
        _drop(0.25),
        _flat(),
        _dense(128),
        _drop(0.5),
        _dense(10, activation="softmax"),
    ),
    "Dense baseline": (
        _flat(),
        _dense(512),
        _dense(10, activation="softmax"),
    ),
}

#: One sentence per preset for the page.
PRESET_DESCRIPTIONS: dict[str, str] = {
    "Fast convnet (default)": (
        "Two 3×3 convolutions with stride 2 (each halves the image, so no pooling is needed) "
        "and batch normalization after each, then Dense(128) and the softmax output: fewer "
        "multiplications per image than the tutorial convnet, trained with adam, batch 256 "
        "and a learning rate that decays to zero (cosine)."
    ),
    "Tutorial convnet": (
        "The tutorials' network: Conv2D(32) → MaxPool → Conv2D(64) → MaxPool → Conv2D(64) → "
        "Flatten → Dense(64) → Dense(10)."
    ),
    "Intro convnet": (
        "The first convnet of many introductions: two 3×3 convolutions, then Flatten and the "
        "Dense output layer."
    ),
    "Dropout convnet": (
        "Conv/MaxPool blocks with Dropout after each, like the food-classifier example: "
        "dropout fights overfitting."
    ),
    "Dense baseline": (
        "No convolutions: every pixel is an input of a Dense layer. The comparison point that "
        "shows what convolutions add."
    ),
}

#: Training settings each preset is meant to be trained with
#: (``cnnlib.training.trainer.TrainConfig`` fields). The tutorial settings are the tutorials' own;
#: the fast recipe's were measured in ``benchmarks/train_bench.py``.
PRESET_TRAINING: dict[str, dict[str, Any]] = {
    "Fast convnet (default)": {
        "optimizer": "adam",
        "learning_rate": 2e-3,
        "batch_size": 256,
        "epochs": 4,
        "lr_schedule": "cosine",
    },
    "Tutorial convnet": {
        "optimizer": "rmsprop",
        "learning_rate": 1e-3,
        "batch_size": 64,
        "epochs": 5,
    },
    "Intro convnet": {"optimizer": "adam", "learning_rate": 1e-3, "batch_size": 128, "epochs": 3},
    "Dropout convnet": {"optimizer": "adam", "learning_rate": 1e-3, "batch_size": 128, "epochs": 5},
    "Dense baseline": {
        "optimizer": "rmsprop",
        "learning_rate": 1e-3,
        "batch_size": 128,
        "epochs": 5,
    },
}

DEFAULT_PRESET = "Fast convnet (default)"


def preset_stack(name: str) -> list[LayerSpec]:
    """The preset's layers as an editable stack (a new list each call)."""
    try:
        return list(_STACKS[name])
    except KeyError:
        raise InvalidModelError(
            f"Unknown preset {name!r}; choose one of {', '.join(_STACKS)}."
        ) from None


def _builder(name: str, model_name: str) -> Callable[..., Any]:
    def build(*, seed: int | None = None, dtype: str | None = None):
        return build_from_stack(list(_STACKS[name]), name=model_name, seed=seed, dtype=dtype)

    return build


def build_fast_convnet(*, seed: int | None = None, dtype: str | None = None):
    """The app's default recipe: two stride-2 3×3 convolutions with batch normalization,
    Dense(128), Dense(10, softmax); train it with ``PRESET_TRAINING[DEFAULT_PRESET]``.

    Uncompiled ``keras.Sequential``, raw (28, 28, 1) pixels 0…255 → 10 softmax. ``seed``
    fixes the initial weights without touching Keras' global random state.
    """
    return _builder("Fast convnet (default)", "fast_convnet")(seed=seed, dtype=dtype)


def build_tutorial_convnet(*, seed: int | None = None, dtype: str | None = None):
    """The tutorials' convnet: 93,322 parameters, 55,744 of them before Flatten."""
    return _builder("Tutorial convnet", "tutorial_convnet")(seed=seed, dtype=dtype)


def build_intro_convnet(*, seed: int | None = None, dtype: str | None = None):
    """Two Conv2D layers (64 and 32 filters, 3×3), Flatten, Dense(10, softmax)."""
    return _builder("Intro convnet", "intro_convnet")(seed=seed, dtype=dtype)


def build_dropout_convnet(*, seed: int | None = None, dtype: str | None = None):
    """Conv2D/MaxPool/Dropout blocks, Dense(128) with Dropout(0.5), Dense(10, softmax)."""
    return _builder("Dropout convnet", "dropout_convnet")(seed=seed, dtype=dtype)


def build_dense_baseline(*, seed: int | None = None, dtype: str | None = None):
    """Flatten → Dense(512, relu) → Dense(10, softmax): no convolutions."""
    return _builder("Dense baseline", "dense_baseline")(seed=seed, dtype=dtype)


#: Display name → builder (each ``builder(seed=None)`` returns an uncompiled model).
MNIST_PRESETS: dict[str, Callable[..., Any]] = {
    "Fast convnet (default)": build_fast_convnet,
    "Tutorial convnet": build_tutorial_convnet,
    "Intro convnet": build_intro_convnet,
    "Dropout convnet": build_dropout_convnet,
    "Dense baseline": build_dense_baseline,
}
