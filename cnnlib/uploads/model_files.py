"""Uploaded ``.keras`` files: inspected before Keras sees them, then loaded safely.

A ``.keras`` file is a zip archive holding ``config.json`` (the architecture),
``metadata.json`` and ``model.weights.h5``. ``inspect_keras_file`` reads only the archive's
directory and ``config.json`` (zipfile and json, no TensorFlow) and refuses, with a message
for a learner:

- anything that is not a zip archive, or holds other files, too many files, or files that
  would unpack to more than the budget (sizes and compression ratio, from the directory);
- a ``config.json`` over its byte budget, or one that is not valid JSON;
- layers other than the Keras built-ins listed in ``LAYER_RULES``: no ``Lambda`` (Python
  code), no custom classes (a ``module`` outside Keras), no layers that read files
  (``TFSMLayer``, ``TextVectorization``, ``StringLookup``, ...);
- more parameters, or more activation memory for one image at the declared input shape,
  than the budget — both computed from the configuration alone, layer by layer.

``load_keras_file`` inspects, rebuilds an archive with only the three members Keras needs,
loads it with ``safe_mode=True``, restores Keras' global settings (floatx, epsilon, image
data format, dtype policy) whatever happened, and turns every failure into
``InvalidModelError`` with a plain message.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlib.conv.ops import output_size
from cnnlib.core.budgets import Budgets, format_bytes
from cnnlib.core.errors import CNNLabError, InvalidArgumentError, InvalidModelError
from cnnlib.models.layers import AUGMENTATION_LAYERS, CAFFE_REGISTERED_NAME, register_layers

__all__ = [
    "ALLOWED_MEMBERS",
    "LAYER_RULES",
    "PROJECT_LAYERS",
    "LayerReport",
    "ModelFileReport",
    "inspect_keras_file",
    "keras_settings",
    "load_keras_file",
]

CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
#: The only members a ``.keras`` file of the allowed layers has.
ALLOWED_MEMBERS = (CONFIG, METADATA, WEIGHTS)
#: Highest compression ratio accepted for a member over ``_RATIO_MIN_BYTES`` (Keras itself
#: stores members uncompressed; random weights hardly compress).
MAX_RATIO = 20
_RATIO_MIN_BYTES = 1 << 20
_FLOAT_BYTES = 4
_SAVE_AGAIN = "Save your model again with model.save('name.keras') and upload that file."

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerReport:
    """One layer as the configuration declares it (shapes without the batch axis)."""

    name: str
    class_name: str
    output_shape: Shape
    params: int


@dataclass(frozen=True)
class ModelFileReport:
    """What ``inspect_keras_file`` found: all within the budgets."""

    #: member name → uncompressed size in bytes.
    members: dict[str, int]
    config_bytes: int
    #: "Sequential" or "Functional".
    model_class: str
    #: Declared input shape without the batch axis, e.g. (28, 28, 1).
    input_shape: Shape
    layers: list[LayerReport]
    #: Parameters computed from the configuration (Keras' ``count_params()``).
    params: int
    #: float32 activations of one image: the input plus every layer's output, bytes.
    activation_bytes: int
    #: Keras version that saved the file ("" when metadata.json does not say).
    keras_version: str = ""


def _refuse(problem: str) -> InvalidModelError:
    return InvalidModelError(f"This model file cannot be used: {problem}")


# --------------------------------------------------------------------------------------------
# The archive
# --------------------------------------------------------------------------------------------


def _open_zip(data: bytes) -> zipfile.ZipFile:
    if not isinstance(data, bytes | bytearray | memoryview) or not data:
        raise _refuse("it is empty or not a file. Upload a .keras file saved by Keras.")
    try:
        return zipfile.ZipFile(io.BytesIO(bytes(data)))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise _refuse(
            "it is not a .keras model file (a .keras file is a zip archive saved by Keras). "
            + _SAVE_AGAIN
        ) from None


def _check_members(zf: zipfile.ZipFile, budgets: Budgets) -> dict[str, int]:
    infos = zf.infolist()
    if len(infos) > budgets.model_members:
        raise _refuse(
            f"the archive holds {len(infos)} files; a Keras model file has at most "
            f"{budgets.model_members}. " + _SAVE_AGAIN
        )
    names = [i.filename for i in infos]
    unexpected = sorted({n for n in names if n not in ALLOWED_MEMBERS})
    if unexpected:
        shown = ", ".join(repr(n[:60]) for n in unexpected[:5])
        raise _refuse(
            f"the archive holds files a Keras model file does not have ({shown}). Only "
            f"{', '.join(ALLOWED_MEMBERS)} are accepted. " + _SAVE_AGAIN
        )
    if len(set(names)) != len(names):
        raise _refuse("the archive holds the same file twice. " + _SAVE_AGAIN)
    if CONFIG not in names:
        raise _refuse(f"the archive has no {CONFIG} (the model's architecture). " + _SAVE_AGAIN)
    for info in infos:
        if info.flag_bits & 0x1:
            raise _refuse(f"{info.filename} is encrypted. " + _SAVE_AGAIN)
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_MIN_BYTES and ratio > MAX_RATIO:
            raise _refuse(
                f"{info.filename} is {format_bytes(info.compress_size)} packed but would "
                f"unpack to {format_bytes(info.file_size)} ({ratio:,.0f} times more; real "
                f"model files hardly compress). " + _SAVE_AGAIN
            )
    total = sum(i.file_size for i in infos)
    if total > budgets.model_unpacked_bytes:
        raise _refuse(
            f"its files would unpack to {format_bytes(total)}, more than the "
            f"{format_bytes(budgets.model_unpacked_bytes)} allowed here. Upload a smaller model."
        )
    return {i.filename: i.file_size for i in infos}


def _read_json(zf: zipfile.ZipFile, name: str, limit: int) -> Any:
    size = zf.getinfo(name).file_size
    if size > limit:
        raise _refuse(
            f"its {name} is {format_bytes(size)}, more than the {format_bytes(limit)} a model "
            "description may have here. Upload a smaller model."
        )
    try:
        with zf.open(name) as f:
            raw = f.read(limit + 1)  # zipfile never returns more than the declared size
        return json.loads(raw.decode("utf-8"))
    except (zipfile.BadZipFile, OSError, EOFError):
        raise _refuse(f"its {name} is damaged. " + _SAVE_AGAIN) from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _refuse(f"its {name} is not valid JSON. " + _SAVE_AGAIN) from None


# --------------------------------------------------------------------------------------------
# The configuration: allowed classes, shapes and parameters
# --------------------------------------------------------------------------------------------

#: Layers refused by name, with the reason a learner is told.
FORBIDDEN = {
    "Lambda": "a Lambda layer runs Python code stored in the file",
    "TFSMLayer": "a TFSMLayer loads a TensorFlow SavedModel from the server's disk",
    "TextVectorization": "a TextVectorization layer can read its vocabulary from a file",
    "StringLookup": "a StringLookup layer can read its vocabulary from a file",
    "IntegerLookup": "an IntegerLookup layer can read its vocabulary from a file",
    "Hashing": "CNN Lab works on images, not text",
}


def _ints(value: Any, n: int, what: str, low: int = 1) -> tuple[int, ...]:
    """``n`` whole numbers ≥ ``low`` (one number stands for ``n`` equal ones)."""
    items = value if isinstance(value, list | tuple) else [value] * n
    if len(items) != n or not all(
        isinstance(v, int) and not isinstance(v, bool) and low <= v < 2**40 for v in items
    ):
        raise _refuse(f"its configuration has an invalid {what} ({str(value)[:40]}).")
    return tuple(items)


def _image(shape: Shape, layer: str) -> Shape:
    if len(shape) != 3:
        raise _refuse(f"layer {layer!r} needs an (H, W, C) input but gets {shape}.")
    return shape


def _channels_last(cfg: dict, layer: str) -> None:
    if cfg.get("data_format", "channels_last") not in (None, "channels_last"):
        raise _refuse(f"layer {layer!r} uses channels_first; CNN Lab expects channels_last.")


def _window(cfg: dict, shape: Shape, layer: str, window_key: str, default_stride=None) -> Shape:
    """Output (H′, W′) of a convolution or pooling window on an (H, W, C) input."""
    h, w, _ = _image(shape, layer)
    _channels_last(cfg, layer)
    k = _ints(cfg.get(window_key), 2, window_key)
    strides = cfg.get("strides") if cfg.get("strides") is not None else default_stride
    s = _ints(strides if strides is not None else 1, 2, "stride")
    d = _ints(cfg.get("dilation_rate", 1), 2, "dilation")
    padding = cfg.get("padding", "valid")
    if padding not in ("valid", "same"):
        raise _refuse(f"layer {layer!r} has padding {str(padding)[:20]!r}.")
    try:
        return tuple(
            output_size(n, k[i], padding=padding, stride=s[i], dilation=d[i])
            for i, n in enumerate((h, w))
        )
    except InvalidArgumentError:
        raise _refuse(f"layer {layer!r}'s window does not fit its {h}×{w} input.") from None


def _bias(cfg: dict, n: int) -> int:
    return n if cfg.get("use_bias", True) else 0


def _conv2d(cfg: dict, shapes: list[Shape], layer: str) -> tuple[Shape, int]:
    c = _image(shapes[0], layer)[2]
    (f,) = _ints(cfg.get("filters"), 1, "number of filters")
    (groups,) = _ints(cfg.get("groups", 1), 1, "number of groups")
    if c % groups or f % groups:
        raise _refuse(f"layer {layer!r}'s groups do not divide its channels.")
    kh, kw = _ints(cfg.get("kernel_size"), 2, "kernel size")
    oh, ow = _window(cfg, shapes[0], layer, "kernel_size")
    return (oh, ow, f), kh * kw * (c // groups) * f + _bias(cfg, f)


def _depthwise(cfg: dict, shapes: list[Shape], layer: str) -> tuple[Shape, int]:
    c = _image(shapes[0], layer)[2]
    (m,) = _ints(cfg.get("depth_multiplier", 1), 1, "depth multiplier")
    kh, kw = _ints(cfg.get("kernel_size"), 2, "kernel size")
    oh, ow = _window(cfg, shapes[0], layer, "kernel_size")
    return (oh, ow, c * m), kh * kw * c * m + _bias(cfg, c * m)


def _separable(cfg: dict, shapes: list[Shape], layer: str) -> tuple[Shape, int]:
    (oh, ow, cm), depthwise = _depthwise({**cfg, "use_bias": False}, shapes, layer)
    (f,) = _ints(cfg.get("filters"), 1, "number of filters")
    return (oh, ow, f), depthwise + cm * f + _bias(cfg, f)


def _dense(cfg: dict, shapes: list[Shape], layer: str) -> tuple[Shape, int]:
    shape = shapes[0]
    (units,) = _ints(cfg.get("units"), 1, "number of units")
    if not shape:
        raise _refuse(f"layer {layer!r} gets a scalar input.")
    return (*shape[:-1], units), shape[-1] * units + _bias(cfg, units)


def _pool(cfg: dict, shapes: list[Shape], layer: str) -> tuple[Shape, int]:
    pool = cfg.get("pool_size", 2)
    oh, ow = _window({**cfg, "pool_size": pool}, shapes[0], layer, "pool_size", pool)
    return (oh, ow, shapes[0][2]), 0


def _global_pool(cfg: dict, shapes: list[Shape], layer: str) -> tuple[Shape, int]:
    _, _, c = _image(shapes[0], layer)
    _channels_last(cfg, layer)
    return ((1, 1, c) if cfg.get("keepdims") else (c,)), 0


def _flatten(cfg: dict, shapes: list[Shape], layer: str) -> tuple[Shape, int]:
    return (math.prod(shapes[0]),), 0


def _same(cfg: dict, shapes: list[Shape], layer: str) -> tuple[Shape, int]:
    return shapes[0], 0


def _norm(cfg: dict, shapes: list[Shape], layer: str) -> tuple[Shape, int]:
    if cfg.get("axis", -1) not in (-1, [-1], len(shapes[0]), [len(shapes[0])]):
        raise _refuse(f"layer {layer!r} normalizes an axis other than the channels.")
    c = shapes[0][-1]
    weights = c * (bool(cfg.get("center", True)) + bool(cfg.get("scale", True)))
    # BatchNormalization also keeps a moving mean and variance per channel.
    return shapes[0], weights + (2 * c if "momentum" in cfg else 0)


def _zero_padding(cfg: dict, shapes: list[Shape], layer: str) -> tuple[Shape, int]:
    h, w, c = _image(shapes[0], layer)
    _channels_last(cfg, layer)
    pad = cfg.get("padding", 1)
    if isinstance(pad, list) and len(pad) == 2 and all(isinstance(p, list) for p in pad):
        (t, b), (left, r) = _ints(pad[0], 2, "padding", 0), _ints(pad[1], 2, "padding", 0)
    else:
        (t, left) = _ints(pad, 2, "padding", 0)
        b, r = t, left
    return (h + t + b, w + left + r, c), 0


def _reshape(cfg: dict, shapes: list[Shape], layer: str) -> tuple[Shape, int]:
    target = cfg.get("target_shape")
    if not isinstance(target, list) or not 1 <= len(target) <= 4:
        raise _refuse(f"layer {layer!r} has an invalid target shape.")
    n = math.prod(shapes[0])
    known = [t for t in target if t != -1]
    size = _ints(known, len(known), "target shape") if known else ()
    if target.count(-1) == 1 and math.prod(size) and n % math.prod(size) == 0:
        size_out = tuple(n // math.prod(size) if t == -1 else t for t in target)
    else:
        size_out = tuple(target)
    if math.prod(size_out) != n:
        raise _refuse(f"layer {layer!r} reshapes {n} values into {tuple(target)}.")
    return size_out, 0


def _resize(cfg: dict, shapes: list[Shape], layer: str) -> tuple[Shape, int]:
    _, _, c = _image(shapes[0], layer)
    _channels_last(cfg, layer)
    h, w = _ints([cfg.get("height"), cfg.get("width")], 2, "height and width")
    return (h, w, c), 0


def _merge(cfg: dict, shapes: list[Shape], layer: str) -> tuple[Shape, int]:
    if len(shapes) < 2 or any(s != shapes[0] for s in shapes):
        raise _refuse(f"layer {layer!r} merges inputs of different shapes {shapes}.")
    return shapes[0], 0


def _concatenate(cfg: dict, shapes: list[Shape], layer: str) -> tuple[Shape, int]:
    if cfg.get("axis", -1) not in (-1, len(shapes[0])) or len(shapes) < 2:
        raise _refuse(f"layer {layer!r} concatenates along an axis other than the channels.")
    if any(s[:-1] != shapes[0][:-1] for s in shapes):
        raise _refuse(f"layer {layer!r} concatenates inputs of different sizes {shapes}.")
    return (*shapes[0][:-1], sum(s[-1] for s in shapes)), 0


LayerRule = Callable[[dict, list[Shape], str], tuple[Shape, int]]
#: The Keras built-in layers an uploaded model may use → (output shape, parameters) rule.
LAYER_RULES: dict[str, LayerRule] = {
    "Conv2D": _conv2d,
    "DepthwiseConv2D": _depthwise,
    "SeparableConv2D": _separable,
    "Dense": _dense,
    "MaxPooling2D": _pool,
    "AveragePooling2D": _pool,
    "GlobalAveragePooling2D": _global_pool,
    "GlobalMaxPooling2D": _global_pool,
    "Flatten": _flatten,
    "BatchNormalization": _norm,
    "LayerNormalization": _norm,
    "ZeroPadding2D": _zero_padding,
    "Reshape": _reshape,
    "Resizing": _resize,
    "CenterCrop": _resize,
    "Add": _merge,
    "Subtract": _merge,
    "Multiply": _merge,
    "Average": _merge,
    "Maximum": _merge,
    "Minimum": _merge,
    "Concatenate": _concatenate,
    **{
        name: _same
        for name in (
            "Dropout",
            "SpatialDropout2D",
            "GaussianNoise",
            "GaussianDropout",
            "Activation",
            "ReLU",
            "LeakyReLU",
            "ELU",
            "Softmax",
            "Rescaling",
            *AUGMENTATION_LAYERS,
        )
    },
    "RandomCrop": _resize,  # height × width, in training and inference
    "CaffePreprocess": _same,  # CNN Lab's own (``PROJECT_LAYERS``)
}
#: CNN Lab's own registered layers an uploaded model may use: registered name → (module,
#: class name). ``load_keras_file`` registers them (``cnnlib.training.transfer.register_layers``).
PROJECT_LAYERS = {
    CAFFE_REGISTERED_NAME: {
        ("cnnlib.models.layers", "CaffePreprocess"),
        ("cnnlib.transfer", "CaffePreprocess"),  # files exported before the move
    }
}
_MODELS = ("Sequential", "Functional", "Model")


def _check_objects(node: Any, where: str, depth: int = 0) -> None:
    """Every serialized object in the configuration is Keras' own: no Lambda, no custom code."""
    if depth > 64:
        raise _refuse("its configuration is nested too deeply. " + _SAVE_AGAIN)
    if isinstance(node, list):
        for item in node:
            _check_objects(item, where, depth + 1)
        return
    if not isinstance(node, dict):
        return
    if "class_name" in node:
        class_name = str(node.get("class_name"))[:60]
        module = node.get("module")
        registered = node.get("registered_name")
        if class_name in FORBIDDEN:
            raise _refuse(f"{where} uses {class_name}: {FORBIDDEN[class_name]}.")
        project = PROJECT_LAYERS.get(registered) if isinstance(registered, str) else None
        if project and (module, class_name) in project:
            pass  # one of CNN Lab's own layers, e.g. exported from the own-images page
        elif class_name == "__lambda__" or (
            module is not None and not (module == "keras" or str(module).startswith("keras."))
        ):
            raise _refuse(
                f"{where} uses {class_name} from {str(module)[:40]!r}, custom code that is not "
                "part of Keras. Only Keras' built-in layers are accepted."
            )
        elif isinstance(registered, str) and ">" in registered:
            raise _refuse(
                f"{where} uses the custom object {registered[:60]!r}. Only Keras' built-in "
                "layers are accepted."
            )
    for value in node.values():
        _check_objects(value, where, depth + 1)


def _input_shape(cfg: dict, layer: str) -> Shape:
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    if not isinstance(shape, list) or len(shape) < 2:
        raise _refuse(f"its input {layer!r} declares no shape. " + _SAVE_AGAIN)
    dims = shape[1:]
    if any(d is None for d in dims):
        raise _refuse(
            f"its input {layer!r} has an open size {tuple(dims)}; CNN Lab needs a fixed input "
            "size such as (224, 224, 3) to estimate the memory it needs."
        )
    return _ints(dims, len(dims), "input shape")


class _Walker:
    """Walks a model configuration, computing shapes and parameters within the budgets."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self.layers: list[LayerReport] = []
        self.values = 0
        self.params = 0
        self.count = 0

    def add(self, name: str, class_name: str, shape: Shape, params: int) -> None:
        self.count += 1
        if self.count > 2000:
            raise _refuse("it has more than 2,000 layers. Upload a smaller model.")
        self.layers.append(LayerReport(name, class_name, shape, params))
        self.values += math.prod(shape)
        self.params += params
        if self.params > self.budgets.model_params:
            raise _refuse(
                f"it has more than {self.budgets.model_params:,} parameters (layer {name!r} "
                f"alone has {params:,}). Upload a smaller model."
            )
        if self.values * _FLOAT_BYTES > self.budgets.model_activation_bytes:
            raise _refuse(
                f"its activations for one image would take more than "
                f"{format_bytes(self.budgets.model_activation_bytes)} (layer {name!r} outputs "
                f"{'×'.join(map(str, shape))} values). Upload a model with a smaller input or "
                "fewer filters."
            )

    def layer(self, spec: Any, inputs: list[Shape]) -> Shape:
        if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
            raise _refuse("its configuration lists a layer without settings. " + _SAVE_AGAIN)
        class_name, cfg = str(spec.get("class_name"))[:60], spec["config"]
        name = str(cfg.get("name", class_name))[:60]
        if class_name in _MODELS:
            return self.model(spec, inputs)
        rule = LAYER_RULES.get(class_name)
        if rule is None:
            raise _refuse(
                f"layer {name!r} is a {class_name}, which is not one of the Keras layers CNN "
                f"Lab knows ({', '.join(sorted(LAYER_RULES))})."
            )
        if not inputs:
            raise _refuse(f"layer {name!r} has no input. " + _SAVE_AGAIN)
        shape, params = rule(cfg, inputs, name)
        self.add(name, class_name, shape, params)
        return shape

    def model(self, spec: dict, inputs: list[Shape]) -> Shape:
        class_name, cfg = spec.get("class_name"), spec["config"]
        layers = cfg.get("layers")
        if not isinstance(layers, list) or not layers:
            raise _refuse("its configuration lists no layers. " + _SAVE_AGAIN)
        if class_name == "Sequential":
            return self.sequential(layers, inputs)
        return self.functional(cfg, layers, inputs)

    def sequential(self, layers: list, inputs: list[Shape]) -> Shape:
        first = layers[0]
        if isinstance(first, dict) and first.get("class_name") == "InputLayer":
            shape = _input_shape(first.get("config") or {}, "input")
            if inputs and inputs[0] != shape:
                raise _refuse(f"a nested model expects {shape} but gets {inputs[0]}.")
            self.add(str(first["config"].get("name", "input"))[:60], "InputLayer", shape, 0)
            layers = layers[1:]
        elif inputs:
            shape = inputs[0]
        else:
            raise _refuse("its first layer declares no input shape. " + _SAVE_AGAIN)
        for spec in layers:
            shape = self.layer(spec, [shape])
        return shape

    def functional(self, cfg: dict, layers: list, inputs: list[Shape]) -> Shape:
        shapes: dict[str, Shape] = {}
        for spec in layers:
            if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
                raise _refuse("its configuration lists a layer without settings. " + _SAVE_AGAIN)
            name = str(spec.get("name") or spec["config"].get("name"))[:60]
            if spec.get("class_name") == "InputLayer":
                shapes[name] = _input_shape(spec["config"], name)
                self.add(name, "InputLayer", shapes[name], 0)
                continue
            nodes = spec.get("inbound_nodes") or []
            if len(nodes) != 1:
                raise _refuse(f"layer {name!r} is used {len(nodes)} times; CNN Lab needs once.")
            sources = _history(nodes[0])
            if any(s not in shapes for s in sources):
                raise _refuse(f"layer {name!r} reads a layer defined after it. " + _SAVE_AGAIN)
            shapes[name] = self.layer(spec, [shapes[s] for s in sources])
        outputs = cfg.get("output_layers")
        # One output is saved as ["dense", 0, 0], several as [["a", 0, 0], ["b", 0, 0]].
        out_names = [outputs] if outputs and isinstance(outputs[0], str) else outputs
        try:
            ends = [shapes[str(o[0])] for o in out_names]
        except (KeyError, TypeError, IndexError):
            raise _refuse("its outputs name no layer of the model. " + _SAVE_AGAIN) from None
        if len(ends) != 1:
            raise _refuse("it has several outputs; CNN Lab shows models with one output.")
        return ends[0]


def _history(node: Any) -> list[str]:
    """Names of the layers a functional node reads (its tensors' ``keras_history``)."""
    found: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if x.get("class_name") == "__keras_tensor__":
                history = (x.get("config") or {}).get("keras_history")
                if isinstance(history, list) and history:
                    found.append(str(history[0])[:60])
                return
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(node.get("args") if isinstance(node, dict) else node)
    return found


def inspect_keras_file(data: bytes, *, budgets: Budgets) -> ModelFileReport:
    """Check an uploaded ``.keras`` file without loading it (no TensorFlow, nothing unpacked
    but ``config.json`` and ``metadata.json`` in memory). Raises ``InvalidModelError``."""
    if isinstance(data, bytes | bytearray) and len(data) > budgets.model_file_bytes:
        raise _refuse(
            f"it is {format_bytes(len(data))}, more than the "
            f"{format_bytes(budgets.model_file_bytes)} allowed. Upload a smaller model."
        )
    with _open_zip(data) as zf:
        members = _check_members(zf, budgets)
        config = _read_json(zf, CONFIG, budgets.model_config_bytes)
        metadata = _read_json(zf, METADATA, 64 * 1024) if METADATA in members else {}
    if not isinstance(config, dict) or config.get("class_name") not in _MODELS:
        raise _refuse(
            "its config.json does not describe a Keras Sequential or Functional model. "
            + _SAVE_AGAIN
        )
    # compile_config (optimizer, loss, metrics) is never read: the file is loaded with
    # compile=False, so a custom loss does not stop the model from being inspected.
    _check_objects({k: v for k, v in config.items() if k != "compile_config"}, "the model")
    walker = _Walker(budgets)
    try:
        walker.model(config, [])
    except CNNLabError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError):
        raise _refuse(
            "its config.json is not laid out as Keras writes it. " + _SAVE_AGAIN
        ) from None
    version = metadata.get("keras_version", "") if isinstance(metadata, dict) else ""
    return ModelFileReport(
        members=members,
        config_bytes=members[CONFIG],
        model_class=str(config["class_name"]),
        input_shape=walker.layers[0].output_shape,
        layers=walker.layers,
        params=walker.params,
        activation_bytes=walker.values * _FLOAT_BYTES,
        keras_version=str(version)[:20],
    )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def keras_settings() -> dict[str, Any]:
    """Keras' process-wide settings a loaded file could change."""
    import keras

    return {
        "floatx": keras.config.floatx(),
        "epsilon": keras.config.epsilon(),
        "image_data_format": keras.config.image_data_format(),
        "dtype_policy": keras.config.dtype_policy().name,
        "backend": keras.config.backend(),
    }


def _restore(settings: dict[str, Any]) -> None:
    import keras

    keras.config.set_floatx(settings["floatx"])
    keras.config.set_epsilon(settings["epsilon"])
    keras.config.set_image_data_format(settings["image_data_format"])
    keras.config.set_dtype_policy(settings["dtype_policy"])


def _minimal_archive(data: bytes, members: Sequence[str]) -> bytes:
    """A new zip with only ``members`` (each read within its declared, checked size)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(bytes(data))) as src,
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst,
    ):
        for name in members:
            dst.writestr(name, src.read(name))
    return out.getvalue()


def load_keras_file(data: bytes, *, budgets: Budgets):
    """The ``keras.Model`` in an uploaded ``.keras`` file, after ``inspect_keras_file``.

    CNN Lab's own layers (``PROJECT_LAYERS``) are registered first. Only config.json,
    metadata.json and model.weights.h5 are written (to a temporary
    folder, removed afterwards); Keras loads them with ``safe_mode=True`` and
    ``compile=False``; Keras' global settings are restored whatever happens. Raises
    ``InvalidModelError`` with a plain message for every failure.
    """
    report = inspect_keras_file(data, budgets=budgets)
    import keras

    register_layers()  # CNN Lab's own layers (PROJECT_LAYERS) load by their registered names

    settings = keras_settings()
    try:
        archive = _minimal_archive(data, [m for m in ALLOWED_MEMBERS if m in report.members])
        with tempfile.TemporaryDirectory(prefix="cnnlab-model-") as folder:
            path = Path(folder) / "model.keras"
            path.write_bytes(archive)
            del archive
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except CNNLabError:
        raise
    except Exception as err:  # Keras, h5py and zipfile raise many types for damaged files
        raise _refuse(
            "Keras could not rebuild the model from it: its weights do not match its layers, "
            "or the file is damaged or was saved by an incompatible Keras version. " + _SAVE_AGAIN
        ) from err
    finally:
        _restore(settings)
    return model
