"""Layer stacks the learner edits: specs, an exact summary without TensorFlow, and the build.

A stack is a list of ``LayerSpec`` (Conv2D, MaxPooling2D, Dropout, BatchNormalization,
Flatten, Dense) applied to an input of shape (H, W, C). ``summarize_stack`` walks it with
``cnnlib.conv.output_size`` and the parameter formulas Keras uses, and refuses an impossible
stack with a message naming the layer; ``build_from_stack`` builds the Keras model (Keras is
imported only there).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from cnnlib.conv import output_size
from cnnlib.errors import InvalidArgumentError, InvalidModelError
from cnnlib.text import shape_text

__all__ = [
    "ACTIVATIONS",
    "BN_MOMENTUM",
    "LAYER_KINDS",
    "MAX_STACK_PARAMS",
    "LayerSpec",
    "SummaryRow",
    "build_from_stack",
    "stack_multiply_adds",
    "stack_param_count",
    "summarize_stack",
]

LAYER_KINDS: tuple[str, ...] = (
    "Conv2D",
    "MaxPooling2D",
    "Dropout",
    "BatchNormalization",
    "Flatten",
    "Dense",
)
ACTIVATIONS: tuple[str, ...] = ("relu", "linear", "sigmoid", "tanh", "softmax")
PADDINGS: tuple[str, ...] = ("valid", "same")
#: Largest stack (in parameters) the editor accepts: bigger ones would not train here.
MAX_STACK_PARAMS = 5_000_000
#: Momentum of BatchNormalization's moving mean and variance. Keras' default 0.99 needs
#: hundreds of batches before the moving statistics fit; trainings here are short (a few
#: hundred batches, or a few dozen on a subset), so they follow the batches faster.
BN_MOMENTUM = 0.9
#: Editor limits per layer (filters, units, kernel or pool size, stride).
MAX_FILTERS, MAX_UNITS, MAX_WINDOW, MAX_STRIDE = 512, 4096, 15, 8

_SNAKE = {
    "Conv2D": "conv2d",
    "MaxPooling2D": "max_pooling2d",
    "Dropout": "dropout",
    "BatchNormalization": "batch_normalization",
    "Flatten": "flatten",
    "Dense": "dense",
}


@dataclass(frozen=True)
class LayerSpec:
    """One layer of an editable stack. Only the fields of its ``kind`` matter:

    Conv2D: filters, kernel_size, strides (default 1), padding, activation.
    MaxPooling2D: pool_size, strides (default = pool_size), padding.
    Dropout: rate. BatchNormalization, Flatten: none. Dense: units, activation.
    Sizes are square (one int). Use the constructors (``LayerSpec.conv2d(32, 3)``, ...).
    """

    kind: str
    filters: int = 32
    kernel_size: int = 3
    strides: int | None = None
    padding: str = "valid"
    activation: str = "relu"
    pool_size: int = 2
    rate: float = 0.25
    units: int = 64

    @classmethod
    def conv2d(
        cls,
        filters: int,
        kernel_size: int = 3,
        *,
        strides: int = 1,
        padding: str = "valid",
        activation: str = "relu",
    ) -> LayerSpec:
        return cls(
            "Conv2D",
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            activation=activation,
        )

    @classmethod
    def max_pool(
        cls, pool_size: int = 2, *, strides: int | None = None, padding: str = "valid"
    ) -> LayerSpec:
        return cls("MaxPooling2D", pool_size=pool_size, strides=strides, padding=padding)

    @classmethod
    def dropout(cls, rate: float = 0.25) -> LayerSpec:
        return cls("Dropout", rate=rate)

    @classmethod
    def batch_norm(cls) -> LayerSpec:
        return cls("BatchNormalization")

    @classmethod
    def flatten(cls) -> LayerSpec:
        return cls("Flatten")

    @classmethod
    def dense(cls, units: int, *, activation: str = "relu") -> LayerSpec:
        return cls("Dense", units=units, activation=activation)

    @property
    def stride(self) -> int:
        """The effective stride: ``strides``, or 1 (Conv2D) / ``pool_size`` (MaxPooling2D)."""
        if self.strides is not None:
            return self.strides
        return self.pool_size if self.kind == "MaxPooling2D" else 1

    def describe(self) -> str:
        """Short text for tables, e.g. "Conv2D 32 × 3×3, stride 2, same, relu"."""
        if self.kind == "Conv2D":
            extra = f", stride {self.stride}" if self.stride != 1 else ""
            extra += ", same" if self.padding == "same" else ""
            k = self.kernel_size
            return f"Conv2D {self.filters} × {k}×{k}{extra}, {self.activation}"
        if self.kind == "MaxPooling2D":
            extra = f", stride {self.stride}" if self.stride != self.pool_size else ""
            extra += ", same" if self.padding == "same" else ""
            return f"MaxPooling2D {self.pool_size}×{self.pool_size}{extra}"
        if self.kind == "Dropout":
            return f"Dropout {self.rate:g}"
        if self.kind == "Dense":
            return f"Dense {self.units}, {self.activation}"
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        """The fields that matter for this kind (for session state, JSON, ``LayerSpec(**d)``)."""
        keep = {
            "Conv2D": ("filters", "kernel_size", "strides", "padding", "activation"),
            "MaxPooling2D": ("pool_size", "strides", "padding"),
            "Dropout": ("rate",),
            "Dense": ("units", "activation"),
        }.get(self.kind, ())
        return {"kind": self.kind, **{name: getattr(self, name) for name in keep}}

    def with_changes(self, **changes: Any) -> LayerSpec:
        """A copy with some fields changed (the editor's update)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class SummaryRow:
    """One row of a stack's summary (shapes without the batch axis)."""

    name: str  #: the Keras layer name ``build_from_stack`` gives it, e.g. "conv2d_1"
    kind: str
    output_shape: tuple[int, ...]
    params: int
    formula: str  #: how ``params`` is computed, e.g. "(3·3·1 + 1)·32 = 320"
    shape_formula: str = ""  #: how the spatial size is computed, e.g. "⌊(28 − 3)/1⌋ + 1 = 26"
    description: str = field(default="")
    #: Multiply-adds per image in the forward pass (Conv2D: H′·W′·k·k·C_in·F, Dense:
    #: n_in·units; other layers' few element-wise operations are not counted).
    multiply_adds: int = 0


def _layer_error(index: int, spec: LayerSpec, problem: str) -> InvalidModelError:
    return InvalidModelError(f"Layer {index + 1} ({spec.describe()}): {problem}")


def _check_int(index: int, spec: LayerSpec, name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _layer_error(index, spec, f"{name} must be a whole number from {low} to {high}.")
    return value


def _check_spec(index: int, spec: LayerSpec) -> None:
    if not isinstance(spec, LayerSpec):
        raise InvalidModelError(f"Layer {index + 1} is not a LayerSpec: {spec!r}.")
    if spec.kind not in LAYER_KINDS:
        raise InvalidModelError(
            f"Layer {index + 1}: unknown kind {spec.kind!r}; choose one of "
            f"{', '.join(LAYER_KINDS)}."
        )
    if spec.kind == "Conv2D":
        _check_int(index, spec, "The number of filters", spec.filters, 1, MAX_FILTERS)
        _check_int(index, spec, "The kernel size", spec.kernel_size, 1, MAX_WINDOW)
        _check_int(index, spec, "The stride", spec.stride, 1, MAX_STRIDE)
    if spec.kind == "MaxPooling2D":
        _check_int(index, spec, "The pool size", spec.pool_size, 1, MAX_WINDOW)
        _check_int(index, spec, "The stride", spec.stride, 1, MAX_STRIDE)
    if spec.kind in ("Conv2D", "MaxPooling2D") and spec.padding not in PADDINGS:
        raise _layer_error(index, spec, "padding must be 'valid' or 'same'.")
    if spec.kind in ("Conv2D", "Dense") and spec.activation not in ACTIVATIONS:
        raise _layer_error(index, spec, f"the activation must be one of {', '.join(ACTIVATIONS)}.")
    if spec.kind == "Dense":
        _check_int(index, spec, "The number of units", spec.units, 1, MAX_UNITS)
    if spec.kind == "Dropout" and not (
        isinstance(spec.rate, int | float) and 0.0 <= spec.rate < 1.0
    ):
        raise _layer_error(index, spec, "the dropout rate must be at least 0 and below 1.")


def _spatial(
    index: int, spec: LayerSpec, size: tuple[int, int], window: int, what: str
) -> tuple[tuple[int, int], str]:
    """Output (height, width) and the formula; a size that would reach 0 is refused."""
    s = spec.stride
    try:
        out = tuple(output_size(n, window, padding=spec.padding, stride=s) for n in size)
    except InvalidArgumentError:
        raise _layer_error(
            index,
            spec,
            f"its input is only {size[0]}×{size[1]} pixels, smaller than its {window}×{window} "
            f"{what}, so the output size would reach 0. Remove a pooling or strided layer before "
            "it, use a smaller window, or use padding 'same'.",
        ) from None
    formulas = []
    for n, o in sorted(set(zip(size, out, strict=True)), reverse=True):
        if spec.padding == "same":
            formulas.append(f"⌈{n}/{s}⌉ = {o}")
        else:
            formulas.append(f"⌊({n} − {window})/{s}⌋ + 1 = {o}")
    return out, "; ".join(formulas)  # type: ignore[return-value]


def summarize_stack(
    specs: list[LayerSpec],
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
    *,
    max_params: int | None = MAX_STACK_PARAMS,
) -> list[SummaryRow]:
    """Each layer's output shape, parameter count and formula, as Keras would build it.

    No TensorFlow: shapes come from ``cnnlib.conv.output_size``, counts from Keras' rules —
    Conv2D (k·k·C_in + 1)·F, Dense (n_in + 1)·units, BatchNormalization 4·C (γ and β are
    trained, the moving mean and variance are not, and ``count_params`` counts all four).
    Raises ``InvalidModelError`` naming the layer (number and kind) for an impossible stack:
    a spatial size that would reach 0, Conv2D or pooling on a flat tensor, Dense on a 3-D
    tensor before Flatten, a last layer other than Dense(num_classes, softmax), or more
    than ``max_params`` parameters.
    """
    specs = list(specs)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise InvalidModelError(f"The input shape must be (H, W, C); got {input_shape!r}.")
    if not specs:
        raise InvalidModelError(
            f"The stack is empty. Add layers ending with Dense({num_classes}, softmax)."
        )
    for i, spec in enumerate(specs):
        _check_spec(i, spec)
    shape: tuple[int, ...] = tuple(int(d) for d in input_shape)
    counters: dict[str, int] = {}
    rows: list[SummaryRow] = []
    for i, spec in enumerate(specs):
        counters[spec.kind] = counters.get(spec.kind, 0) + 1
        name = f"{_SNAKE[spec.kind]}_{counters[spec.kind]}"
        shape_formula = ""
        macs = 0
        if spec.kind in ("Conv2D", "MaxPooling2D"):
            if len(shape) != 3:
                raise _layer_error(
                    i,
                    spec,
                    f"it needs an image-shaped (H×W×C) input but gets a flat vector of "
                    f"{shape[0]} values. Move it before Flatten.",
                )
            h, w, c = shape
            window = spec.kernel_size if spec.kind == "Conv2D" else spec.pool_size
            what = "kernel" if spec.kind == "Conv2D" else "pool window"
            (oh, ow), shape_formula = _spatial(i, spec, (h, w), window, what)
            if spec.kind == "Conv2D":
                k, f = spec.kernel_size, spec.filters
                params = (k * k * c + 1) * f
                formula = f"({k}·{k}·{c} + 1)·{f} = {params:,}"
                macs = oh * ow * k * k * c * f
                shape = (oh, ow, f)
            else:
                params, formula = 0, "0 (no weights: takes the maximum of each window)"
                shape = (oh, ow, c)
        elif spec.kind == "Flatten":
            n = 1
            for d in shape:
                n *= d
            shape_formula = f"{' · '.join(str(d) for d in shape)} = {n:,}" if len(shape) > 1 else ""
            params, formula = 0, "0 (no weights: reshapes only)"
            shape = (n,)
        elif spec.kind == "Dense":
            if len(shape) != 1:
                raise _layer_error(
                    i,
                    spec,
                    f"it gets a {shape_text(shape)} tensor; a Dense layer needs a flat vector. "
                    "Add a Flatten layer before it.",
                )
            params = (shape[0] + 1) * spec.units
            formula = f"({shape[0]:,} + 1)·{spec.units} = {params:,}"
            macs = shape[0] * spec.units
            shape = (spec.units,)
        elif spec.kind == "BatchNormalization":
            c = shape[-1]
            params = 4 * c
            formula = f"4·{c} = {params:,} (γ, β trained; moving mean, variance not)"
        else:  # Dropout
            params, formula = 0, "0 (no weights: zeroes a random fraction while training)"
        rows.append(
            SummaryRow(
                name=name,
                kind=spec.kind,
                output_shape=shape,
                params=params,
                formula=formula,
                shape_formula=shape_formula,
                description=spec.describe(),
                multiply_adds=macs,
            )
        )
    last = specs[-1]
    if not (last.kind == "Dense" and last.units == num_classes and last.activation == "softmax"):
        raise _layer_error(
            len(specs) - 1,
            last,
            f"the last layer must be the output layer Dense({num_classes}, softmax): one "
            "probability per class.",
        )
    total = sum(r.params for r in rows)
    if max_params is not None and total > max_params:
        biggest = max(range(len(rows)), key=lambda j: rows[j].params)
        raise _layer_error(
            biggest,
            specs[biggest],
            f"the stack has {total:,} parameters, more than the {max_params:,} that can be "
            f"trained here; this layer alone has {rows[biggest].params:,}. Use fewer units or "
            "filters, or pool before it.",
        )
    return rows


def stack_multiply_adds(
    specs: list[LayerSpec],
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
) -> int:
    """Multiply-adds per image in the forward pass of a valid stack (Conv2D and Dense)."""
    rows = summarize_stack(specs, input_shape, num_classes, max_params=None)
    return sum(r.multiply_adds for r in rows)


def stack_param_count(
    specs: list[LayerSpec],
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
) -> int:
    """Total parameters of a valid stack (what Keras' ``count_params()`` returns)."""
    return sum(r.params for r in summarize_stack(specs, input_shape, num_classes, max_params=None))


def build_from_stack(
    specs: list[LayerSpec],
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
    *,
    name: str = "stack",
    max_params: int | None = MAX_STACK_PARAMS,
    seed: int | None = None,
):
    """The uncompiled ``keras.Sequential`` for a stack, validated first by ``summarize_stack``.

    Layers are named as in the summary ("conv2d_1", "dense_2", ...); BatchNormalization uses
    momentum ``BN_MOMENTUM``. With ``seed``, weight
    initializers and dropout are seeded per layer (seed + layer index), so two builds with
    the same seed start from the same weights without touching Keras' global random state.
    """
    rows = summarize_stack(specs, input_shape, num_classes, max_params=max_params)
    import keras

    def init(index: int):
        """Glorot-uniform weights (Keras' default), seeded per layer when ``seed`` is given."""
        if seed is None:
            return "glorot_uniform"
        return keras.initializers.GlorotUniform(seed=seed + index)

    layers: list = [keras.Input(shape=tuple(input_shape), name="input")]
    for i, (spec, row) in enumerate(zip(specs, rows, strict=True)):
        if spec.kind == "Conv2D":
            layer = keras.layers.Conv2D(
                spec.filters,
                spec.kernel_size,
                strides=spec.stride,
                padding=spec.padding,
                activation=spec.activation,
                kernel_initializer=init(i),
                name=row.name,
            )
        elif spec.kind == "MaxPooling2D":
            layer = keras.layers.MaxPooling2D(
                spec.pool_size, strides=spec.stride, padding=spec.padding, name=row.name
            )
        elif spec.kind == "Dropout":
            layer = keras.layers.Dropout(
                spec.rate, seed=None if seed is None else seed + i, name=row.name
            )
        elif spec.kind == "BatchNormalization":
            layer = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=row.name)
        elif spec.kind == "Flatten":
            layer = keras.layers.Flatten(name=row.name)
        else:
            layer = keras.layers.Dense(
                spec.units,
                activation=spec.activation,
                kernel_initializer=init(i),
                name=row.name,
            )
        layers.append(layer)
    return keras.Sequential(layers, name=name)
