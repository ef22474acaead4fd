"""Layer stacks the learner edits: specs, an exact summary without TensorFlow, and the build.

A stack is a list of ``LayerSpec`` applied to an input of shape (H, W, C) of RAW pixels
(0…255). Every layer kind has one entry in ``LAYER_REGISTRY`` (a ``LayerKind``): its
parameters (name, type, range, default), how to describe it, its output shape / parameter
count / multiply-adds arithmetic and how to build the Keras layer. Adding a kind is adding
one entry (plus a field on ``LayerSpec`` if it has a new parameter).

``summarize_stack`` walks a stack with ``cnnlib.conv.ops.output_size`` and the parameter formulas
Keras uses, and refuses an impossible stack with a message naming the layer;
``build_from_stack`` builds the Keras model (Keras is imported only there). The model owns
its preprocessing: a stack without a ``Rescaling`` layer gets ``Rescaling(1/255)`` first
(it appears in the summary as "rescaling_1"), so the model takes raw pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cnnlib.conv.ops import output_size
from cnnlib.core.errors import InvalidArgumentError, InvalidModelError
from cnnlib.core.text import shape_text

__all__ = [
    "ACTIVATIONS",
    "AUGMENTATION_KINDS",
    "BN_MOMENTUM",
    "FLIP_MODES",
    "LAYER_KINDS",
    "LAYER_REGISTRY",
    "MAX_STACK_PARAMS",
    "LayerKind",
    "LayerSpec",
    "Param",
    "SummaryRow",
    "build_from_stack",
    "stack_multiply_adds",
    "stack_param_count",
    "summarize_stack",
    "takes_raw_pixels",
    "with_input_scaling",
]

ACTIVATIONS: tuple[str, ...] = ("relu", "linear", "sigmoid", "tanh", "softmax")
PADDINGS: tuple[str, ...] = ("valid", "same")
FLIP_MODES: tuple[str, ...] = ("horizontal", "vertical", "horizontal_and_vertical")
#: Largest stack (in parameters) the editor accepts: bigger ones would not train here.
MAX_STACK_PARAMS = 5_000_000
#: Momentum of BatchNormalization's moving mean and variance. Keras' default 0.99 needs
#: hundreds of batches before the moving statistics fit; trainings here are short (a few
#: hundred batches, or a few dozen on a subset), so they follow the batches faster.
BN_MOMENTUM = 0.9
#: Editor limits per layer (filters, units, kernel or pool size, stride).
MAX_FILTERS, MAX_UNITS, MAX_WINDOW, MAX_STRIDE = 512, 4096, 15, 8
#: Raw pixels 0…255 → [0, 1]: the scale of the implied first layer.
PIXEL_SCALE = 1.0 / 255.0


@dataclass(frozen=True)
class LayerSpec:
    """One layer of an editable stack. Only the fields of its ``kind`` matter (see
    ``LAYER_REGISTRY[kind].params``):

    Conv2D: filters, kernel_size, strides (default 1), padding, activation.
    MaxPooling2D: pool_size, strides (default = pool_size), padding.
    Dropout: rate. Dense: units, activation. Rescaling: scale, offset.
    RandomFlip: mode. RandomRotation, RandomZoom, RandomTranslation, RandomContrast: factor.
    BatchNormalization, Flatten, GlobalAveragePooling2D: none.
    Sizes are square (one int). Use the constructors (``LayerSpec.conv2d(32, 3)``, ...) or
    ``LayerSpec.new(kind)`` for a kind's defaults.
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
    scale: float = PIXEL_SCALE
    offset: float = 0.0
    mode: str = "horizontal"
    factor: float = 0.1

    @classmethod
    def new(cls, kind: str) -> LayerSpec:
        """A fresh layer of ``kind`` with its registry defaults (the editor's "Add layer")."""
        entry = _entry(kind)
        return cls(kind, **{p.name: p.default for p in entry.params})

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

    @classmethod
    def rescaling(cls, scale: float = PIXEL_SCALE, offset: float = 0.0) -> LayerSpec:
        """Pixels × scale + offset (default 0…255 → 0…1)."""
        return cls("Rescaling", scale=scale, offset=offset)

    @classmethod
    def random_flip(cls, mode: str = "horizontal") -> LayerSpec:
        return cls("RandomFlip", mode=mode)

    @classmethod
    def random_rotation(cls, factor: float = 0.1) -> LayerSpec:
        """Rotate by up to ± factor of a full turn (0.1 = ±36°) while training."""
        return cls("RandomRotation", factor=factor)

    @classmethod
    def random_zoom(cls, factor: float = 0.1) -> LayerSpec:
        return cls("RandomZoom", factor=factor)

    @classmethod
    def random_translation(cls, factor: float = 0.1) -> LayerSpec:
        return cls("RandomTranslation", factor=factor)

    @classmethod
    def random_contrast(cls, factor: float = 0.2) -> LayerSpec:
        return cls("RandomContrast", factor=factor)

    @classmethod
    def global_average_pooling(cls) -> LayerSpec:
        return cls("GlobalAveragePooling2D")

    @property
    def factor_pair(self) -> tuple[float, float]:
        """(factor, factor): a range symmetric around no change (RandomContrast)."""
        return (self.factor, self.factor)

    @property
    def stride(self) -> int:
        """The effective stride: ``strides``, or 1 (Conv2D) / ``pool_size`` (MaxPooling2D)."""
        if self.strides is not None:
            return self.strides
        return self.pool_size if self.kind == "MaxPooling2D" else 1

    def describe(self) -> str:
        """Short text for tables, e.g. "Conv2D 32 × 3×3, stride 2, same, relu"."""
        entry = LAYER_REGISTRY.get(self.kind)
        return entry.describe(self) if entry is not None else self.kind

    def to_dict(self) -> dict[str, Any]:
        """The fields that matter for this kind (for session state, JSON, ``LayerSpec(**d)``)."""
        entry = LAYER_REGISTRY.get(self.kind)
        names = [p.name for p in entry.params] if entry is not None else []
        return {"kind": self.kind, **{name: getattr(self, name) for name in names}}

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


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One parameter of a layer kind: a ``LayerSpec`` field and its editor widget.

    ``type``: "int" (number input, ``low``…``high``), "float" (slider with ``step``, or a
    number input when ``step`` is None; ``below``: ``high`` itself is excluded) or "choice"
    (one of ``choices``). ``what`` names it in messages ("The number of filters");
    ``read``: the attribute holding the effective value when it differs from ``name``
    (``stride`` for ``strides``).
    """

    name: str
    label: str
    type: str
    default: Any
    what: str
    low: float = 0
    high: float = 0
    step: float | None = None
    below: bool = False
    choices: tuple[str, ...] = ()
    read: str = ""
    help: str = ""

    def value(self, spec: LayerSpec) -> Any:
        return getattr(spec, self.read or self.name)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed (a sentence fragment), or None."""
        if self.type == "choice":
            if value not in self.choices:
                quoted = ", ".join(repr(c) for c in self.choices)
                return f"{self.what} must be one of {quoted}."
            return None
        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"{self.what} must be a whole number from {self.low} to {self.high}."
        elif isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            return f"{self.what} must be a number from {self.low:g} to {self.high:g}."
        too_high = value >= self.high if self.below else value > self.high
        if value < self.low or too_high:
            if self.type == "int":
                return f"{self.what} must be a whole number from {self.low} to {self.high}."
            top = f"below {self.high:g}" if self.below else f"at most {self.high:g}"
            return f"{self.what} must be at least {self.low:g} and {top}."
        return None


@dataclass(frozen=True)
class _Out:
    """A layer's effect: output shape, parameters and the arithmetic behind them."""

    shape: tuple[int, ...]
    params: int = 0
    formula: str = "0 (no weights)"
    shape_formula: str = ""
    multiply_adds: int = 0


#: ``forward(index, spec, input_shape) -> _Out``; raises ``InvalidModelError`` naming the layer.
Forward = Callable[[int, LayerSpec, tuple[int, ...]], _Out]
#: ``build(spec, name, seed, dtype) -> keras layer``; ``seed`` None or this layer's own seed.
Build = Callable[[LayerSpec, str, "int | None", "str | None"], Any]


@dataclass(frozen=True)
class LayerKind:
    """Everything about one layer kind: see the module docstring.

    ``snake``: Keras' name stem ("conv2d" → layers "conv2d_1", …); ``note``: one sentence on
    what the layer does (the editor shows it); ``augmentation``: active only in training.
    """

    kind: str
    snake: str
    params: tuple[Param, ...]
    describe: Callable[[LayerSpec], str]
    forward: Forward
    build: Build
    note: str = ""
    augmentation: bool = False


def _layer_error(index: int, spec: LayerSpec, problem: str) -> InvalidModelError:
    return InvalidModelError(f"Layer {index + 1} ({spec.describe()}): {problem}")


def _needs_image(index: int, spec: LayerSpec, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise _layer_error(
            index,
            spec,
            f"it needs an image-shaped (H×W×C) input but gets a flat vector of {shape[0]} "
            "values. Move it before Flatten.",
        )
    return shape  # type: ignore[return-value]


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


def _weights(seed: int | None):
    """Glorot-uniform weights (Keras' default), seeded when ``seed`` is given."""
    import keras

    return "glorot_uniform" if seed is None else keras.initializers.GlorotUniform(seed=seed)


# -- Conv2D ----------------------------------------------------------------------------------


def _conv_describe(spec: LayerSpec) -> str:
    extra = f", stride {spec.stride}" if spec.stride != 1 else ""
    extra += ", same" if spec.padding == "same" else ""
    k = spec.kernel_size
    return f"Conv2D {spec.filters} × {k}×{k}{extra}, {spec.activation}"


def _conv_forward(index: int, spec: LayerSpec, shape: tuple[int, ...]) -> _Out:
    h, w, c = _needs_image(index, spec, shape)
    (oh, ow), shape_formula = _spatial(index, spec, (h, w), spec.kernel_size, "kernel")
    k, f = spec.kernel_size, spec.filters
    params = (k * k * c + 1) * f
    return _Out(
        (oh, ow, f),
        params,
        f"({k}·{k}·{c} + 1)·{f} = {params:,}",
        shape_formula,
        oh * ow * k * k * c * f,
    )


def _conv_build(spec: LayerSpec, name: str, seed: int | None, dtype: str | None):
    import keras

    return keras.layers.Conv2D(
        spec.filters,
        spec.kernel_size,
        strides=spec.stride,
        padding=spec.padding,
        activation=spec.activation,
        kernel_initializer=_weights(seed),
        name=name,
        dtype=dtype,
    )


# -- MaxPooling2D ----------------------------------------------------------------------------


def _pool_describe(spec: LayerSpec) -> str:
    extra = f", stride {spec.stride}" if spec.stride != spec.pool_size else ""
    extra += ", same" if spec.padding == "same" else ""
    return f"MaxPooling2D {spec.pool_size}×{spec.pool_size}{extra}"


def _pool_forward(index: int, spec: LayerSpec, shape: tuple[int, ...]) -> _Out:
    h, w, c = _needs_image(index, spec, shape)
    (oh, ow), shape_formula = _spatial(index, spec, (h, w), spec.pool_size, "pool window")
    return _Out((oh, ow, c), 0, "0 (no weights: takes the maximum of each window)", shape_formula)


def _pool_build(spec: LayerSpec, name: str, seed: int | None, dtype: str | None):
    import keras

    return keras.layers.MaxPooling2D(
        spec.pool_size, strides=spec.stride, padding=spec.padding, name=name, dtype=dtype
    )


# -- Dense, Flatten, GlobalAveragePooling2D ----------------------------------------------------


def _dense_forward(index: int, spec: LayerSpec, shape: tuple[int, ...]) -> _Out:
    if len(shape) != 1:
        raise _layer_error(
            index,
            spec,
            f"it gets a {shape_text(shape)} tensor; a Dense layer needs a flat vector. "
            "Add a Flatten layer before it (or GlobalAveragePooling2D).",
        )
    params = (shape[0] + 1) * spec.units
    return _Out(
        (spec.units,),
        params,
        f"({shape[0]:,} + 1)·{spec.units} = {params:,}",
        "",
        shape[0] * spec.units,
    )


def _dense_build(spec: LayerSpec, name: str, seed: int | None, dtype: str | None):
    import keras

    if spec.activation == "softmax":
        dtype = "float32"  # probabilities in float32, even under mixed precision
    return keras.layers.Dense(
        spec.units,
        activation=spec.activation,
        kernel_initializer=_weights(seed),
        name=name,
        dtype=dtype,
    )


def _flatten_forward(index: int, spec: LayerSpec, shape: tuple[int, ...]) -> _Out:
    n = 1
    for d in shape:
        n *= d
    shape_formula = f"{' · '.join(str(d) for d in shape)} = {n:,}" if len(shape) > 1 else ""
    return _Out((n,), 0, "0 (no weights: reshapes only)", shape_formula)


def _gap_forward(index: int, spec: LayerSpec, shape: tuple[int, ...]) -> _Out:
    h, w, c = _needs_image(index, spec, shape)
    return _Out((c,), 0, "0 (no weights: the mean of each feature map)", f"{h}×{w}×{c} → {c} means")


# -- Shape-keeping layers --------------------------------------------------------------------


def _same_shape(formula: str) -> Forward:
    def forward(index: int, spec: LayerSpec, shape: tuple[int, ...]) -> _Out:
        return _Out(tuple(shape), 0, formula)

    return forward


def _batch_norm_forward(index: int, spec: LayerSpec, shape: tuple[int, ...]) -> _Out:
    c = shape[-1]
    return _Out(tuple(shape), 4 * c, f"4·{c} = {4 * c:,} (γ, β trained; moving mean, variance not)")


def _scale_text(scale: float) -> str:
    for d in (255, 127.5):
        if abs(scale * d - 1) < 1e-9:
            return f"1/{d:g}"
    return f"{scale:g}"


def _rescaling_describe(spec: LayerSpec) -> str:
    offset = f" {'+' if spec.offset >= 0 else '−'} {abs(spec.offset):g}" if spec.offset else ""
    return f"Rescaling ×{_scale_text(spec.scale)}{offset}"


def _keras_layer(class_name: str, *args_from: str, seeded: bool = False, **fixed: Any) -> Build:
    """A ``Build`` calling ``keras.layers.<class_name>(*(spec.<f> for f in args_from))``;
    ``seeded``: pass the layer's seed. Augmentation (Random*) layers are seeded and stay
    float32 (they run on raw pixels)."""
    augmentation = class_name.startswith("Random")

    def build(spec: LayerSpec, name: str, seed: int | None, dtype: str | None):
        import keras

        layer_class = getattr(keras.layers, class_name)
        kwargs: dict[str, Any] = {"name": name, **fixed}
        if seeded or augmentation:
            kwargs["seed"] = seed
        if dtype is not None and not augmentation:
            kwargs["dtype"] = dtype
        return layer_class(*(getattr(spec, f) for f in args_from), **kwargs)

    return build


#: Spec fields passed to the Random* layers that take more than ``factor``: the translation's
#: height and width factors, and the contrast's (lower, upper) pair — Keras reads a single
#: contrast factor f as [1, 1 + f] (only more contrast), the pair as [1 − f, 1 + f].
_FACTOR_ARGS = {"RandomTranslation": ("factor", "factor"), "RandomContrast": ("factor_pair",)}


def _augmentation(kind: str, snake: str, what: str, high: float, default: float, note: str):
    """A Random* layer with one ``factor`` parameter."""
    return LayerKind(
        kind,
        snake,
        (Param("factor", "Factor", "float", default, what, 0.0, high, 0.05),),
        lambda s: f"{kind} {s.factor:g}",
        _same_shape("0 (no weights: changes each training image at random)"),
        _keras_layer(kind, *_FACTOR_ARGS.get(kind, ("factor",))),
        note,
        augmentation=True,
    )


_STRIDE = Param("strides", "Stride", "int", 1, "The stride", 1, MAX_STRIDE, read="stride")
_PADDING = Param("padding", "Padding", "choice", "valid", "padding", choices=PADDINGS)
_ACTIVATION = Param(
    "activation", "Activation", "choice", "relu", "the activation", choices=ACTIVATIONS
)

#: Layer kind → its entry. The editor offers the kinds in this order.
LAYER_REGISTRY: dict[str, LayerKind] = {
    entry.kind: entry
    for entry in (
        LayerKind(
            "Conv2D",
            "conv2d",
            (
                Param("filters", "Filters", "int", 32, "The number of filters", 1, MAX_FILTERS),
                Param("kernel_size", "Kernel", "int", 3, "The kernel size", 1, MAX_WINDOW),
                _STRIDE,
                _PADDING,
                _ACTIVATION,
            ),
            _conv_describe,
            _conv_forward,
            _conv_build,
            "Slides learned k×k filters over the image: one feature map per filter.",
        ),
        LayerKind(
            "MaxPooling2D",
            "max_pooling2d",
            (
                Param("pool_size", "Pool size", "int", 2, "The pool size", 1, MAX_WINDOW),
                Param("strides", "Stride", "int", None, "The stride", 1, MAX_STRIDE, read="stride"),
                _PADDING,
            ),
            _pool_describe,
            _pool_forward,
            _pool_build,
            "Keeps the maximum of each window: a smaller feature map.",
        ),
        LayerKind(
            "Dropout",
            "dropout",
            (Param("rate", "Rate", "float", 0.25, "the dropout rate", 0.0, 0.9, 0.05, True),),
            lambda s: f"Dropout {s.rate:g}",
            _same_shape("0 (no weights: zeroes a random fraction while training)"),
            _keras_layer("Dropout", "rate", seeded=True),
            "Zeroes a random fraction of its inputs while training (fights overfitting).",
        ),
        LayerKind(
            "BatchNormalization",
            "batch_normalization",
            (),
            lambda s: "BatchNormalization",
            _batch_norm_forward,
            _keras_layer("BatchNormalization", momentum=BN_MOMENTUM),
            "No parameters: normalizes each channel.",
        ),
        LayerKind(
            "Flatten",
            "flatten",
            (),
            lambda s: "Flatten",
            _flatten_forward,
            _keras_layer("Flatten"),
            "No parameters: reshapes the feature maps into one vector.",
        ),
        LayerKind(
            "GlobalAveragePooling2D",
            "global_average_pooling2d",
            (),
            lambda s: "GlobalAveragePooling2D",
            _gap_forward,
            _keras_layer("GlobalAveragePooling2D"),
            "No parameters: the mean of each feature map, one value per channel.",
        ),
        LayerKind(
            "Dense",
            "dense",
            (
                Param("units", "Units", "int", 64, "The number of units", 1, MAX_UNITS),
                _ACTIVATION,
            ),
            lambda s: f"Dense {s.units}, {s.activation}",
            _dense_forward,
            _dense_build,
            "Every input connected to every unit.",
        ),
        LayerKind(
            "Rescaling",
            "rescaling",
            (
                Param("scale", "Scale", "float", PIXEL_SCALE, "The scale", -10.0, 10.0),
                Param("offset", "Offset", "float", 0.0, "The offset", -255.0, 255.0),
            ),
            _rescaling_describe,
            _same_shape("0 (no weights: pixels × scale + offset)"),
            _keras_layer("Rescaling", "scale", "offset"),
            "Pixels × scale + offset: 1/255 turns raw 0…255 pixels into 0…1.",
        ),
        LayerKind(
            "RandomFlip",
            "random_flip",
            (Param("mode", "Mode", "choice", "horizontal", "the flip mode", choices=FLIP_MODES),),
            lambda s: f"RandomFlip {s.mode.replace('_', ' ')}",
            _same_shape("0 (no weights: mirrors each training image at random)"),
            _keras_layer("RandomFlip", "mode"),
            "Mirrors half of the training images (not at prediction time).",
            augmentation=True,
        ),
        _augmentation(
            "RandomRotation",
            "random_rotation",
            "The rotation factor",
            0.5,
            0.1,
            "Rotates each training image by up to ± factor of a full turn (0.1 = ±36°).",
        ),
        _augmentation(
            "RandomZoom",
            "random_zoom",
            "The zoom factor",
            0.9,
            0.1,
            "Zooms each training image in or out by up to the factor (0.1 = ±10 %).",
        ),
        _augmentation(
            "RandomTranslation",
            "random_translation",
            "The translation factor",
            0.5,
            0.1,
            "Shifts each training image by up to the factor of its size, in both directions.",
        ),
        _augmentation(
            "RandomContrast",
            "random_contrast",
            "The contrast factor",
            1.0,
            0.2,
            "Changes each training image's contrast by up to the factor.",
        ),
    )
}
LAYER_KINDS: tuple[str, ...] = tuple(LAYER_REGISTRY)
AUGMENTATION_KINDS: tuple[str, ...] = tuple(k for k, e in LAYER_REGISTRY.items() if e.augmentation)


def _entry(kind: str) -> LayerKind:
    try:
        return LAYER_REGISTRY[kind]
    except KeyError:
        raise InvalidModelError(
            f"Unknown layer kind {kind!r}; choose one of {', '.join(LAYER_KINDS)}."
        ) from None


# --------------------------------------------------------------------------------------------
# Summary and build
# --------------------------------------------------------------------------------------------


def _check_spec(index: int, spec: LayerSpec) -> LayerKind:
    if not isinstance(spec, LayerSpec):
        raise InvalidModelError(f"Layer {index + 1} is not a LayerSpec: {spec!r}.")
    if spec.kind not in LAYER_REGISTRY:
        raise InvalidModelError(
            f"Layer {index + 1}: unknown kind {spec.kind!r}; choose one of "
            f"{', '.join(LAYER_KINDS)}."
        )
    entry = LAYER_REGISTRY[spec.kind]
    for param in entry.params:
        problem = param.problem(param.value(spec))
        if problem is not None:
            raise _layer_error(index, spec, problem)
    return entry


def with_input_scaling(specs: list[LayerSpec]) -> list[LayerSpec]:
    """``specs`` with ``Rescaling(1/255)`` first unless it has a Rescaling layer already."""
    specs = list(specs)
    if any(isinstance(s, LayerSpec) and s.kind == "Rescaling" for s in specs):
        return specs
    return [LayerSpec.rescaling(), *specs]


def summarize_stack(
    specs: list[LayerSpec],
    input_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
    *,
    max_params: int | None = MAX_STACK_PARAMS,
) -> list[SummaryRow]:
    """Each layer's output shape, parameter count and formula, as Keras would build it.

    Covers the implied ``Rescaling(1/255)`` first row when the stack has no Rescaling layer
    (see ``with_input_scaling``). No TensorFlow: shapes come from
    ``cnnlib.conv.ops.output_size``, counts from Keras' rules — Conv2D (k·k·C_in + 1)·F, Dense
    (n_in + 1)·units, BatchNormalization 4·C (γ and β are trained, the moving mean and
    variance are not, and ``count_params`` counts all four). Raises ``InvalidModelError``
    naming the layer (its number in ``specs`` and kind) for an impossible stack: a spatial
    size that would reach 0, Conv2D or pooling on a flat tensor, Dense on a 3-D tensor
    before Flatten, a last layer other than Dense(num_classes, softmax), or more than
    ``max_params`` parameters.
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
    full = with_input_scaling(specs)
    implied = len(full) - len(specs)  # 1 when Rescaling was added in front
    shape: tuple[int, ...] = tuple(int(d) for d in input_shape)
    counters: dict[str, int] = {}
    rows: list[SummaryRow] = []
    for i, spec in enumerate(full):
        entry = LAYER_REGISTRY[spec.kind]
        counters[spec.kind] = counters.get(spec.kind, 0) + 1
        out = entry.forward(i - implied, spec, shape)
        shape = out.shape
        rows.append(
            SummaryRow(
                name=f"{entry.snake}_{counters[spec.kind]}",
                kind=spec.kind,
                output_shape=out.shape,
                params=out.params,
                formula=out.formula,
                shape_formula=out.shape_formula,
                description=spec.describe(),
                multiply_adds=out.multiply_adds,
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
            biggest - implied,
            full[biggest],
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
    dtype: str | None = None,
):
    """The uncompiled ``keras.Sequential`` for a stack, validated first by ``summarize_stack``.

    Takes RAW pixels (N, H, W, C) 0…255: a stack without a Rescaling layer gets
    ``Rescaling(1/255)`` first. Layers are named as in the summary ("rescaling_1",
    "conv2d_1", ...); BatchNormalization uses momentum ``BN_MOMENTUM``. With ``seed``,
    weight initializers, dropout and augmentation are seeded per layer (seed + layer index),
    so two builds with the same seed start from the same weights without touching Keras'
    global random state. ``dtype``: a Keras dtype policy for the layers (e.g.
    "mixed_float16"); the softmax output and augmentation layers stay float32.
    """
    rows = summarize_stack(specs, input_shape, num_classes, max_params=max_params)
    import keras

    full = with_input_scaling(specs)
    layers: list = [keras.Input(shape=tuple(input_shape), name="input")]
    implied = len(full) - len(specs)
    for i, (spec, row) in enumerate(zip(full, rows, strict=True)):
        entry = LAYER_REGISTRY[spec.kind]
        layer_seed = None if seed is None else seed + i - implied  # as numbered in ``specs``
        layers.append(entry.build(spec, row.name, layer_seed, dtype))
    return keras.Sequential(layers, name=name)


def takes_raw_pixels(model) -> bool:
    """True when ``model`` scales its own input (raw pixels 0…255 in): a ``Rescaling`` layer
    comes before the first layer with weights, looking inside nested models (a backbone).

    The app's models all do; an older uploaded model trained on inputs in [0, 1] does not,
    so a page can tell which input a model wants.
    """
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Rescaling):
            return True
        if isinstance(layer, keras.Model):
            return takes_raw_pixels(layer)
        if layer.weights:
            return False
    return False
