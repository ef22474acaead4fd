"""A ``.keras`` file's ``config.json`` translated into CNN Lab's ``ModelSpec`` (parse, don't
validate).

Keras writes a model's architecture as JSON: the model's class, its layers (each a class
name, a module and its settings) and, for a Functional model, each layer's inbound tensors.
``spec_from_keras_config`` reads that JSON into a ``cnnlib.models.graph.ModelSpec`` and
nothing else: every key must be one it knows, every layer a kind of ``GRAPH_KINDS`` with
typed, bounded arguments (``parse_args``), every activation, initializer, regularizer and
constraint a named built-in. What Keras would read beyond the spec — ``build_config``,
``shared_object_id`` on a layer, ``lora_rank``, ``quantization_config``, a
``batch_input_shape`` beside ``batch_shape``, custom classes, ``Lambda`` — is refused, or,
for the shapes a file declares (``build_config``, tensors' shapes), compared with what the
spec computes (``check_declared_shapes``). The model is then built from the spec by CNN
Lab's builder; Keras' deserializer never sees the file.

``weight_groups`` says where each layer's weights lie in the file's ``model.weights.h5``:
Keras names them by class, not by layer name (``layers/conv2d_1/vars/0``).

No TensorFlow here: the decoding sandbox runs this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnnlib.core.errors import InvalidModelError
from cnnlib.models.graph import (
    GRAPH_KINDS,
    MAX_DEPTH,
    MAX_LAYERS,
    MODEL_KINDS,
    GraphRow,
    GraphSummary,
    ModelSpec,
    NodeSpec,
    allowed_kinds_text,
    check_edges,
    check_name,
    parse_args,
    parse_dtype_policy,
    quoted,
    snake_case,
    unknown_kind_error,
)
from cnnlib.models.layers import CAFFE_REGISTERED_NAME

__all__ = [
    "PROJECT_LAYERS",
    "KerasConfig",
    "check_declared_shapes",
    "spec_from_keras_config",
    "weight_groups",
]

#: CNN Lab's own layers a file may hold: registered name → (modules it was saved from, kind).
PROJECT_LAYERS: dict[str, tuple[frozenset[str], str]] = {
    CAFFE_REGISTERED_NAME: (
        frozenset({"cnnlib.models.layers", "cnnlib.transfer"}),  # now, and before the move
        "CaffePreprocess",
    ),
}
#: Layers refused by name, with the reason a learner is told.
FORBIDDEN = {
    "Lambda": "a Lambda layer runs Python code stored in the file",
    "TFSMLayer": "a TFSMLayer loads a TensorFlow SavedModel from the server's disk",
    "TextVectorization": "a TextVectorization layer can read its vocabulary from a file",
    "StringLookup": "a StringLookup layer can read its vocabulary from a file",
    "IntegerLookup": "an IntegerLookup layer can read its vocabulary from a file",
}
_LAYER_MODULES = ("keras.layers", "keras")
_MODEL_MODULES = (
    "keras",
    "keras.models",
    "keras.src.models.functional",
    "keras.src.models.sequential",
)
_TOP_KEYS = {"module", "class_name", "config", "registered_name", "build_config", "compile_config"}
_LAYER_KEYS = {"module", "class_name", "config", "registered_name", "build_config"}
_NODE_KEYS = {"name", "inbound_nodes"}
_SEQUENTIAL_KEYS = {"name", "trainable", "dtype", "layers", "build_input_shape"}
_FUNCTIONAL_KEYS = {"name", "trainable", "dtype", "layers", "input_layers", "output_layers"}
_INPUT_KEYS = {"batch_shape", "batch_input_shape", "dtype", "sparse", "ragged", "name", "optional"}

Shape = tuple[int, ...]


def _refuse(problem: str) -> InvalidModelError:
    return InvalidModelError(problem)


@dataclass(frozen=True)
class KerasConfig:
    """``spec_from_keras_config``'s result: the spec, and the shapes the file declares for
    layers' inputs — (model path, layer name) → each input's shape with the batch axis
    (``build_config``, the inbound tensors' ``shape``), checked by
    ``check_declared_shapes`` once the spec is summarized."""

    spec: ModelSpec
    declared: Mapping[tuple[tuple[str, ...], str], tuple[tuple[Any, ...], ...]]


class _Reader:
    def __init__(self) -> None:
        self.layers = 0
        self.declared: dict[tuple[tuple[str, ...], str], list[tuple[Any, ...]]] = {}

    def declare(self, path: tuple[str, ...], name: str, shape: Any) -> None:
        if shape is None:
            return
        if not isinstance(shape, list) or len(shape) > 8:
            raise _refuse(f"layer {quoted(name)} declares the input shape {quoted(shape)}.")
        self.declared.setdefault((path, name), []).append(tuple(shape))

    def build_config(self, path: tuple[str, ...], name: str, value: Any) -> None:
        """``build_config``: {"input_shape": shape or list of shapes}, compared later."""
        if value is None:
            return
        if not isinstance(value, dict) or set(value) - {"input_shape"}:
            raise _refuse(f"layer {quoted(name)} has a build_config CNN Lab does not accept.")
        shape = value.get("input_shape")
        if isinstance(shape, list) and shape and all(isinstance(s, list) for s in shape):
            for one in shape:
                self.declare(path, name, one)
        else:
            self.declare(path, name, shape)

    # -- layers ------------------------------------------------------------------------------

    def layer_kind(self, entry: dict, name: str) -> str:
        """The ``GRAPH_KINDS`` kind of a layer entry: a Keras built-in or CNN Lab's own."""
        class_name, module = entry.get("class_name"), entry.get("module")
        registered = entry.get("registered_name")
        if not isinstance(class_name, str):
            raise _refuse(f"layer {quoted(name)} has no class name.")
        if class_name in FORBIDDEN:
            raise _refuse(
                f"layer {quoted(name)} is a {class_name}: {FORBIDDEN[class_name]}. CNN Lab opens "
                f"models made of these layers: {allowed_kinds_text()}."
            )
        project = PROJECT_LAYERS.get(registered) if isinstance(registered, str) else None
        if project is not None and module in project[0] and class_name == project[1]:
            return class_name
        if module not in _LAYER_MODULES or registered is not None:
            raise _refuse(
                f"layer {quoted(name)} is a {quoted(class_name, 40)} from {quoted(module, 40)}"
                + (f" registered as {quoted(registered, 40)}" if registered else "")
                + ", custom code that is not part of Keras. CNN Lab opens models made of these "
                f"layers: {allowed_kinds_text()}."
            )
        if class_name not in GRAPH_KINDS:
            raise unknown_kind_error(name, class_name)
        return class_name

    def count(self) -> None:
        self.layers += 1
        if self.layers > MAX_LAYERS:
            raise _refuse(f"it has more than {MAX_LAYERS:,} layers. Upload a smaller model.")

    def node(
        self, entry: Any, path: tuple[str, ...], inputs: tuple[str, ...], depth: int, keys: set
    ) -> NodeSpec:
        """One non-input layer entry (``keys``: the entry keys allowed besides config)."""
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise _refuse("its configuration lists a layer without settings.")
        config = entry["config"]
        name = check_name(config.get("name"))
        is_model = entry.get("class_name") in MODEL_KINDS
        unknown = set(entry) - keys - ({"compile_config"} if is_model else set())
        if unknown:
            raise _refuse(
                f"layer {quoted(name)} has the entry {quoted(sorted(unknown)[0], 40)}, which CNN "
                "Lab does not accept."
            )
        if "name" in entry and entry["name"] != name:
            raise _refuse(f"layer {quoted(name)} is listed under another name.")
        self.count()
        if is_model:
            model = self.model(entry, depth + 1, path=(*path, name), given=True)
            return NodeSpec(name, model.kind, inputs, model=model)
        kind = self.layer_kind(entry, name)
        self.build_config(path, name, entry.get("build_config"))
        return NodeSpec(name, kind, inputs, parse_args(kind, name, config))

    # -- models ------------------------------------------------------------------------------

    def model(self, entry: Any, depth: int, *, path: tuple[str, ...] = (), given=False):
        """A Sequential or Functional model entry → ``ModelSpec`` (``given``: a nested model,
        whose input comes from the outer model)."""
        if depth > MAX_DEPTH:
            raise _refuse(f"its models are nested more than {MAX_DEPTH} deep.")
        if not isinstance(entry, dict) or entry.get("class_name") not in MODEL_KINDS:
            raise _refuse(
                "its config.json does not describe a Keras Sequential or Functional model."
            )
        unknown = set(entry) - _TOP_KEYS - (_NODE_KEYS if given else set())
        if unknown:
            raise _refuse(
                f"its model has the entry {quoted(sorted(unknown)[0], 40)}, which CNN Lab does "
                "not accept."
            )
        if entry.get("module") not in _MODEL_MODULES or entry.get("registered_name") not in (
            None,
            entry["class_name"],
        ):
            raise _refuse(
                f"its model is a {quoted(entry['class_name'], 40)} from "
                f"{quoted(entry.get('module'), 40)}, "
                "custom code that is not part of Keras."
            )
        config = entry.get("config")
        if not isinstance(config, dict):
            raise _refuse("its model has no settings.")
        build = entry.get("build_config")
        if entry["class_name"] == "Sequential":
            spec = self.sequential(config, depth, path, build)
        else:
            spec = self.functional(config, depth, path)
        check_edges(spec)
        declared = build.get("input_shape") if isinstance(build, dict) else None
        if (
            build is not None and (not isinstance(build, dict) or set(build) - {"input_shape"})
        ) or (declared is not None and declared != [None, *spec.input_shape]):
            raise _refuse(
                f"model {quoted(spec.name)} has a build_config {quoted(build)} that does not "
                f"match its input {quoted(list(spec.input_shape))}. " + _SAVE_AGAIN
            )
        if config.get("build_input_shape") not in (None, [None, *spec.input_shape]):
            raise _refuse(f"model {quoted(spec.name)} declares two different input shapes.")
        return spec

    def model_settings(self, config: dict, allowed: set, what: str) -> tuple[str, bool, list]:
        unknown = set(config) - allowed
        if unknown:
            raise _refuse(
                f"its {what} model has the setting {quoted(sorted(unknown)[0], 40)}, which CNN Lab "
                "does not accept."
            )
        name = check_name(config.get("name"), "model")
        trainable = config.get("trainable", True)
        if not isinstance(trainable, bool):
            raise _refuse(f"model {quoted(name)} has an invalid trainable flag.")
        parse_dtype_policy(config.get("dtype"), f"model {quoted(name)}")
        layers = config.get("layers")
        if not isinstance(layers, list) or not layers:
            raise _refuse(f"model {quoted(name)} lists no layers.")
        return name, trainable, layers

    def input_layer(self, entry: Any, path: tuple[str, ...]) -> tuple[str, Shape]:
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise _refuse("its configuration lists an input without settings.")
        config = entry["config"]
        name = check_name(config.get("name"))
        if set(entry) - (_LAYER_KEYS | _NODE_KEYS) or entry.get("module") not in _LAYER_MODULES:
            raise _refuse(f"its input {quoted(name)} is not laid out as Keras writes it.")
        if entry.get("inbound_nodes") not in (None, []) or entry.get("build_config") is not None:
            raise _refuse(f"its input {quoted(name)} reads another layer.")
        unknown = set(config) - _INPUT_KEYS
        if unknown:
            raise _refuse(
                f"its input {quoted(name)} has the setting {quoted(sorted(unknown)[0], 40)}, "
                "which CNN Lab does not accept."
            )
        if "batch_shape" in config and "batch_input_shape" in config:
            raise _refuse(
                f"its input {quoted(name)} declares both batch_shape and batch_input_shape; Keras "
                "writes one."
            )
        for key in ("sparse", "ragged", "optional"):
            if config.get(key, False) is not False:
                raise _refuse(
                    f"its input {quoted(name)} is {key}; CNN Lab takes dense image inputs."
                )
        if config.get("dtype", "float32") not in ("float32", None):
            raise _refuse(
                f"its input {quoted(name)} takes {quoted(config.get('dtype'))}, not float32."
            )
        shape = config.get("batch_shape", config.get("batch_input_shape"))
        return name, _batch_shape(shape, f"its input {quoted(name)}")

    def sequential(self, config: dict, depth: int, path: tuple[str, ...], build: Any) -> ModelSpec:
        name, trainable, layers = self.model_settings(config, _SEQUENTIAL_KEYS, "Sequential")
        first = layers[0]
        if isinstance(first, dict) and first.get("class_name") == "InputLayer":
            input_name, shape = self.input_layer(first, path)
            layers = layers[1:]
        else:
            declared = config.get("build_input_shape")
            if declared is None and isinstance(build, dict):
                declared = build.get("input_shape")
            if declared is None:
                raise _refuse(f"model {quoted(name)} declares no input shape. " + _SAVE_AGAIN)
            input_name = f"{name}_input"
            shape = _batch_shape(declared, f"model {quoted(name)}")
        if not layers:
            raise _refuse(f"model {quoted(name)} has no layers.")
        nodes, previous = [], input_name
        for entry in layers:
            node = self.node(entry, path, (previous,), depth, _LAYER_KEYS)
            nodes.append(node)
            previous = node.name
        return ModelSpec(name, "Sequential", input_name, shape, tuple(nodes), previous, trainable)

    def functional(self, config: dict, depth: int, path: tuple[str, ...]) -> ModelSpec:
        name, trainable, layers = self.model_settings(config, _FUNCTIONAL_KEYS, "Functional")
        input_names = _endpoints(config.get("input_layers"), f"model {quoted(name)}'s inputs")
        output_names = _endpoints(config.get("output_layers"), f"model {quoted(name)}'s outputs")
        if len(input_names) != 1 or len(output_names) != 1:
            raise _refuse(
                f"model {quoted(name)} has several inputs or outputs; CNN Lab needs one of each."
            )
        input_name, shape, nodes = None, (), []
        for entry in layers:
            if isinstance(entry, dict) and entry.get("class_name") == "InputLayer":
                if input_name is not None:
                    raise _refuse(f"model {quoted(name)} has several inputs; CNN Lab needs one.")
                input_name, shape = self.input_layer(entry, path)
                continue
            layer_name = entry.get("name") if isinstance(entry, dict) else None
            inputs = self.inbound(entry, path, str(layer_name)[:60])
            nodes.append(self.node(entry, path, inputs, depth, _LAYER_KEYS | _NODE_KEYS))
        if input_name is None or input_names[0] != input_name:
            raise _refuse(f"model {quoted(name)} has no input layer.")
        return ModelSpec(
            name, "Functional", input_name, shape, tuple(nodes), output_names[0], trainable
        )

    def inbound(self, entry: Any, path: tuple[str, ...], name: str) -> tuple[str, ...]:
        """The names of the layers a functional layer reads (its one inbound node)."""
        nodes = entry.get("inbound_nodes") if isinstance(entry, dict) else None
        if not isinstance(nodes, list) or len(nodes) != 1:
            count = len(nodes) if isinstance(nodes, list) else 0
            raise _refuse(
                f"layer {quoted(name)} is used {count} times; CNN Lab opens models whose layers "
                "are each used once."
            )
        node = nodes[0]
        if not isinstance(node, dict) or set(node) - {"args", "kwargs"}:
            raise _refuse(
                f"layer {quoted(name)} is connected in a way Keras 3 does not write. " + _SAVE_AGAIN
            )
        kwargs = node.get("kwargs") or {}
        if not isinstance(kwargs, dict) or set(kwargs) - {"mask", "training"}:
            raise _refuse(f"layer {quoted(name)} is called with settings CNN Lab does not accept.")
        if kwargs.get("mask") is not None or kwargs.get("training") not in (None, True, False):
            raise _refuse(
                f"layer {quoted(name)} is called with a mask or an invalid training flag."
            )
        args = node.get("args")
        if not isinstance(args, list) or len(args) != 1:
            raise _refuse(f"layer {quoted(name)} is connected in a way CNN Lab does not accept.")
        tensors = args[0] if isinstance(args[0], list) else [args[0]]
        if not tensors or len(tensors) > 64:
            raise _refuse(f"layer {quoted(name)} reads {len(tensors)} tensors.")
        sources = []
        for tensor in tensors:
            source, shape = _tensor(tensor, name)
            self.declare(path, name, shape)
            sources.append(source)
        return tuple(sources)


_SAVE_AGAIN = "Save your model again with model.save('name.keras') and upload that file."


def _batch_shape(shape: Any, where: str) -> Shape:
    """(H, W, C) of a declared shape with the batch axis, [None, H, W, C]."""
    if not isinstance(shape, list) or not 2 <= len(shape) <= 4:
        raise _refuse(
            f"{where} declares the shape {quoted(shape)}; CNN Lab needs (H, W, C) or (N,)."
        )
    batch = shape[0]
    if batch is not None and not (
        isinstance(batch, int) and not isinstance(batch, bool) and 1 <= batch <= 4096
    ):
        raise _refuse(f"{where} declares the batch size {quoted(batch)}.")
    dims = shape[1:]
    if any(d is None for d in dims):
        raise _refuse(
            f"{where} has an open size {quoted(tuple(dims))}; CNN Lab needs a fixed input size "
            "such as (224, 224, 3) to estimate the memory it needs."
        )
    if not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 65536 for d in dims):
        raise _refuse(f"{where} declares the shape {quoted(shape)}; sizes are 1 to 65,536.")
    return tuple(dims)


def _endpoints(value: Any, what: str) -> list[str]:
    """Layer names of ``input_layers``/``output_layers``: ["a", 0, 0] or [["a", 0, 0], …]."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        value = [value]
    if not isinstance(value, list) or not value or len(value) > 16:
        raise _refuse(f"{what} name no layer. " + _SAVE_AGAIN)
    names = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)) or item[
            1:
        ] != [0, 0]:
            raise _refuse(f"{what} name no layer. " + _SAVE_AGAIN)
        names.append(item[0])
    return names


def _tensor(value: Any, name: str) -> tuple[str, Any]:
    """(source layer, declared shape) of one ``__keras_tensor__``."""
    ok = (
        isinstance(value, dict)
        and set(value) == {"class_name", "config"}
        and value["class_name"] == "__keras_tensor__"
        and isinstance(value["config"], dict)
        and set(value["config"]) <= {"shape", "dtype", "keras_history"}
    )
    history = value["config"].get("keras_history") if ok else None
    if not (ok and isinstance(history, list) and len(history) == 3 and isinstance(history[0], str)):
        raise _refuse(
            f"layer {quoted(name)} reads something other than a layer's output. " + _SAVE_AGAIN
        )
    if history[1:] != [0, 0]:
        raise _refuse(
            f"layer {quoted(name)} reads a layer used several times or with several outputs; CNN "
            "Lab opens models whose layers are each used once."
        )
    if value["config"].get("dtype", "float32") != "float32":
        raise _refuse(
            f"layer {quoted(name)} reads a tensor of {quoted(value['config'].get('dtype'))}."
        )
    return history[0], value["config"].get("shape")


def spec_from_keras_config(config: Any) -> KerasConfig:
    """The ``ModelSpec`` of a parsed ``config.json`` (a Sequential or Functional model of
    ``GRAPH_KINDS`` layers, nested models included), and the shapes it declares. The
    ``compile_config`` (optimizer, loss) is never read. Raises ``InvalidModelError`` with
    what is wrong and the kinds CNN Lab opens."""
    reader = _Reader()
    try:
        spec = reader.model(config, 0)
    except RecursionError:
        raise _refuse("its configuration is nested too deeply.") from None
    return KerasConfig(spec, {k: tuple(v) for k, v in reader.declared.items()})


def check_declared_shapes(config: KerasConfig, summary: GraphSummary) -> None:
    """Every shape the file declares for a layer's inputs equals the shape the spec
    computes (batch axis None or a number). Raises ``InvalidModelError``."""
    outputs = {(r.path, r.name): r.output_shape for r in summary.rows}
    for path, node in config.spec.walk():
        declared = config.declared.get((path, node.name))
        if not declared:
            continue
        computed = {(None, *outputs[(path, i)]) for i in node.inputs}
        for shape in declared:
            if (None, *shape[1:]) not in computed:
                raise _refuse(
                    f"layer {quoted(node.name)} declares the input shape {quoted(list(shape))}, "
                    f"but its input is {quoted(sorted(computed)[0][1:])}. " + _SAVE_AGAIN
                )


@dataclass(frozen=True)
class WeightGroup:
    """Where one layer's weights lie in ``model.weights.h5``: ``group`` (e.g.
    "layers/functional/layers/conv2d_1/vars"), datasets "0", "1", … of ``row.weight_shapes``."""

    group: str
    row: GraphRow


def weight_groups(spec: ModelSpec, summary: GraphSummary) -> list[WeightGroup]:
    """The h5 group of every layer with weights, in ``summary.weight_rows`` order.

    Keras names a model's layers in the weights file by class, numbered in the model's
    layer order: the first Conv2D "conv2d", the next "conv2d_1"; a nested model's layers
    under its own name ("functional", "sequential")."""
    groups: dict[tuple[tuple[str, ...], str], str] = {}

    def walk(model: ModelSpec, prefix: str, path: tuple[str, ...]) -> None:
        used: dict[str, int] = {}
        for node in model.nodes:
            snake = snake_case("Functional" if node.kind == "Functional" else node.kind)
            n = used.get(snake)
            used[snake] = 0 if n is None else n + 1
            unique = snake if n is None else f"{snake}_{n + 1}"
            group = f"{prefix}layers/{unique}"
            groups[(path, node.name)] = f"{group}/vars"
            if node.model is not None:
                walk(node.model, f"{group}/", (*path, node.name))

    walk(spec, "", ())
    return [WeightGroup(groups[(r.path, r.name)], r) for r in summary.weight_rows]
