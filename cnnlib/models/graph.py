"""Model graphs: CNN Lab's own description of a Keras model, its exact summary, and the build.

A ``ModelSpec`` is a model as CNN Lab understands it: an input of a fixed shape and layers
(``NodeSpec``), each of a kind in ``GRAPH_KINDS`` with typed, bounded arguments, reading
the outputs of earlier layers by name (a Sequential model reads the previous layer; a
Functional one any earlier layers, e.g. a residual ``Add``). A layer may itself be a nested
model. Uploaded ``.keras`` files become a ``ModelSpec`` (``cnnlib.models.keras_config``);
the editor's stacks too (``graph_from_stack``).

- ``GRAPH_KINDS``: one ``GraphKind`` per layer kind: its arguments (``Arg``: parsed from
  JSON into a value of one type within bounds, or refused), its output shape and weight
  shapes, and how the Keras layer is made (the Keras constructor with those arguments).
  Activations, initializers, regularizers and constraints are named built-ins from short
  allow-lists (``ACTIVATION_NAMES``, ``INITIALIZER_NAMES``, ``REGULARIZERS``,
  ``CONSTRAINTS``).
- ``spec_from_dict`` / ``ModelSpec.to_dict``: the spec as plain JSON (what the decoding
  sandbox returns); ``spec_from_dict`` checks everything again.
- ``summarize_graph``: every layer's output shape, parameters and weight shapes, computed
  from the spec alone (no TensorFlow), within parameter and activation budgets.
- ``build_from_graph``: the Keras model (Keras imported only there), every layer float32.
- ``assign_weights``: weight arrays into the built model, each checked against its
  variable's shape and dtype first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cnnlib.conv.ops import output_size
from cnnlib.core.budgets import format_bytes
from cnnlib.core.errors import InvalidArgumentError, InvalidModelError
from cnnlib.core.text import safe_text
from cnnlib.models.layers import caffe_preprocess_layer
from cnnlib.models.stack import BN_MOMENTUM, summarize_stack, with_input_scaling

__all__ = [
    "ACTIVATION_NAMES",
    "CONSTRAINTS",
    "DTYPE_POLICIES",
    "GRAPH_KINDS",
    "INITIALIZER_NAMES",
    "MAX_DEPTH",
    "MAX_LAYERS",
    "MODEL_KINDS",
    "REGULARIZERS",
    "Arg",
    "GraphKind",
    "GraphRow",
    "GraphSummary",
    "ModelSpec",
    "NodeSpec",
    "allowed_kinds_text",
    "assign_weights",
    "build_from_graph",
    "graph_from_stack",
    "parse_args",
    "parse_dtype_policy",
    "quoted",
    "snake_case",
    "spec_from_dict",
    "summarize_graph",
]

Shape = tuple[int, ...]

#: Activation functions a layer may name (Keras built-ins, by name).
ACTIVATION_NAMES: tuple[str, ...] = (
    "linear",
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "silu",
    "swish",
    "sigmoid",
    "hard_sigmoid",
    "tanh",
    "softmax",
    "softplus",
    "softsign",
)
#: Weight initializers a layer may name: Keras class name → the name it is built with. The
#: initial values are replaced by the file's weights, so only the name is kept.
INITIALIZER_NAMES: dict[str, str] = {
    "GlorotUniform": "glorot_uniform",
    "GlorotNormal": "glorot_normal",
    "HeUniform": "he_uniform",
    "HeNormal": "he_normal",
    "LecunUniform": "lecun_uniform",
    "LecunNormal": "lecun_normal",
    "RandomNormal": "random_normal",
    "RandomUniform": "random_uniform",
    "TruncatedNormal": "truncated_normal",
    "VarianceScaling": "variance_scaling",
    "Zeros": "zeros",
    "Ones": "ones",
}
#: Settings an initializer's configuration may hold (all dropped: see ``INITIALIZER_NAMES``).
_INITIALIZER_KEYS = frozenset(
    {"seed", "input_axes", "output_axes", "mean", "stddev", "minval", "maxval", "scale"}
    | {"mode", "distribution", "value"}
)
#: Regularizers: class name → its settings (each a float from 0 to 1).
REGULARIZERS: dict[str, tuple[str, ...]] = {"L1": ("l1",), "L2": ("l2",), "L1L2": ("l1", "l2")}
#: Constraints: class name → its settings.
CONSTRAINTS: dict[str, tuple[str, ...]] = {
    "NonNeg": (),
    "UnitNorm": ("axis",),
    "MaxNorm": ("max_value", "axis"),
    "MinMaxNorm": ("min_value", "max_value", "rate", "axis"),
}
#: Dtype policies a layer may declare. Every layer is built float32 (the variables of the
#: mixed policies are float32 too; inference runs on the CPU).
DTYPE_POLICIES: tuple[str, ...] = ("float32", "mixed_float16", "mixed_bfloat16")
#: Nested models a layer may be.
MODEL_KINDS: tuple[str, ...] = ("Sequential", "Functional")
#: Most layers in a model, nested models' layers included.
MAX_LAYERS = 2000
#: Deepest nesting of models (a model in a model in a model).
MAX_DEPTH = 4
#: Most inputs of one merge layer.
MAX_MERGE_INPUTS = 64

_MAX_DIM = 1 << 16
_NAME = re.compile(r"[\w.\- ]{1,128}")
_REQUIRED = object()
#: The keys of a serialized Keras object (an activation, initializer, regularizer, …).
_SERIALIZED_KEYS = frozenset({"module", "class_name", "config", "registered_name"})


class _ArgError(ValueError):
    """An argument's value is not allowed (the message says what is)."""


# --------------------------------------------------------------------------------------------
# Arguments: one parser per type
# --------------------------------------------------------------------------------------------

Parse = Callable[[Any], Any]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) < 1e300
    )


def _int(low: int, high: int) -> Parse:
    def parse(value: Any) -> int:
        if not _is_int(value) or not low <= value <= high:
            raise _ArgError(f"a whole number from {low} to {high}")
        return int(value)

    return parse


def _float(low: float, high: float) -> Parse:
    def parse(value: Any) -> float:
        if not _is_number(value) or not low <= value <= high:
            raise _ArgError(f"a number from {low:g} to {high:g}")
        return float(value)

    return parse


def _optional(parse: Parse) -> Parse:
    def optional(value: Any) -> Any:
        return None if value is None else parse(value)

    return optional


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _ArgError("true or false")
    return value


def _choice(*choices: str) -> Parse:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise _ArgError("one of " + ", ".join(repr(c) for c in choices))
        return value

    return parse


def _exactly(expected: Any, *aliases: Any) -> Parse:
    """Only ``expected`` (or an alias meaning the same, e.g. None for a default); compared
    by identity for None, True and False, so 0 is not False."""

    def same(value: Any, allowed: Any) -> bool:
        return value is allowed or (isinstance(allowed, str) and value == allowed)

    def parse(value: Any) -> Any:
        if not any(same(value, a) for a in (expected, *aliases)):
            raise _ArgError(repr(expected))
        return expected

    return parse


def _pair(low: int, high: int) -> Parse:
    """One whole number or two ([3, 3]) → (a, b)."""
    one = _int(low, high)

    def parse(value: Any) -> tuple[int, int]:
        if isinstance(value, list | tuple):
            if len(value) != 2:
                raise _ArgError(f"two whole numbers from {low} to {high}")
            return one(value[0]), one(value[1])
        n = one(value)
        return n, n

    return parse


def _padding2d(value: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """ZeroPadding2D's padding: n, [rows, cols] or [[top, bottom], [left, right]]."""
    one = _int(0, 4096)
    if isinstance(value, list | tuple) and len(value) == 2:
        if all(isinstance(v, list | tuple) for v in value):
            rows, cols = (_pair(0, 4096)(v) for v in value)
            if len(value[0]) == 2 and len(value[1]) == 2:
                return rows, cols
        elif not any(isinstance(v, list | tuple) for v in value):
            r, c = one(value[0]), one(value[1])
            return (r, r), (c, c)
    elif not isinstance(value, list | tuple):
        n = one(value)
        return (n, n), (n, n)
    raise _ArgError("a whole number, two, or two pairs, each from 0 to 4096")


def _factor(low: float, high: float) -> Parse:
    """One number or a (lower, upper) pair within [low, high]."""
    one = _float(low, high)

    def parse(value: Any) -> float | tuple[float, float]:
        if isinstance(value, list | tuple):
            if len(value) != 2:
                raise _ArgError(f"a number or two numbers from {low:g} to {high:g}")
            lo, hi = one(value[0]), one(value[1])
            if lo > hi:
                raise _ArgError("a (lower, upper) pair with lower ≤ upper")
            return lo, hi
        return one(value)

    return parse


def _value_range(value: Any) -> tuple[float, float]:
    one = _float(-1e6, 1e6)
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise _ArgError("a (low, high) pair of numbers")
    lo, hi = one(value[0]), one(value[1])
    if lo >= hi:
        raise _ArgError("a (low, high) pair with low < high")
    return lo, hi


def _axis(value: Any) -> int:
    """-1 or an axis index (ints or a one-item list); checked against the input in forward."""
    if isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    return _int(-1, 8)(value)


def _seed(value: Any) -> int | None:
    return None if value is None else _int(0, 2**32 - 1)(value)


def _activation(value: Any) -> str:
    """A named built-in activation: "relu", or Keras' serialized function {"class_name":
    "function", "config": "relu", ...}."""
    if isinstance(value, dict):
        if (
            set(value) - _SERIALIZED_KEYS
            or value.get("class_name") != "function"
            or value.get("module") not in ("builtins", "keras.activations")
        ):
            raise _ArgError("the name of a built-in activation")
        value = value.get("config")
    if value is None:
        return "linear"
    if not isinstance(value, str) or value not in ACTIVATION_NAMES:
        raise _ArgError("one of the built-in activations " + ", ".join(ACTIVATION_NAMES))
    return value


def _serialized(value: Any, modules: tuple[str, ...], what: str) -> tuple[str, dict]:
    """(class name, config) of a serialized Keras object of one of ``modules``."""
    if not isinstance(value, dict) or set(value) - _SERIALIZED_KEYS:
        raise _ArgError(f"a built-in {what}")
    module, registered = value.get("module"), value.get("registered_name")
    if module is not None and module not in modules:
        raise _ArgError(f"a built-in {what} (not one from {quoted(module, 40)})")
    if registered is not None and registered != value.get("class_name"):
        raise _ArgError(f"a built-in {what} (not the custom {quoted(registered, 40)})")
    config = value.get("config") if value.get("config") is not None else {}
    if not isinstance(config, dict) or not isinstance(value.get("class_name"), str):
        raise _ArgError(f"a built-in {what}")
    return value["class_name"], config


def _initializer(value: Any) -> str:
    """A named built-in initializer → the name it is built with ("glorot_uniform")."""
    names = set(INITIALIZER_NAMES.values())
    if isinstance(value, str):
        if value not in names:
            raise _ArgError("one of the initializers " + ", ".join(sorted(names)))
        return value
    class_name, config = _serialized(value, ("keras.initializers",), "initializer")
    if class_name not in INITIALIZER_NAMES:
        raise _ArgError("one of the initializers " + ", ".join(INITIALIZER_NAMES))
    unknown = set(config) - _INITIALIZER_KEYS
    if unknown:
        raise _ArgError(f"an initializer without the setting {quoted(sorted(unknown)[0], 40)}")
    for key, setting in config.items():
        if setting is not None and not _is_number(setting) and not isinstance(setting, str):
            raise _ArgError(f"an initializer whose settings are numbers, not {key}")
    return INITIALIZER_NAMES[class_name]


def _keras_object(table: Mapping[str, tuple[str, ...]], module: str, what: str) -> Parse:
    """None, or a built-in regularizer / constraint → {"class_name": …, "config": {…}}."""
    setting = _float(-1e6, 1e6)

    def parse(value: Any) -> dict | None:
        if value is None:
            return None
        class_name, config = _serialized(value, (module,), what)
        if class_name not in table:
            raise _ArgError(f"None or one of the {what}s " + ", ".join(table))
        unknown = set(config) - set(table[class_name])
        if unknown:
            raise _ArgError(f"a {class_name} without the setting {quoted(sorted(unknown)[0], 40)}")
        typed = {}
        for key, v in config.items():
            typed[key] = _axis(v) if key == "axis" else setting(v)
            if key in ("l1", "l2") and not 0 <= typed[key] <= 1:
                raise _ArgError(f"a {class_name} with {key} from 0 to 1")
        return {"class_name": class_name, "config": typed}

    return parse


_regularizer = _keras_object(REGULARIZERS, "keras.regularizers", "regularizer")
_constraint = _keras_object(CONSTRAINTS, "keras.constraints", "constraint")


def parse_dtype_policy(value: Any, where: str) -> str:
    """A dtype policy (a name, or Keras' serialized DTypePolicy) → its name in
    ``DTYPE_POLICIES``. Raises ``InvalidModelError`` naming ``where``."""
    try:
        return _dtype(value)
    except _ArgError as err:
        raise InvalidModelError(
            f"{where} has the dtype {quoted(value)}; it must be {err}."
        ) from None


def _dtype(value: Any) -> str:
    """A dtype policy name ("float32"), or Keras' serialized DTypePolicy."""
    if isinstance(value, dict):
        if set(value) - {"module", "class_name", "config", "registered_name", "shared_object_id"}:
            raise _ArgError("a dtype policy such as 'float32'")
        config = value.get("config")
        if (
            value.get("class_name") != "DTypePolicy"
            or value.get("module") not in ("keras", "keras.dtype_policies")
            or not isinstance(config, dict)
            or set(config) != {"name"}
            or (
                value.get("shared_object_id") is not None and not _is_int(value["shared_object_id"])
            )
        ):
            raise _ArgError("a dtype policy such as 'float32'")
        value = config["name"]
    if value is None:
        return "float32"
    if value not in DTYPE_POLICIES:
        raise _ArgError("one of the dtype policies " + ", ".join(DTYPE_POLICIES))
    return value


@dataclass(frozen=True)
class Arg:
    """One argument of a layer kind: its key in the layer's configuration, the parser that
    turns a JSON value into a typed, bounded value (or raises), its default (Keras') when
    the key is absent, and whether it is passed to the Keras constructor (``keras``)."""

    name: str
    parse: Parse
    default: Any = _REQUIRED
    keras: bool = True


#: Arguments every layer may have.
_COMMON = (
    Arg("trainable", _bool, True),
    Arg("dtype", _dtype, "float32", keras=False),
    Arg("autocast", _bool, True, keras=False),
    Arg("activity_regularizer", _regularizer, None),
)
_CHANNELS_LAST = Arg("data_format", _exactly("channels_last", None), "channels_last")
_PADDING = Arg("padding", _choice("valid", "same"), "valid")
_SEED = Arg("seed", _seed, None)


def _weight_args(*names: str, bias: bool = True) -> tuple[Arg, ...]:
    """Initializer, regularizer and constraint arguments for weights ``names``."""
    names = (*names, "bias") if bias else names
    out: list[Arg] = []
    for name in names:
        default = "zeros" if name == "bias" else "glorot_uniform"
        out += [
            Arg(f"{name}_initializer", _initializer, default),
            Arg(f"{name}_regularizer", _regularizer, None),
            Arg(f"{name}_constraint", _constraint, None),
        ]
    return tuple(out)


# --------------------------------------------------------------------------------------------
# The kinds: shapes, weights and the build
# --------------------------------------------------------------------------------------------

#: ``forward(args, input_shapes) -> (output_shape, weight_shapes)``; raises ``_ArgError``.
Forward = Callable[[dict, list[Shape]], tuple[Shape, tuple[Shape, ...]]]


@dataclass(frozen=True)
class GraphKind:
    """One layer kind: ``args`` by key, the shape rule, how many inputs it takes
    (``merge``: two or more), and ``make`` when the layer is not ``keras.layers.<kind>``."""

    kind: str
    args: tuple[Arg, ...]
    forward: Forward
    merge: bool = False
    make: Callable[..., Any] | None = None

    @property
    def arg_table(self) -> dict[str, Arg]:
        return {a.name: a for a in (*self.args, *_COMMON)}


def _image(shape: Shape) -> Shape:
    if len(shape) != 3:
        raise _ArgError(f"an (H, W, C) image input, not {_shape_text(shape)}")
    return shape


def _shape_text(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _window(args: dict, shape: Shape, size: tuple[int, int], strides: tuple[int, int]) -> Shape:
    """Output (H′, W′) of a window of ``size`` sliding over an (H, W, C) input."""
    h, w, _ = _image(shape)
    dilation = args.get("dilation_rate", (1, 1))
    if max(strides) > 1 and max(dilation) > 1:
        raise _ArgError("a stride of 1 when the dilation rate is above 1")
    try:
        return tuple(
            output_size(
                n, size[i], padding=args["padding"], stride=strides[i], dilation=dilation[i]
            )
            for i, n in enumerate((h, w))
        )
    except InvalidArgumentError:
        raise _ArgError(f"a window that fits its {h}×{w} input") from None


def _bias(args: dict, n: int) -> tuple[Shape, ...]:
    return ((n,),) if args["use_bias"] else ()


def _conv2d(args: dict, shapes: list[Shape]) -> tuple[Shape, tuple[Shape, ...]]:
    c, f, groups = _image(shapes[0])[2], args["filters"], args["groups"]
    if c % groups or f % groups:
        raise _ArgError(f"groups ({groups}) that divide the {c} input channels and {f} filters")
    oh, ow = _window(args, shapes[0], args["kernel_size"], args["strides"])
    kh, kw = args["kernel_size"]
    return (oh, ow, f), ((kh, kw, c // groups, f), *_bias(args, f))


def _depthwise(args: dict, shapes: list[Shape]) -> tuple[Shape, tuple[Shape, ...]]:
    c, m = _image(shapes[0])[2], args["depth_multiplier"]
    oh, ow = _window(args, shapes[0], args["kernel_size"], args["strides"])
    kh, kw = args["kernel_size"]
    return (oh, ow, c * m), ((kh, kw, c, m), *_bias(args, c * m))


def _separable(args: dict, shapes: list[Shape]) -> tuple[Shape, tuple[Shape, ...]]:
    c, m, f = _image(shapes[0])[2], args["depth_multiplier"], args["filters"]
    oh, ow = _window(args, shapes[0], args["kernel_size"], args["strides"])
    kh, kw = args["kernel_size"]
    return (oh, ow, f), ((kh, kw, c, m), (1, 1, c * m, f), *_bias(args, f))


def _dense(args: dict, shapes: list[Shape]) -> tuple[Shape, tuple[Shape, ...]]:
    shape, units = shapes[0], args["units"]
    return (*shape[:-1], units), ((shape[-1], units), *_bias(args, units))


def _pool(args: dict, shapes: list[Shape]) -> tuple[Shape, tuple[Shape, ...]]:
    strides = args["strides"] if args["strides"] is not None else args["pool_size"]
    oh, ow = _window(args, shapes[0], args["pool_size"], strides)
    return (oh, ow, shapes[0][2]), ()


def _global_pool(args: dict, shapes: list[Shape]) -> tuple[Shape, tuple[Shape, ...]]:
    c = _image(shapes[0])[2]
    return ((1, 1, c) if args["keepdims"] else (c,)), ()


def _flatten(args: dict, shapes: list[Shape]) -> tuple[Shape, tuple[Shape, ...]]:
    return (math.prod(shapes[0]),), ()


def _same(args: dict, shapes: list[Shape]) -> tuple[Shape, tuple[Shape, ...]]:
    return shapes[0], ()


def _same_image(args: dict, shapes: list[Shape]) -> tuple[Shape, tuple[Shape, ...]]:
    return _image(shapes[0]), ()


def _last_axis(args: dict, shape: Shape) -> None:
    if args["axis"] not in (-1, len(shape)):
        raise _ArgError(f"axis -1 (the channels), not {args['axis']}")


def _batch_norm(args: dict, shapes: list[Shape]) -> tuple[Shape, tuple[Shape, ...]]:
    _last_axis(args, shapes[0])
    c = shapes[0][-1]
    trained = int(args["scale"]) + int(args["center"])  # γ, β, then the moving mean, variance
    return shapes[0], ((c,),) * (trained + 2)


def _softmax(args: dict, shapes: list[Shape]) -> tuple[Shape, tuple[Shape, ...]]:
    if args["axis"] != -1:
        raise _ArgError("axis -1")
    return shapes[0], ()


def _zero_padding(args: dict, shapes: list[Shape]) -> tuple[Shape, tuple[Shape, ...]]:
    h, w, c = _image(shapes[0])
    (t, b), (left, r) = args["padding"]
    return (h + t + b, w + left + r, c), ()


def _merge(args: dict, shapes: list[Shape]) -> tuple[Shape, tuple[Shape, ...]]:
    if any(s != shapes[0] for s in shapes):
        raise _ArgError("inputs of one shape, not " + ", ".join(map(_shape_text, shapes)))
    return shapes[0], ()


def _concatenate(args: dict, shapes: list[Shape]) -> tuple[Shape, tuple[Shape, ...]]:
    _last_axis(args, shapes[0])
    if any(s[:-1] != shapes[0][:-1] for s in shapes):
        raise _ArgError(
            "inputs that differ only in channels, not " + ", ".join(map(_shape_text, shapes))
        )
    return (*shapes[0][:-1], sum(s[-1] for s in shapes)), ()


def _make_caffe(name: str):
    return caffe_preprocess_layer(name)


_KERNEL = Arg("kernel_size", _pair(1, 64))
_STRIDES = Arg("strides", _pair(1, 64), (1, 1))
_DILATION = Arg("dilation_rate", _pair(1, 64), (1, 1))
_USE_BIAS = Arg("use_bias", _bool, True)
_ACTIVATION = Arg("activation", _activation, "linear")
_FILL = (
    Arg("fill_mode", _choice("reflect", "wrap", "constant", "nearest"), "reflect"),
    Arg("interpolation", _choice("bilinear", "nearest"), "bilinear"),
    Arg("fill_value", _float(-1e6, 1e6), 0.0),
)
_FLIP_MODE = _choice("horizontal", "vertical", "horizontal_and_vertical")
_POOL_ARGS = (
    Arg("pool_size", _pair(1, 256), (2, 2)),
    Arg("strides", _optional(_pair(1, 256)), None),
    _PADDING,
    _CHANNELS_LAST,
)


def _kinds(*kinds: GraphKind) -> dict[str, GraphKind]:
    return {k.kind: k for k in kinds}


#: Layer kind (Keras class name) → its entry: the layers an uploaded model may use.
GRAPH_KINDS: dict[str, GraphKind] = _kinds(
    GraphKind(
        "Conv2D",
        (
            Arg("filters", _int(1, 8192)),
            _KERNEL,
            _STRIDES,
            _PADDING,
            _CHANNELS_LAST,
            _DILATION,
            Arg("groups", _int(1, 8192), 1),
            _ACTIVATION,
            _USE_BIAS,
            *_weight_args("kernel"),
        ),
        _conv2d,
    ),
    GraphKind(
        "DepthwiseConv2D",
        (
            Arg("depth_multiplier", _int(1, 256), 1),
            _KERNEL,
            _STRIDES,
            _PADDING,
            _CHANNELS_LAST,
            _DILATION,
            _ACTIVATION,
            _USE_BIAS,
            *_weight_args("depthwise"),
        ),
        _depthwise,
    ),
    GraphKind(
        "SeparableConv2D",
        (
            Arg("filters", _int(1, 8192)),
            Arg("depth_multiplier", _int(1, 256), 1),
            _KERNEL,
            _STRIDES,
            _PADDING,
            _CHANNELS_LAST,
            _DILATION,
            _ACTIVATION,
            _USE_BIAS,
            *_weight_args("depthwise", "pointwise"),
        ),
        _separable,
    ),
    GraphKind(
        "Dense",
        (
            Arg("units", _int(1, 65536)),
            _ACTIVATION,
            _USE_BIAS,
            *_weight_args("kernel"),
            Arg("quantization_config", _exactly(None), None, keras=False),
            Arg("lora_rank", _exactly(None), None, keras=False),
        ),
        _dense,
    ),
    GraphKind("MaxPooling2D", _POOL_ARGS, _pool),
    GraphKind("AveragePooling2D", _POOL_ARGS, _pool),
    GraphKind(
        "GlobalAveragePooling2D",
        (_CHANNELS_LAST, Arg("keepdims", _bool, False)),
        _global_pool,
    ),
    GraphKind(
        "GlobalMaxPooling2D",
        (_CHANNELS_LAST, Arg("keepdims", _bool, False)),
        _global_pool,
    ),
    GraphKind("Flatten", (_CHANNELS_LAST,), _flatten),
    GraphKind(
        "Dropout",
        (
            Arg("rate", _float(0.0, 0.99)),
            Arg("noise_shape", _exactly(None), None),
            _SEED,
        ),
        _same,
    ),
    GraphKind(
        "SpatialDropout2D",
        (Arg("rate", _float(0.0, 0.99)), _SEED, _CHANNELS_LAST),
        _same_image,
    ),
    GraphKind(
        "BatchNormalization",
        (
            Arg("axis", _axis, -1),
            Arg("momentum", _float(0.0, 1.0), 0.99),
            Arg("epsilon", _float(1e-12, 1.0), 1e-3),
            Arg("center", _bool, True),
            Arg("scale", _bool, True),
            Arg("beta_initializer", _initializer, "zeros"),
            Arg("gamma_initializer", _initializer, "ones"),
            Arg("moving_mean_initializer", _initializer, "zeros"),
            Arg("moving_variance_initializer", _initializer, "ones"),
            Arg("beta_regularizer", _regularizer, None),
            Arg("gamma_regularizer", _regularizer, None),
            Arg("beta_constraint", _constraint, None),
            Arg("gamma_constraint", _constraint, None),
            Arg("synchronized", _exactly(False), False),
            Arg("renorm", _exactly(False), False, keras=False),
            Arg("renorm_clipping", _exactly(None), None, keras=False),
            Arg("renorm_momentum", _float(0.0, 1.0), 0.99, keras=False),
        ),
        _batch_norm,
    ),
    GraphKind("Activation", (Arg("activation", _activation),), _same),
    GraphKind(
        "ReLU",
        (
            Arg("max_value", _optional(_float(0.0, 1e6)), None),
            Arg("negative_slope", _float(0.0, 1e3), 0.0),
            Arg("threshold", _float(-1e6, 1e6), 0.0),
        ),
        _same,
    ),
    GraphKind("LeakyReLU", (Arg("negative_slope", _float(0.0, 1e3), 0.3),), _same),
    GraphKind("Softmax", (Arg("axis", _axis, -1),), _softmax),
    GraphKind(
        "ZeroPadding2D",
        (Arg("padding", _padding2d, ((1, 1), (1, 1))), _CHANNELS_LAST),
        _zero_padding,
    ),
    GraphKind(
        "Rescaling",
        (Arg("scale", _float(-1e6, 1e6)), Arg("offset", _float(-1e6, 1e6), 0.0)),
        _same,
    ),
    GraphKind(
        "CaffePreprocess",
        (),
        _same_image,
        make=_make_caffe,
    ),
    GraphKind(
        "RandomFlip",
        (Arg("mode", _FLIP_MODE, "horizontal_and_vertical"), _SEED, _CHANNELS_LAST),
        _same_image,
    ),
    GraphKind(
        "RandomRotation",
        (Arg("factor", _factor(-1.0, 1.0)), *_FILL, _SEED, _CHANNELS_LAST),
        _same_image,
    ),
    GraphKind(
        "RandomZoom",
        (
            Arg("height_factor", _factor(-1.0, 1.0)),
            Arg("width_factor", _optional(_factor(-1.0, 1.0)), None),
            *_FILL,
            _SEED,
            _CHANNELS_LAST,
        ),
        _same_image,
    ),
    GraphKind(
        "RandomTranslation",
        (
            Arg("height_factor", _factor(-1.0, 1.0)),
            Arg("width_factor", _factor(-1.0, 1.0)),
            *_FILL,
            _SEED,
            _CHANNELS_LAST,
        ),
        _same_image,
    ),
    GraphKind(
        "RandomContrast",
        (
            Arg("factor", _factor(0.0, 1.0)),
            Arg("value_range", _value_range, (0.0, 255.0)),
            _SEED,
            _CHANNELS_LAST,
        ),
        _same_image,
    ),
    GraphKind(
        "RandomBrightness",
        (
            Arg("factor", _factor(-1.0, 1.0)),
            Arg("value_range", _value_range, (0.0, 255.0)),
            _SEED,
            _CHANNELS_LAST,
        ),
        _same_image,
    ),
    GraphKind("Add", (), _merge, merge=True),
    GraphKind("Multiply", (), _merge, merge=True),
    GraphKind("Average", (), _merge, merge=True),
    GraphKind("Concatenate", (Arg("axis", _axis, -1),), _concatenate, merge=True),
)


def allowed_kinds_text() -> str:
    """ "Conv2D, DepthwiseConv2D, …, and nested Sequential or Functional models"."""
    return ", ".join(GRAPH_KINDS) + ", and nested Sequential or Functional models"


def snake_case(class_name: str) -> str:
    """Keras' ``to_snake_case`` ("ReLU" → "re_lu", "Conv2D" → "conv2d"): how a layer's
    weights are named in a ``.weights.h5`` file."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# --------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSpec:
    """One layer of a ``ModelSpec``: ``kind`` in ``GRAPH_KINDS`` with its typed ``args`` (as
    ``parse_args`` returns them), or a nested ``model``; ``inputs``: the names of the layers
    (or the model's input) it reads, in order; ``training``: the ``training=`` it is called
    with (None: not given)."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    args: Mapping[str, Any] = field(default_factory=dict)
    model: ModelSpec | None = None
    training: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "inputs": list(self.inputs)}
        if self.model is not None:
            out["model"] = self.model.to_dict()
        else:
            out["args"] = _jsonable(dict(self.args))
        if self.training is not None:
            out["training"] = self.training
        return out


@dataclass(frozen=True)
class ModelSpec:
    """A model: ``kind`` "Sequential" (each layer reads the previous one) or "Functional";
    its input ``input_name`` of ``input_shape`` (no batch axis, e.g. (28, 28, 1)); ``nodes``
    in the order they run; ``output``: the name of the layer whose output is the model's.
    ``trainable`` False freezes every layer (as Keras' ``model.trainable = False``)."""

    name: str
    kind: str
    input_name: str
    input_shape: Shape
    nodes: tuple[NodeSpec, ...]
    output: str
    trainable: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (``spec_from_dict`` reads it back, checking everything again)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "input_name": self.input_name,
            "input_shape": list(self.input_shape),
            "nodes": [n.to_dict() for n in self.nodes],
            "output": self.output,
            "trainable": self.trainable,
        }

    def walk(self, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], NodeSpec]]:
        """(path of nested model names, node) for every layer, nested ones included."""
        for node in self.nodes:
            yield path, node
            if node.model is not None:
                yield from node.model.walk((*path, node.name))


def quoted(value: Any, max_len: int = 60) -> str:
    """A value from an uploaded file as a markdown code span that shows it verbatim
    (``safe_text``; not a string: its ``repr``), at most ``max_len`` characters: a name
    like ``[x](https://evil)`` in a message is never a link."""
    return safe_text(value if isinstance(value, str) else repr(value), max_len)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _layer_error(name: str, kind: str, problem: str) -> InvalidModelError:
    return InvalidModelError(f"layer {quoted(name)} ({quoted(kind, 40)}) {problem}")


def unknown_kind_error(name: str, kind: str) -> InvalidModelError:
    """The refusal of a layer kind outside ``GRAPH_KINDS``."""
    return InvalidModelError(
        f"layer {quoted(name)} is a {quoted(kind, 40)}. CNN Lab opens models made of these "
        f"layers: {allowed_kinds_text()}."
    )


def parse_args(kind: str, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` (a layer's settings: key → JSON value) as the typed arguments of ``kind``:
    every key known and every value within its type and bounds, defaults filled in. Keys
    that are not passed to Keras (``Arg.keras`` False) are checked and dropped. Raises
    ``InvalidModelError`` naming the layer and the key."""
    entry = GRAPH_KINDS.get(kind)
    if entry is None:
        raise unknown_kind_error(name, kind)
    table = entry.arg_table
    if config.get("name", name) != name:
        raise _layer_error(name, kind, "is listed under another name.")
    unknown = [k for k in config if k not in table and k != "name"]
    if unknown:
        raise _layer_error(
            name,
            kind,
            f"has the setting {quoted(unknown[0], 40)}, which CNN Lab does not accept.",
        )
    args: dict[str, Any] = {}
    for key, arg in table.items():
        if key in config:
            try:
                value = arg.parse(config[key])
            except _ArgError as err:
                raise _layer_error(
                    name, kind, f"has {key} {quoted(config[key])}; it must be {err}."
                ) from None
        elif arg.default is _REQUIRED:
            raise _layer_error(name, kind, f"has no {key}.")
        else:
            value = arg.default
        if arg.keras:
            args[key] = value
    return args


def check_name(name: Any, what: str = "layer") -> str:
    """A layer or model name: 1 to 128 letters, digits, spaces and ``_ . -``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidModelError(
            f"a {what} is named {quoted(name)}; names are 1 to 128 letters, digits, spaces, "
            "'_', '.' or '-'."
        )
    return name


def _input_shape(value: Any, where: str) -> Shape:
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= 3:
        raise InvalidModelError(
            f"{where} has the input shape {quoted(value)}; it must be (H, W, C) or (N,)."
        )
    if any(d is None for d in value):
        raise InvalidModelError(
            f"{where} has an open input size {quoted(tuple(value))}; CNN Lab needs a fixed input "
            "size such as (224, 224, 3) to estimate the memory it needs."
        )
    if not all(_is_int(d) and 1 <= d <= _MAX_DIM for d in value):
        raise InvalidModelError(
            f"{where} has the input shape {quoted(value)}; each size must be a whole number from "
            f"1 to {_MAX_DIM:,}."
        )
    return tuple(int(d) for d in value)


def spec_from_dict(data: Any, *, depth: int = 0) -> ModelSpec:
    """The ``ModelSpec`` of ``ModelSpec.to_dict()`` JSON, every field checked again (names,
    kinds, typed arguments, inputs that name earlier layers). Raises ``InvalidModelError``."""
    if depth > MAX_DEPTH:
        raise InvalidModelError(f"models are nested more than {MAX_DEPTH} deep.")
    keys = {"name", "kind", "input_name", "input_shape", "nodes", "output", "trainable"}
    if not isinstance(data, dict) or set(data) != keys:
        raise InvalidModelError("the model description is not laid out as CNN Lab writes it.")
    kind = data["kind"]
    if kind not in MODEL_KINDS or not isinstance(data["trainable"], bool):
        raise InvalidModelError(f"the model kind {quoted(kind)} is not one CNN Lab opens.")
    name = check_name(data["name"], "model")
    input_name = check_name(data["input_name"])
    shape = _input_shape(data["input_shape"], f"model {quoted(name)}")
    if not isinstance(data["nodes"], list) or not data["nodes"]:
        raise InvalidModelError(f"model {quoted(name)} has no layers.")
    nodes = []
    for item in data["nodes"]:
        if (
            not isinstance(item, dict)
            or not {"name", "kind", "inputs"} <= set(item)
            or set(item) - {"name", "kind", "inputs", "args", "model", "training"}
        ):
            raise InvalidModelError(f"model {quoted(name)} lists a layer CNN Lab cannot read.")
        node_name = check_name(item["name"])
        inputs = item["inputs"]
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise InvalidModelError(f"layer {quoted(node_name)} has no list of inputs.")
        training = item.get("training")
        if training is not None and not isinstance(training, bool):
            raise InvalidModelError(f"layer {quoted(node_name)} has an invalid training flag.")
        if item["kind"] in MODEL_KINDS:
            if "args" in item or "model" not in item:
                raise InvalidModelError(f"layer {quoted(node_name)} is a model without its layers.")
            inner = spec_from_dict(item["model"], depth=depth + 1)
            nodes.append(
                NodeSpec(node_name, item["kind"], tuple(inputs), model=inner, training=training)
            )
        else:
            if "model" in item or not isinstance(item.get("args", {}), dict):
                raise InvalidModelError(f"layer {quoted(node_name)} has invalid settings.")
            args = parse_args(item["kind"], node_name, item.get("args", {}))
            nodes.append(NodeSpec(node_name, item["kind"], tuple(inputs), args, training=training))
    spec = ModelSpec(
        name, kind, input_name, shape, tuple(nodes), check_name(data["output"]), data["trainable"]
    )
    check_edges(spec)
    return spec


def check_edges(spec: ModelSpec) -> None:
    """Names are unique; every layer reads earlier layers (Sequential: the previous one);
    merge layers read 2 to ``MAX_MERGE_INPUTS`` inputs, others one; a nested model's kind
    matches; the output names a layer."""
    seen = {spec.input_name}
    previous = spec.input_name
    for node in spec.nodes:
        if node.name in seen:
            raise InvalidModelError(
                f"model {quoted(spec.name)} has two layers named {quoted(node.name)}."
            )
        if (node.model is None) == (node.kind in MODEL_KINDS) or (
            node.model is not None and node.model.kind != node.kind
        ):
            raise InvalidModelError(f"layer {quoted(node.name)} is not laid out as its kind.")
        merge = node.model is None and GRAPH_KINDS[node.kind].merge
        count = len(node.inputs)
        if (merge and not 2 <= count <= MAX_MERGE_INPUTS) or (not merge and count != 1):
            wanted = f"2 to {MAX_MERGE_INPUTS} inputs" if merge else "one input"
            raise _layer_error(node.name, node.kind, f"reads {count} inputs; it takes {wanted}.")
        missing = [i for i in node.inputs if i not in seen]
        if missing:
            raise _layer_error(
                node.name,
                node.kind,
                f"reads {quoted(missing[0][:60])}, which is not an earlier layer.",
            )
        if spec.kind == "Sequential" and node.inputs != (previous,):
            raise _layer_error(node.name, node.kind, "does not read the layer before it.")
        seen.add(node.name)
        previous = node.name
    if spec.output not in seen - {spec.input_name} or (
        spec.kind == "Sequential" and spec.output != previous
    ):
        raise InvalidModelError(f"model {quoted(spec.name)} has an output that names no layer.")


# --------------------------------------------------------------------------------------------
# The summary
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphRow:
    """One layer as the spec declares it: ``path`` names the nested models it is in (empty
    for the outer model's layers); shapes without the batch axis; ``weight_shapes`` in the
    order of the built layer's ``weights``."""

    path: tuple[str, ...]
    name: str
    kind: str
    output_shape: Shape
    params: int
    weight_shapes: tuple[Shape, ...] = ()


@dataclass(frozen=True)
class GraphSummary:
    """``summarize_graph``'s result: the rows (the input first, then every layer, nested
    ones after their model's row) and the totals."""

    rows: tuple[GraphRow, ...]
    input_shape: Shape
    output_shape: Shape
    #: Keras' ``count_params()``: every weight, BatchNormalization's moving statistics too.
    params: int
    #: float32 values of one image's activations: the input plus every layer's output.
    activation_values: int

    @property
    def weight_rows(self) -> tuple[GraphRow, ...]:
        """The rows that have weights, in the order their arrays are listed."""
        return tuple(r for r in self.rows if r.weight_shapes)


class _Summarizer:
    def __init__(self, max_params: int | None, max_activation_bytes: int | None) -> None:
        self.rows: list[GraphRow] = []
        self.params = 0
        self.values = 0
        self.max_params, self.max_bytes = max_params, max_activation_bytes

    def add(self, row: GraphRow) -> None:
        if len(self.rows) >= MAX_LAYERS:
            raise InvalidModelError(
                f"it has more than {MAX_LAYERS:,} layers. Upload a smaller model."
            )
        self.rows.append(row)
        self.params += row.params
        self.values += math.prod(row.output_shape)
        if self.max_params is not None and self.params > self.max_params:
            raise InvalidModelError(
                f"it has more than {self.max_params:,} parameters (layer {quoted(row.name)} alone "
                f"has {row.params:,}). Upload a smaller model."
            )
        if self.max_bytes is not None and self.values * 4 > self.max_bytes:
            raise InvalidModelError(
                f"its activations for one image would take more than "
                f"{format_bytes(self.max_bytes)} "
                f"(layer {quoted(row.name)} outputs {_shape_text(row.output_shape)} values). "
                "Upload a model with a smaller input or fewer filters."
            )

    def model(self, spec: ModelSpec, path: tuple[str, ...], given: Shape | None) -> Shape:
        if given is not None and given != spec.input_shape:
            raise InvalidModelError(
                f"model {quoted(spec.name)} takes {_shape_text(spec.input_shape)} but gets "
                f"{_shape_text(given)}."
            )
        shapes = {spec.input_name: spec.input_shape}
        self.add(GraphRow(path, spec.input_name, "InputLayer", spec.input_shape, 0))
        for node in spec.nodes:
            inputs = [shapes[i] for i in node.inputs]
            if node.model is not None:
                # The model's own row goes before its layers; its output is its last
                # layer's, counted there.
                row_index = len(self.rows)
                shape = self.model(node.model, (*path, node.name), inputs[0])
                self.rows.insert(row_index, GraphRow(path, node.name, node.kind, shape, 0))
            else:
                try:
                    shape, weights = GRAPH_KINDS[node.kind].forward(dict(node.args), inputs)
                except _ArgError as err:
                    raise _layer_error(node.name, node.kind, f"needs {err}.") from None
                if not all(d >= 1 for d in shape):
                    raise _layer_error(node.name, node.kind, "would output an empty tensor.")
                params = sum(math.prod(w) for w in weights)
                self.add(GraphRow(path, node.name, node.kind, shape, params, weights))
            shapes[node.name] = shape
        return shapes[spec.output]


def summarize_graph(
    spec: ModelSpec,
    *,
    max_params: int | None = None,
    max_activation_bytes: int | None = None,
) -> GraphSummary:
    """Every layer's output shape, parameters and weight shapes, from the spec alone (no
    TensorFlow): shapes with ``cnnlib.conv.ops.output_size``, counts with Keras' rules
    (Conv2D k·k·C_in/groups·F + F, Dense n_in·units + units, BatchNormalization 4·C, …).

    Raises ``InvalidModelError`` naming the layer for an impossible graph (a window larger
    than its input, a merge of different shapes, …), more than ``MAX_LAYERS`` layers, more
    than ``max_params`` parameters or more than ``max_activation_bytes`` of float32
    activations for one image (both checked as each layer is added).
    """
    walker = _Summarizer(max_params, max_activation_bytes)
    output = walker.model(spec, (), None)
    return GraphSummary(
        rows=tuple(walker.rows),
        input_shape=spec.input_shape,
        output_shape=output,
        params=walker.params,
        activation_values=walker.values,
    )


# --------------------------------------------------------------------------------------------
# The editor's stacks as graphs
# --------------------------------------------------------------------------------------------


def graph_from_stack(
    specs: Sequence[Any], input_shape: tuple[int, int, int] = (28, 28, 1), num_classes: int = 10
) -> ModelSpec:
    """The ``ModelSpec`` of an editor stack (``cnnlib.models.stack``), as
    ``build_from_stack`` builds it: the same layer names, arguments and implied
    ``Rescaling(1/255)`` first. Its summary counts what ``summarize_stack`` counts."""
    rows = summarize_stack(list(specs), input_shape, num_classes, max_params=None)
    nodes, previous = [], "input"
    for spec, row in zip(with_input_scaling(list(specs)), rows, strict=True):
        config = {p: getattr(spec, p) for p in _STACK_ARGS.get(spec.kind, ())}
        if spec.kind in ("Conv2D", "MaxPooling2D"):
            config["strides"] = spec.stride
        if spec.kind == "BatchNormalization":
            config["momentum"] = BN_MOMENTUM
        if spec.kind == "RandomTranslation":
            config = {"height_factor": spec.factor, "width_factor": spec.factor}
        elif spec.kind == "RandomZoom":
            config = {"height_factor": spec.factor}
        elif spec.kind == "RandomContrast":
            config = {"factor": spec.factor_pair}
        nodes.append(
            NodeSpec(row.name, spec.kind, (previous,), parse_args(spec.kind, row.name, config))
        )
        previous = row.name
    return ModelSpec("stack", "Sequential", "input", tuple(input_shape), tuple(nodes), previous)


#: ``LayerSpec`` fields that are arguments of the same name.
_STACK_ARGS: dict[str, tuple[str, ...]] = {
    "Conv2D": ("filters", "kernel_size", "padding", "activation"),
    "MaxPooling2D": ("pool_size", "padding"),
    "Dropout": ("rate",),
    "Dense": ("units", "activation"),
    "Rescaling": ("scale", "offset"),
    "RandomFlip": ("mode",),
    "RandomRotation": ("factor",),
}


# --------------------------------------------------------------------------------------------
# The build and the weights
# --------------------------------------------------------------------------------------------


def _keras_value(key: str, value: Any):
    """A typed argument as the Keras constructor takes it."""
    import keras

    if key.endswith("_regularizer") and value is not None:
        return getattr(keras.regularizers, value["class_name"])(**value["config"])
    if key.endswith("_constraint") and value is not None:
        return getattr(keras.constraints, value["class_name"])(**value["config"])
    if isinstance(value, list | tuple):
        return tuple(_keras_value(key, v) for v in value)
    return value


def _make_layer(node: NodeSpec):
    import keras

    entry = GRAPH_KINDS[node.kind]
    args = {k: _keras_value(k, v) for k, v in node.args.items()}
    # Every layer has these, but not every constructor takes them: set after construction.
    trainable = args.pop("trainable", True)
    regularizer = args.pop("activity_regularizer", None)
    if entry.make is not None:
        layer = entry.make(node.name, **args)
    else:
        layer = getattr(keras.layers, node.kind)(name=node.name, dtype="float32", **args)
    layer.trainable = trainable
    if regularizer is not None:
        layer.activity_regularizer = regularizer
    return layer


def _build(spec: ModelSpec):
    import keras

    inputs = keras.Input(spec.input_shape, name=spec.input_name)
    if spec.kind == "Sequential":
        model = keras.Sequential(
            [inputs, *(_build(n.model) if n.model else _make_layer(n) for n in spec.nodes)],
            name=spec.name,
        )
    else:
        tensors = {spec.input_name: inputs}
        for node in spec.nodes:
            layer = _build(node.model) if node.model else _make_layer(node)
            args = [tensors[i] for i in node.inputs]
            merge = node.model is None and GRAPH_KINDS[node.kind].merge
            x = args if merge else args[0]
            kwargs = {} if node.training is None else {"training": node.training}
            tensors[node.name] = layer(x, **kwargs)
        model = keras.Model(inputs, tensors[spec.output], name=spec.name)
    if not spec.trainable:
        model.trainable = False
    return model


def build_from_graph(spec: ModelSpec):
    """The uncompiled Keras model of ``spec``: ``keras.Sequential`` or a functional
    ``keras.Model``, nested models as nested models, every layer made by its Keras
    constructor from the typed arguments (CaffePreprocess by CNN Lab's own), float32.

    The weights are Keras' initial ones until ``assign_weights``. Keras' deserializer is
    never used.
    """
    return _build(spec)


def _find_layer(model, path: tuple[str, ...], name: str):
    for part in path:
        model = model.get_layer(part)
    return model.get_layer(name)


def assign_weights(model, summary: GraphSummary, arrays: Sequence[Any]) -> None:
    """Put ``arrays`` (one per weight of ``summary.weight_rows``, in order) into ``model``
    (built by ``build_from_graph`` from the same spec). Every array is checked against its
    variable first — a numpy float32 array of the variable's shape — then assigned. Raises
    ``InvalidModelError`` naming the layer; nothing is assigned when one is wrong."""
    import numpy as np

    pairs = []
    rows = summary.weight_rows
    wanted = sum(len(r.weight_shapes) for r in rows)
    if len(arrays) != wanted:
        raise InvalidModelError(f"it holds {len(arrays)} weight arrays; the model has {wanted}.")
    index = 0
    for row in rows:
        variables = list(_find_layer(model, row.path, row.name).weights)
        if len(variables) != len(row.weight_shapes):
            raise _layer_error(
                row.name, row.kind, f"has {len(variables)} weights, not {len(row.weight_shapes)}."
            )
        for variable, shape in zip(variables, row.weight_shapes, strict=True):
            array = arrays[index]
            index += 1
            if (
                not isinstance(array, np.ndarray)
                or array.dtype != np.float32
                or array.shape != shape
                or tuple(variable.shape) != shape
                or variable.dtype != "float32"
            ):
                got = getattr(array, "shape", None), getattr(array, "dtype", None)
                raise _layer_error(
                    row.name,
                    row.kind,
                    f"has weights of shape {got[0]} ({got[1]}) where the layer needs "
                    f"{_shape_text(tuple(variable.shape))} float32.",
                )
            pairs.append((variable, array))
    for variable, array in pairs:
        variable.assign(array)
