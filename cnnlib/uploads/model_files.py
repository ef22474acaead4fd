"""Uploaded ``.keras`` files: parsed in the decoding sandbox, rebuilt from CNN Lab's own spec.

A ``.keras`` file is a zip archive holding ``config.json`` (the architecture),
``metadata.json`` and ``model.weights.h5``. Keras' own loader would build whatever the
configuration names; CNN Lab never hands it an uploaded file (parse, don't validate):

1. **In the decoding sandbox** (``read_keras_file``, the sandbox task "keras_model"): the
   zip's directory (members, sizes, compression), ``config.json`` translated into a
   ``cnnlib.models.graph.ModelSpec`` (``cnnlib.models.keras_config``: allow-listed layer
   kinds, typed and bounded arguments, no unknown keys), its summary within the budgets
   (parameters, activation memory), and the weight arrays read with bounded memory where the
   spec says they are (``cnnlib.uploads.model_weights``).
2. **In the server** (``load_keras_file``): the spec is checked again
   (``spec_from_dict``), built by CNN Lab's builder (``build_from_graph``: Keras layer
   constructors with the typed arguments), and the weights assigned after each array's
   shape and dtype are checked against its variable (``assign_weights``). The built model's
   parameter count and input shape must equal the summary's.

Every refusal is an ``InvalidModelError`` whose message tells the learner what was wrong
and what to do.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlib.core.budgets import Budgets, format_bytes
from cnnlib.core.errors import ArchiveError, CNNLabError, InvalidModelError, SandboxError
from cnnlib.core.sandbox import (
    SandboxLimits,
    SandboxResult,
    TaskOutput,
    run_in_sandbox,
    sandbox_task,
)
from cnnlib.models.graph import (
    GraphSummary,
    ModelSpec,
    assign_weights,
    build_from_graph,
    quoted,
    spec_from_dict,
    summarize_graph,
)
from cnnlib.models.keras_config import (
    check_declared_shapes,
    spec_from_keras_config,
    weight_groups,
)
from cnnlib.uploads.model_weights import read_weights
from cnnlib.uploads.zip_reader import MAX_ENTRY_BYTES, eocd_counts

__all__ = [
    "ALLOWED_MEMBERS",
    "LayerReport",
    "ModelFileReport",
    "ModelLimits",
    "ParsedModelFile",
    "inspect_keras_file",
    "keras_model_task",
    "keras_settings",
    "load_keras_file",
    "read_keras_file",
]

CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
#: The only members a ``.keras`` file of the allowed layers has.
ALLOWED_MEMBERS = (CONFIG, METADATA, WEIGHTS)
#: Highest compression ratio accepted for a member over ``_RATIO_MIN_BYTES`` (Keras itself
#: stores members uncompressed; random weights hardly compress).
MAX_RATIO = 20
_RATIO_MIN_BYTES = 1 << 20
_METADATA_BYTES = 64 * 1024
_SAVE_AGAIN = "Save your model again with model.save('name.keras') and upload that file."

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ModelLimits:
    """The budgets a ``.keras`` file is read within (``Budgets.model_*``), as plain numbers
    the sandbox task receives."""

    file_bytes: int
    members: int
    unpacked_bytes: int
    config_bytes: int
    params: int
    activation_bytes: int

    @classmethod
    def of(cls, budgets: Budgets) -> ModelLimits:
        return cls(
            file_bytes=budgets.model_file_bytes,
            members=budgets.model_members,
            unpacked_bytes=budgets.model_unpacked_bytes,
            config_bytes=budgets.model_config_bytes,
            params=budgets.model_params,
            activation_bytes=budgets.model_activation_bytes,
        )

    def options(self) -> dict[str, int]:
        """The limits as the sandbox task's JSON options (``ModelLimits(**options)``)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LayerReport:
    """One layer as the file declares it (shapes without the batch axis)."""

    name: str
    class_name: str
    output_shape: Shape
    params: int


@dataclass(frozen=True)
class ModelFileReport:
    """What an uploaded ``.keras`` file holds: all within the budgets."""

    #: member name → uncompressed size in bytes.
    members: dict[str, int]
    config_bytes: int
    #: "Sequential" or "Functional".
    model_class: str
    #: Input shape without the batch axis, e.g. (28, 28, 1).
    input_shape: Shape
    #: The input, then every layer (a nested model's row, then its layers).
    layers: list[LayerReport]
    #: Parameters computed from the spec (Keras' ``count_params()``).
    params: int
    #: float32 activations of one image: the input plus every layer's output, bytes.
    activation_bytes: int
    #: Keras version that saved the file ("" when metadata.json does not say).
    keras_version: str = ""
    #: The model as CNN Lab rebuilds it.
    spec: ModelSpec | None = None


@dataclass(frozen=True)
class ParsedModelFile:
    """``read_keras_file``'s result: the spec, its summary, the archive's members and the
    weight arrays (one per ``summary.weight_rows`` weight, in order; None when not read)."""

    spec: ModelSpec
    summary: GraphSummary
    members: dict[str, int]
    keras_version: str
    weights: list[np.ndarray] | None

    def report(self) -> ModelFileReport:
        return ModelFileReport(
            members=dict(self.members),
            config_bytes=self.members.get(CONFIG, 0),
            model_class=self.spec.kind,
            input_shape=self.summary.input_shape,
            layers=[
                LayerReport(r.name, r.kind, r.output_shape, r.params) for r in self.summary.rows
            ],
            params=self.summary.params,
            activation_bytes=self.summary.activation_values * 4,
            keras_version=self.keras_version,
            spec=self.spec,
        )


def _refuse(problem: str) -> InvalidModelError:
    return InvalidModelError(f"This model file cannot be used: {problem}")


# --------------------------------------------------------------------------------------------
# The archive (in the sandbox)
# --------------------------------------------------------------------------------------------

_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
}
_METHOD_NAMES = {9: "Deflate64", zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA"}


def _open_zip(data: bytes, limits: ModelLimits) -> zipfile.ZipFile:
    """The archive, its entry count read from its end record (``eocd_counts``) and bounded
    before ``zipfile`` parses its directory."""
    if not isinstance(data, bytes | bytearray | memoryview) or not data:
        raise _refuse("it is empty or not a file. Upload a .keras file saved by Keras.")
    not_keras = _refuse(
        "it is not a .keras model file (a .keras file is a zip archive saved by Keras). "
        + _SAVE_AGAIN
    )
    buffer = io.BytesIO(bytes(data))
    try:
        entries, directory_bytes = eocd_counts(buffer)
    except ArchiveError:
        raise not_keras from None
    if entries > limits.members or directory_bytes > limits.members * MAX_ENTRY_BYTES:
        raise _refuse(
            f"the archive lists {entries:,} files in a directory of "
            f"{format_bytes(directory_bytes)}; a Keras model file has at most "
            f"{limits.members}. " + _SAVE_AGAIN
        )
    try:
        zf = zipfile.ZipFile(buffer)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, UnicodeDecodeError):
        raise not_keras from None
    if len(zf.infolist()) != entries:
        zf.close()
        raise _refuse("its directory does not hold the files its end record lists. " + _SAVE_AGAIN)
    return zf


def _members(zf: zipfile.ZipFile, limits: ModelLimits) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by name, after every check its directory allows."""
    infos = zf.infolist()
    if len(infos) > limits.members:
        raise _refuse(
            f"the archive holds {len(infos)} files; a Keras model file has at most "
            f"{limits.members}. " + _SAVE_AGAIN
        )
    names = [i.filename for i in infos]
    unexpected = sorted({n for n in names if n not in ALLOWED_MEMBERS})
    if unexpected:
        shown = ", ".join(quoted(n) for n in unexpected[:5])
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
        if info.compress_type not in _METHODS:
            method = _METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
            raise _refuse(
                f"{info.filename} is compressed with {method}, which CNN Lab does not unpack. "
                "Re-zip it with standard compression (or none), or save the model again with "
                "model.save('name.keras')."
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_MIN_BYTES and ratio > MAX_RATIO:
            raise _refuse(
                f"{info.filename} is {format_bytes(info.compress_size)} packed but would "
                f"unpack to {format_bytes(info.file_size)} ({ratio:,.0f} times more; real "
                f"model files hardly compress). " + _SAVE_AGAIN
            )
    total = sum(i.file_size for i in infos)
    if total > limits.unpacked_bytes:
        raise _refuse(
            f"its files would unpack to {format_bytes(total)}, more than the "
            f"{format_bytes(limits.unpacked_bytes)} allowed here. Upload a smaller model."
        )
    return {i.filename: i for i in infos}


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """The member's bytes (by its ``ZipInfo``), at most ``limit`` of them."""
    if info.file_size > limit:
        raise _refuse(
            f"its {info.filename} is {format_bytes(info.file_size)}, more than the "
            f"{format_bytes(limit)} it may have here. Upload a smaller model."
        )
    try:
        with zf.open(info) as f:
            # zipfile inflates at most what is asked for and never returns more than the
            # declared size; a stream that goes on past it fails its CRC check.
            data = f.read(info.file_size)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError):
        raise _refuse(f"its {info.filename} is damaged. " + _SAVE_AGAIN) from None
    except NotImplementedError:
        raise _refuse(
            f"its {info.filename} is compressed in a way CNN Lab does not unpack. " + _SAVE_AGAIN
        ) from None
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _json(data: bytes, name: str) -> Any:
    """JSON with no key twice in one object (which one would Keras read?)."""
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _refuse(
            f"its {name} is not valid JSON, or names a setting twice. " + _SAVE_AGAIN
        ) from None


def read_keras_file(data: bytes, limits: ModelLimits, *, weights: bool = True) -> ParsedModelFile:
    """Parse an uploaded ``.keras`` file into CNN Lab's spec, its summary and (``weights``)
    its weight arrays. Runs in the decoding sandbox (the task "keras_model"); never builds a
    Keras object. Raises ``InvalidModelError`` with a learner's message."""
    if isinstance(data, bytes | bytearray) and len(data) > limits.file_bytes:
        raise _refuse(
            f"it is {format_bytes(len(data))}, more than the "
            f"{format_bytes(limits.file_bytes)} allowed. Upload a smaller model."
        )
    with _open_zip(data, limits) as zf:
        members = _members(zf, limits)
        config = _json(_read_member(zf, members[CONFIG], limits.config_bytes), CONFIG)
        metadata = (
            _json(_read_member(zf, members[METADATA], _METADATA_BYTES), METADATA)
            if METADATA in members
            else {}
        )
        try:
            parsed = spec_from_keras_config(config)
            summary = summarize_graph(
                parsed.spec,
                max_params=limits.params,
                max_activation_bytes=limits.activation_bytes,
            )
            check_declared_shapes(parsed, summary)
        except InvalidModelError as err:
            raise _refuse(str(err)) from None
        arrays = None
        if weights:
            if WEIGHTS not in members:
                raise _refuse(f"the archive has no {WEIGHTS} (the model's weights). " + _SAVE_AGAIN)
            h5 = _read_member(zf, members[WEIGHTS], limits.unpacked_bytes)
            try:
                arrays = read_weights(h5, weight_groups(parsed.spec, summary))
            except InvalidModelError as err:
                raise _refuse(str(err)) from None
    version = metadata.get("keras_version", "") if isinstance(metadata, dict) else ""
    return ParsedModelFile(
        spec=parsed.spec,
        summary=summary,
        members={name: info.file_size for name, info in members.items()},
        keras_version=str(version)[:20],
        weights=arrays,
    )


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


def keras_settings() -> dict[str, Any]:
    """Keras' process-wide settings (floatx, epsilon, image data format, dtype policy,
    backend): loading an upload must leave them as they are."""
    import keras

    return {
        "floatx": keras.config.floatx(),
        "epsilon": keras.config.epsilon(),
        "image_data_format": keras.config.image_data_format(),
        "dtype_policy": keras.config.dtype_policy().name,
        "backend": keras.config.backend(),
    }


# --------------------------------------------------------------------------------------------
# The sandbox task: what crosses back to the server
# --------------------------------------------------------------------------------------------


@sandbox_task("keras_model")
def keras_model_task(source: bytes, *, name: str, weights: bool, **limits: int) -> TaskOutput:
    """The decoder's side: ``read_keras_file`` on an uploaded file. Sends back the spec as
    JSON (``ModelSpec.to_dict``), the members' sizes, the Keras version, the summary's
    parameter count and input shape, and the weight arrays "w0", "w1", … (float32, in
    ``summary.weight_rows`` order)."""
    parsed = read_keras_file(source, ModelLimits(**limits), weights=weights)
    meta = {
        "spec": parsed.spec.to_dict(),
        "members": parsed.members,
        "keras_version": parsed.keras_version,
        "params": parsed.summary.params,
        "input_shape": list(parsed.summary.input_shape),
        "weights": len(parsed.weights or []),
    }
    arrays = {
        f"w{i}": np.ascontiguousarray(a, dtype="<f4") for i, a in enumerate(parsed.weights or [])
    }
    return TaskOutput(meta, arrays)


def _from_sandbox(result: SandboxResult, limits: ModelLimits, weights: bool) -> ParsedModelFile:
    """The server's side: the decoder's answer checked again — the spec re-read and
    re-summarized within the budgets, its totals compared, every array's dtype and exact
    shape taken from the server's own summary."""
    try:
        spec = spec_from_dict(result.meta.get("spec"))
        summary = summarize_graph(
            spec, max_params=limits.params, max_activation_bytes=limits.activation_bytes
        )
    except InvalidModelError as err:
        raise _refuse(str(err)) from None
    if result.integer("params", 0, limits.params) != summary.params or result.items(
        "input_shape", 3
    ) != list(summary.input_shape):
        raise result.malformed("a model description that does not add up")
    sizes = result.meta.get("members")
    if not isinstance(sizes, dict) or not all(
        k in ALLOWED_MEMBERS and type(v) is int and 0 <= v <= limits.unpacked_bytes
        for k, v in sizes.items()
    ):
        raise result.malformed("invalid member sizes")
    arrays = None
    if weights:
        shapes = [shape for row in summary.weight_rows for shape in row.weight_shapes]
        if result.integer("weights", 0, len(shapes)) != len(shapes):
            raise result.malformed(f"weight arrays for a model with {len(shapes)}")
        arrays = [
            result.array(f"w{i}", dtype="<f4", ndim=len(shape), min_shape=shape, max_shape=shape)
            for i, shape in enumerate(shapes)
        ]
    return ParsedModelFile(
        spec=spec,
        summary=summary,
        members=dict(sizes),
        keras_version=result.text("keras_version", 20),
        weights=arrays,
    )


def _sandbox_reason(reason: str, budgets: Budgets) -> str:
    """What a failed decoder means for a model file, with the limit it hit."""
    if reason == "memory":
        return (
            f"reading it needed more than {format_bytes(budgets.sandbox_memory_bytes)} of "
            "memory, the most one file may use here."
        )
    if reason == "cpu":
        return (
            f"reading it took more than {budgets.sandbox_cpu_seconds} CPU-seconds, the most one "
            "file may take here."
        )
    if reason == "malformed":
        return "its reader sent back something this server does not accept."
    return "its reader stopped unexpectedly: the file is damaged or built to crash it."


def _parse(data: bytes, budgets: Budgets, name: str, weights: bool) -> ParsedModelFile:
    """``read_keras_file`` in the decoding sandbox, its answer checked (``_from_sandbox``).
    The file's size is checked before it is sent."""
    limits = ModelLimits.of(budgets)
    if not isinstance(data, bytes | bytearray | memoryview) or not len(data):
        raise _refuse("it is empty or not a file. Upload a .keras file saved by Keras.")
    if len(data) > limits.file_bytes:
        raise _refuse(
            f"it is {format_bytes(len(data))}, more than the "
            f"{format_bytes(limits.file_bytes)} allowed. Upload a smaller model."
        )
    answer_bytes = limits.params * 4 + (1 << 20)
    try:
        result = run_in_sandbox(
            "keras_model",
            data,
            name=name,
            limits=SandboxLimits(
                result_bytes=answer_bytes, header_bytes=limits.config_bytes + (1 << 20)
            ),
            weights=weights,
            **limits.options(),
        )
    except SandboxError as err:
        if err.reason in ("busy", "start", "time"):
            raise
        raise _refuse(f"{_sandbox_reason(err.reason, budgets)} {_SAVE_AGAIN}") from None
    return _from_sandbox(result, limits, weights)


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


def inspect_keras_file(
    data: bytes, *, budgets: Budgets, name: str = "the model file"
) -> ModelFileReport:
    """What an uploaded ``.keras`` file holds (layers, shapes, parameters), read in the
    decoding sandbox without its weights; nothing is built. ``name``: how messages name the
    file (safe to show). Raises ``InvalidModelError`` (or ``SandboxError`` when every
    reader is busy)."""
    return _parse(data, budgets, name, weights=False).report()


def model_from_parsed(parsed: ParsedModelFile):
    """The Keras model of a parsed file: built from its spec by ``build_from_graph``, its
    weights assigned after checking each one (``assign_weights``). Its parameter count and
    input shape are the summary's. Raises ``InvalidModelError``."""
    if parsed.weights is None:
        raise InvalidModelError("The model file was read without its weights.")
    try:
        model = build_from_graph(parsed.spec)
    except CNNLabError:
        raise
    except Exception as err:  # a spec Keras refuses although every rule passed
        raise _refuse("Keras could not build a model from its layers. " + _SAVE_AGAIN) from err
    assign_weights(model, parsed.summary, parsed.weights)
    if model.count_params() != parsed.summary.params or tuple(model.input_shape[1:]) != tuple(
        parsed.summary.input_shape
    ):
        raise _refuse(
            f"the built model has {model.count_params():,} parameters and input "
            f"{tuple(model.input_shape[1:])}, not the {parsed.summary.params:,} and "
            f"{parsed.summary.input_shape} its description gives."
        )
    return model


def load_keras_file(data: bytes, *, budgets: Budgets, name: str = "the model file"):
    """The ``keras.Model`` of an uploaded ``.keras`` file: parsed in the decoding sandbox
    (``read_keras_file``; the server only checks its answer), rebuilt and its weights
    assigned (``model_from_parsed``). Keras' deserializer never sees the file. ``name``: how
    messages name the file (safe to show). Raises ``InvalidModelError`` with a plain message
    for every refusal (``SandboxError`` when every reader is busy)."""
    return model_from_parsed(_parse(data, budgets, name, weights=True))
