"""Sanity checks for saliency maps (Adebayo et al., NeurIPS 2018): does a map depend on what
the network learned?

``sanity_check(model, x, class_index, method=...)`` re-initialises a CLONE of the model's
layers from the top (the output layer) down, one block at a time and cumulatively (step i has
blocks 0…i re-initialised: the "cascading randomisation"), redraws the map after each step and
compares it with the trained model's map: Spearman rank correlation and SSIM. A map that
explains the model must change as its weights are destroyed; one that stays the same shows
the image, not the model. The shared model is never modified: its weights are read once
(under its lock) into the clone.

A block is ``cnnlib.inspect.blocks.block_of`` the layer names (ResNet50's
``conv5_block3``, VGG19's ``block5``; every layer of a Sequential model is its own block);
only layers with weights count. Re-initialising a layer draws each of its weights afresh
from the layer's own initializers (as before training: Glorot-uniform kernels, zero biases,
batch norm's ones and zeros), seeded.

``CONTROLS`` are maps that ignore the model, for comparison: "edges", the Sobel edge
magnitude of the input, which no randomisation can change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlib.core.errors import InvalidArgumentError, WorkStopped
from cnnlib.inspect import saliency
from cnnlib.inspect.blocks import group_by_block, leaf_layers
from cnnlib.models.layers import keras_module as _keras

__all__ = [
    "CONTROLS",
    "CONTROL_LABELS",
    "DECORRELATED",
    "SanityCheck",
    "check_sanity_question",
    "edge_map",
    "randomisation_steps",
    "rank_correlation",
    "sanity_check",
    "structural_similarity",
]

#: A map whose rank correlation with the trained model's falls below this by the last step
#: depends on the weights (the threshold of the issue's proof and of the page's verdict).
DECORRELATED = 0.5
#: Maps that ignore the model's weights: the sanity check's control.
CONTROLS: tuple[str, ...] = ("edges",)
CONTROL_LABELS: dict[str, str] = {"edges": "Edge detector (ignores the model)"}


@dataclass(frozen=True)
class SanityCheck:
    """One method's maps as the model's layers are re-initialised from the top down.

    ``original``: the trained model's (H, W) float32 map in [0, 1]. Per step i (one entry
    each): ``layers[i]``, the layer names re-initialised at that step (added to those of the
    steps before); ``maps[i]``, the (H, W) map after it; ``rank_correlation[i]`` and
    ``ssim[i]``, its Spearman rank correlation and structural similarity with ``original``
    ((steps,) float64, 1 = unchanged).
    """

    method: str
    class_index: int
    original: np.ndarray
    layers: tuple[tuple[str, ...], ...]
    maps: tuple[np.ndarray, ...]
    rank_correlation: np.ndarray
    ssim: np.ndarray

    @property
    def label(self) -> str:
        return CONTROL_LABELS.get(self.method) or saliency.METHOD_LABELS[self.method]

    @property
    def steps(self) -> int:
        return len(self.layers)

    @property
    def decorrelated(self) -> bool:
        """Whether the map's rank correlation with the trained model's fell below
        ``DECORRELATED`` by the last step (the map depends on the weights)."""
        return bool(self.rank_correlation[-1] < DECORRELATED)


def edge_map(x: np.ndarray) -> np.ndarray:
    """Sobel edge magnitude of one (H, W, C) input, the largest over channels: (H, W)
    float32 in [0, 1] (all zeros for a flat input). Depends on the input only."""
    from scipy import ndimage

    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3:
        raise InvalidArgumentError(f"An input is (H, W, C); got an array of shape {a.shape}.")
    magnitude = np.hypot(ndimage.sobel(a, axis=0), ndimage.sobel(a, axis=1)).max(axis=-1)
    top = float(magnitude.max())
    return (magnitude / top).astype(np.float32) if top > 0 else np.zeros(a.shape[:2], np.float32)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps' pixels (ties get their mean rank), in [-1, 1].

    A constant map has no ranking: two identical constant maps give 1, a constant map and
    any other map 0 (it keeps none of the other's ordering).
    """
    from scipy import stats

    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if a.shape != b.shape:
        raise InvalidArgumentError(f"The maps differ in size: {a.size} and {b.size} pixels.")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(stats.spearmanr(a, b).statistic)


def structural_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Wang et al. 2004, scikit-image) of two (H, W) maps in [0, 1]: 1 = identical.
    The window is 7 × 7, smaller for maps under 7 pixels a side."""
    from skimage.metrics import structural_similarity as ssim

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise InvalidArgumentError(f"SSIM needs two (H, W) maps; got {a.shape} and {b.shape}.")
    side = min(a.shape)
    if side < 3:
        raise InvalidArgumentError(f"SSIM needs maps at least 3 pixels a side; got {a.shape}.")
    window = min(7, side if side % 2 else side - 1)
    return float(ssim(a, b, data_range=1.0, win_size=window))


def randomisation_steps(model: Any) -> list[tuple[str, ...]]:
    """The cascade's steps for ``model`` (a Keras model or ``PretrainedModel``): the names of
    each block's layers that have weights, from the output layer down."""
    keras_model, _ = saliency.keras_model_and_lock(model)
    weighted = [layer.name for layer in leaf_layers(keras_model) if layer.weights]
    return [members for _, members in reversed(group_by_block(weighted))]


def _initializer(layer: Any, variable: Any):
    """The initializer ``layer`` made ``variable`` with (by the variable's name: kernel →
    ``kernel_initializer``, …); Glorot-uniform for another matrix, zeros for a vector."""
    keras = _keras()
    name = variable.name.split("/")[-1]
    candidates = [f"{name}_initializer", f"{name.removesuffix('_kernel')}_initializer"]
    if name == "kernel":
        candidates.append("depthwise_initializer")
    for attr in candidates:
        init = getattr(layer, attr, None)
        if init is not None:
            return keras.initializers.get(init)
    return keras.initializers.GlorotUniform() if len(variable.shape) > 1 else "zeros"


def _reinitialise(layer: Any, seeds: np.random.SeedSequence) -> None:
    """Every weight of ``layer`` drawn afresh from its initializer, each seeded from
    ``seeds``."""
    keras = _keras()
    for variable in layer.weights:
        init = keras.initializers.get(_initializer(layer, variable))
        config = init.get_config()
        if "seed" in config:
            seed = int(seeds.spawn(1)[0].generate_state(1)[0] >> 1)
            init = type(init).from_config({**config, "seed": seed})
        values = keras.ops.convert_to_numpy(init(tuple(variable.shape), dtype=variable.dtype))
        variable.assign(values)


def _clone(model: Any) -> Any:
    """A copy of the Keras model behind ``model`` with its own layers and the same weights,
    read under the shared model's lock."""
    keras = _keras()
    keras_model, lock = saliency.keras_model_and_lock(model)
    with lock:
        clone = keras.models.clone_model(keras_model, recursive=True)
        clone.set_weights(keras_model.get_weights())
    return clone


def _map(model: Any, x: np.ndarray, cls: int, method: str, options: Mapping[str, Any]):
    if method in CONTROLS:
        return edge_map(x)
    return saliency.saliency_map(model, x, cls, method=method, **options)


def check_sanity_question(
    model: Any,
    x: np.ndarray,
    class_index: int,
    *,
    method: str,
    steps: int | None = None,
    options: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, int, list[tuple[str, ...]], int]:
    """Check ``sanity_check``'s arguments without any model work: returns (the (H, W, C)
    input, the class index, the whole cascade, the number of steps). Raises
    ``InvalidArgumentError`` for a bad method, option, input, class, step count or seed."""
    options = dict(options or {})
    if method in CONTROLS:
        if options:
            raise InvalidArgumentError(f"{CONTROL_LABELS[method]} has no options.")
    elif method in saliency.METHODS:
        saliency._options(method, options)
    else:
        raise InvalidArgumentError(
            f"Unknown method {method!r}; choose one of {', '.join(saliency.METHODS + CONTROLS)}."
        )
    keras_model, _ = saliency.keras_model_and_lock(model)
    a = saliency._check_input(keras_model, x)
    cls = saliency._check_class(keras_model, class_index)
    cascade = randomisation_steps(keras_model)
    if not cascade:
        raise InvalidArgumentError("This model has no layer with weights to re-initialise.")
    n = len(cascade) if steps is None else saliency._int_option("steps", steps, 1, len(cascade))
    saliency._int_option("seed", seed, 0, 2**31 - 1)
    return a, cls, cascade, n


def sanity_check(
    model: Any,
    x: np.ndarray,
    class_index: int,
    *,
    method: str,
    steps: int | None = None,
    options: Mapping[str, Any] | None = None,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> SanityCheck:
    """Cascading randomisation of a clone of ``model``, ``method``'s map after each step.

    ``model``: a ``keras.Model`` or ``PretrainedModel`` as for ``saliency_map``; ``x``: one
    (H, W, C) input prepared as the model expects; ``method``: one of
    ``saliency.METHODS`` or ``CONTROLS``, with ``options`` as for ``saliency_map``;
    ``steps``: how many blocks to re-initialise, from the top (default: all of
    ``randomisation_steps(model)``); ``seed``: the new weights' seed. Every argument is
    checked before the model is cloned (``check_sanity_question``). Costs one clone of the
    weights and ``steps`` + 1 maps.

    For a background task: ``should_stop()`` is asked before each map, and a true answer
    raises ``WorkStopped``; ``on_step(done, total)`` is called after each map (``total`` =
    ``steps`` + 1, the original included).
    """
    options = dict(options or {})
    a, cls, cascade, n = check_sanity_question(
        model, x, class_index, method=method, steps=steps, options=options, seed=seed
    )

    def checkpoint(done: int) -> None:
        if on_step is not None:
            on_step(done, n + 1)
        if done <= n and should_stop is not None and should_stop():
            raise WorkStopped

    checkpoint(0)
    clone = _clone(model)
    layers = {layer.name: layer for layer in leaf_layers(clone)}
    seeds = np.random.SeedSequence(int(seed))
    original = _map(clone, a, cls, method, options)
    checkpoint(1)
    maps = []
    for names in cascade[:n]:
        for name in names:
            _reinitialise(layers[name], seeds)
        maps.append(_map(clone, a, cls, method, options))
        checkpoint(len(maps) + 1)
    return SanityCheck(
        method=method,
        class_index=cls,
        original=original,
        layers=tuple(cascade[:n]),
        maps=tuple(maps),
        rank_correlation=np.array([rank_correlation(original, m) for m in maps]),
        ssim=np.array([structural_similarity(original, m) for m in maps]),
    )
