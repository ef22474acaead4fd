"""A trained classifier as files other runtimes run: Keras, LiteRT (float32 and int8), ONNX
and SavedModel, each made by Keras' own ``model.export`` and checked by running it.

- ``export_model(model, fmt, *, calibration=None)`` → ``Exported`` (``.data`` bytes,
  ``.filename``, ``.format``); ``export_models`` makes several formats in one go.
- ``run_exported(exported, images)`` → the probabilities from the format's own runtime:
  ``ai-edge-litert`` for ``.tflite``, ``onnxruntime`` for ONNX, ``tf.saved_model.load`` for
  SavedModel, Keras for ``.keras``.
- ``ExportJob``: the same conversion as a job of the task base (Stop, time limit, a
  training slot), for a page that polls; with ``check_images`` its child also runs every
  file in its own runtime beside the Keras model (``checks()`` → ``ExportCheck``: size,
  agreement, accuracy), so the server never loads those runtimes.

What is exported is the inference model (``cnnlib.models.inference.inference_model``: the
augmentation layers left out). The conversion runs in a child process
(``cnnlib.training.task_process``): TensorFlow's converter keeps memory in the process that
ran it. A conversion that fails, or that yields an empty file, raises ``ExportError`` with a
message for the learner; no file is returned for it.

int8 (``"litert_int8"``) is full-integer post-training quantisation of the weights and
activations, calibrated on a representative sample of the learner's own images
(``calibration``); the file keeps float32 input and output, so it takes the same raw pixels.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlib.core.errors import CNNLabError, InvalidArgumentError
from cnnlib.models.inference import inference_model
from cnnlib.models.layers import register_layers
from cnnlib.training.tasks import TaskHandle, TaskProgress, TaskWorker, TrainingSlots
from cnnlib.training.trainer import load_model_bytes, save_model_bytes

__all__ = [
    "CALIBRATION_IMAGES",
    "EXPORT_FORMATS",
    "ExportCheck",
    "ExportError",
    "ExportJob",
    "ExportProgress",
    "Exported",
    "calibration_sample",
    "compare_with_keras",
    "export_model",
    "export_models",
    "run_exported",
]


@dataclass(frozen=True)
class _Format:
    filename: str
    title: str  #: for the learner
    runtime: str  #: what runs it (``run_exported``)


#: The formats, in the order a page lists them: file name, title and runtime.
EXPORT_FORMATS: dict[str, _Format] = {
    "keras": _Format("model.keras", "Keras (.keras)", "Keras"),
    "litert": _Format("model.tflite", "LiteRT float32 (.tflite)", "ai-edge-litert"),
    "litert_int8": _Format("model_int8.tflite", "LiteRT int8 (.tflite)", "ai-edge-litert"),
    "onnx": _Format("model.onnx", "ONNX (.onnx)", "onnxruntime"),
    "saved_model": _Format("saved_model.zip", "TensorFlow SavedModel (.zip)", "TensorFlow"),
}
#: At most this many images calibrate the int8 quantisation (TensorFlow's guide: ~100-500).
CALIBRATION_IMAGES = 100
#: Images per call of a runtime in ``run_exported``.
RUN_BATCH = 64


class ExportError(CNNLabError, RuntimeError):
    """A model could not be converted to a format (the message says which, and why)."""


@dataclass(frozen=True)
class Exported:
    """One exported model file: ``data`` its bytes, ``filename`` (e.g. "model.tflite"),
    ``format`` one of ``EXPORT_FORMATS``; ``input_shape`` (H, W, C) and ``num_classes`` of
    the model it came from."""

    format: str
    filename: str
    data: bytes
    input_shape: tuple[int, ...]
    num_classes: int

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    @property
    def title(self) -> str:
        return EXPORT_FORMATS[self.format].title

    @property
    def runtime(self) -> str:
        return EXPORT_FORMATS[self.format].runtime


def _formats(formats: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(formats))
    unknown = [f for f in chosen if f not in EXPORT_FORMATS]
    if unknown or not chosen:
        raise InvalidArgumentError(
            f"Unknown export format(s) {unknown or '(none)'}; choose from "
            f"{', '.join(EXPORT_FORMATS)}."
        )
    return chosen


def calibration_sample(images: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """Up to ``CALIBRATION_IMAGES`` of ``images``, evenly spaced (so every class in a sorted
    set is represented), as (N, H, W, C) raw pixels: uint8 when given uint8 (a quarter of
    the bytes to send to the converter's process), else float32. Raises
    ``InvalidArgumentError`` when they do not match the model's ``input_shape`` (H, W, C)
    or there are none."""
    x = np.asarray(images)
    if x.ndim == 3 and len(input_shape) == 3 and input_shape[-1] == 1:
        x = x[..., None]
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(input_shape) or len(x) == 0:
        raise InvalidArgumentError(
            f"int8 export needs some of your images to calibrate it, shaped (N, "
            f"{', '.join(map(str, input_shape))}); got {x.shape}."
        )
    step = max(1, len(x) // CALIBRATION_IMAGES)
    dtype = np.uint8 if x.dtype == np.uint8 else np.float32
    return np.ascontiguousarray(x[::step][:CALIBRATION_IMAGES], dtype=dtype)


def _input_shape(model: Any) -> tuple[int, ...]:
    shape = tuple(model.input_shape[1:])
    if any(d is None for d in shape):
        raise InvalidArgumentError(
            f"Only a model with a fixed input size can be exported; this one takes {shape}."
        )
    return tuple(int(d) for d in shape)


# --------------------------------------------------------------------------------------------
# Converting (in the child process)
# --------------------------------------------------------------------------------------------


def _zip_folder(folder: Path) -> bytes:
    """Every file under ``folder`` in a zip, paths relative to it (sorted: reproducible)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            zf.write(path, path.relative_to(folder).as_posix())
    return out.getvalue()


def _convert(model: Any, fmt: str, calibration: np.ndarray | None) -> bytes:
    """``model`` (an inference model) as the bytes of one format's file."""
    if fmt == "keras":
        return save_model_bytes(model)
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="cnnlab-export-") as folder:
        path = Path(folder) / EXPORT_FORMATS[fmt].filename
        if fmt == "saved_model":
            path = Path(folder) / "saved_model"
            model.export(str(path), format="tf_saved_model", verbose=False)
            return _zip_folder(path)
        options: dict[str, Any] = {}
        if fmt == "litert_int8":
            sample = calibration

            def representative_dataset():
                for image in sample:
                    yield [image[None].astype(np.float32)]

            options = {
                "optimizations": [tf.lite.Optimize.DEFAULT],
                "representative_dataset": representative_dataset,
            }
        model.export(
            str(path), format="onnx" if fmt == "onnx" else "litert", verbose=False, **options
        )
        return path.read_bytes() if path.is_file() else b""


def _short(exc: Exception) -> str:
    """The first line of an exception's message, at most 300 characters."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= 300 else text[:300] + " …"


def load_for_export(model_bytes: bytes) -> Any:
    """The inference model (augmentation layers left out, not compiled) from ``.keras``
    bytes this project saved (``save_model_bytes``)."""
    import keras

    register_layers()
    try:
        with tempfile.TemporaryDirectory(prefix="cnnlab-export-") as folder:
            path = Path(folder) / "model.keras"
            path.write_bytes(model_bytes)
            # compile=False: the file exported is for inference, without optimizer state
            model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras, h5py and zipfile raise many types
        raise ExportError(
            f"The model could not be read back for the export ({_short(exc)}). Train it "
            "again, then export."
        ) from exc
    return inference_model(model)


def convert(model: Any, fmt: str, calibration: np.ndarray | None = None) -> bytes:
    """``model`` (an inference model) as the bytes of a ``fmt`` file, in this process.
    Raises ``ExportError`` when the converter fails or yields an empty file."""
    title = EXPORT_FORMATS[fmt].title
    try:
        data = _convert(model, fmt, calibration)
    except Exception as exc:  # converters raise many types; the learner gets one message
        raise ExportError(
            f"The {title} export failed: {_short(exc)}. The other formats may still work; "
            "a model built from the lab's usual layers converts to all of them."
        ) from exc
    if not data:
        raise ExportError(f"The {title} export produced an empty file; nothing to download.")
    return data


@dataclass(frozen=True)
class ExportCheck:
    """One exported file run by its own runtime beside the Keras model, on the same images.

    ``agreement``: the share of images where both give the same top class; ``accuracy`` and
    ``keras_accuracy``: against the labels (None without labels); ``max_difference``: the
    largest gap between their probabilities; ``error``: the runtime's message when it could
    not run the file (the numbers are then None).
    """

    format: str
    title: str
    runtime: str
    size_bytes: int
    agreement: float | None
    accuracy: float | None
    keras_accuracy: float | None
    max_difference: float | None
    error: str | None = None


def compare_with_keras(
    exported: Exported,
    reference: np.ndarray,
    probabilities: np.ndarray | str,
    labels: np.ndarray | None = None,
) -> ExportCheck:
    """The ``ExportCheck`` of ``exported`` from the Keras model's probabilities
    ``reference`` (N, K) and the file's own (N, K) (or its runtime's error message)."""
    common = {
        "format": exported.format,
        "title": exported.title,
        "runtime": exported.runtime,
        "size_bytes": exported.size_bytes,
    }
    if isinstance(probabilities, str):
        return ExportCheck(
            **common,
            agreement=None,
            accuracy=None,
            keras_accuracy=None,
            max_difference=None,
            error=probabilities,
        )
    reference = np.asarray(reference, np.float64)
    probabilities = np.asarray(probabilities, np.float64)
    if reference.shape != probabilities.shape or not len(reference):
        raise InvalidArgumentError(
            f"Compare probabilities of one shape; got {reference.shape} and {probabilities.shape}."
        )
    top, keras_top = probabilities.argmax(1), reference.argmax(1)
    y = None if labels is None else np.asarray(labels)
    return ExportCheck(
        **common,
        agreement=float(np.mean(top == keras_top)),
        accuracy=None if y is None else float(np.mean(top == y)),
        keras_accuracy=None if y is None else float(np.mean(keras_top == y)),
        max_difference=float(np.abs(probabilities - reference).max()),
    )


# --------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportProgress(TaskProgress):
    """``TaskProgress`` plus the format being converted and those done, in order."""

    formats: tuple[str, ...] = ()
    current: str | None = None
    converted: tuple[str, ...] = ()


class _ExportWorker(TaskWorker[ExportProgress]):
    thread_name = "cnnlab-export"
    process_safe = True

    def __init__(
        self,
        model_bytes: bytes,
        formats: tuple[str, ...],
        calibration: np.ndarray | None,
        check_images: np.ndarray | None,
        *,
        slots: TrainingSlots | None,
        max_seconds: float | None,
        isolate: bool | None,
    ) -> None:
        super().__init__(
            ExportProgress(formats=formats), slots=slots, max_seconds=max_seconds, isolate=isolate
        )
        self.model_bytes = model_bytes
        self.formats = formats
        self.calibration = calibration
        self.check_images = check_images
        self.files: dict[str, bytes] = {}
        #: After the checks: the Keras model's probabilities on ``check_images`` (N, K) and
        #: each format's, or the message of a runtime that could not run its file.
        self.reference: np.ndarray | None = None
        self.checks: dict[str, np.ndarray | str] = {}

    def work(self) -> None:
        model = load_for_export(self.model_bytes)
        for i, fmt in enumerate(self.formats):
            if self.stop_event.is_set():
                return  # stopped: the formats converted so far are kept
            self.update(current=fmt, converted=self.formats[:i])
            self.files[fmt] = convert(model, fmt, self.calibration)
        self.update(current=None, converted=self.formats)
        if self.check_images is None or self.stop_event.is_set():
            return
        x = np.asarray(self.check_images, dtype=np.float32)
        self.reference = np.asarray(model.predict(x, batch_size=RUN_BATCH, verbose=0), np.float32)
        for fmt, data in self.files.items():
            try:
                self.checks[fmt] = _RUNNERS[fmt](data, x)
            except Exception as exc:  # each runtime raises its own types
                title = EXPORT_FORMATS[fmt].title
                self.checks[fmt] = f"{EXPORT_FORMATS[fmt].runtime} could not run the {title} " + (
                    f"file: {_short(exc)}."
                )

    def export_result(self) -> dict[str, Any]:
        return {"files": self.files, "reference": self.reference, "checks": self.checks}

    def import_result(self, result: dict[str, Any]) -> None:
        self.files = dict(result["files"])
        self.reference, self.checks = result["reference"], dict(result["checks"])

    def on_exit(self) -> None:
        self.model_bytes = b""
        self.calibration = self.check_images = None


class ExportJob(TaskHandle[ExportProgress]):
    """Convert ``model`` to ``formats`` in the background (a child process; see the module
    docstring). ``calibration``: (N, H, W, C) raw pixels, required for "litert_int8".
    ``check_images`` (N, H, W, C) raw pixels (e.g. the validation images) and optionally
    their ``check_labels``: after converting, the child runs the Keras model and every file
    in its own runtime on them, so the server never loads a runtime (``checks()``).
    ``slots``: a ``TrainingSlots`` (None: runs at once). ``files()`` once finished."""

    def __init__(
        self,
        model: Any,
        formats: Iterable[str],
        *,
        calibration: np.ndarray | None = None,
        check_images: np.ndarray | None = None,
        check_labels: np.ndarray | None = None,
        slots: TrainingSlots | None = None,
        max_seconds: float | None = None,
        isolate: bool | None = None,
    ) -> None:
        chosen = _formats(formats)
        shape = _input_shape(model)
        sample = None
        if "litert_int8" in chosen:
            if calibration is None:
                raise InvalidArgumentError(
                    "int8 export needs some of your training images to calibrate it "
                    "(calibration=...)."
                )
            sample = calibration_sample(calibration, shape)
        self.formats = chosen
        self.input_shape = shape
        self.num_classes = int(model.output_shape[-1])
        checks = None if check_images is None else _pixels(shape, check_images)
        if check_labels is not None:
            labels = np.asarray(check_labels)
            if checks is None or labels.shape != (len(checks),):
                raise InvalidArgumentError("Give one label per check image.")
        self.check_labels = None if check_labels is None else np.asarray(check_labels, np.int64)
        worker = _ExportWorker(
            save_model_bytes(model),
            chosen,
            sample,
            checks,
            slots=slots,
            max_seconds=max_seconds,
            isolate=isolate,
        )
        super().__init__(worker)

    def files(self) -> dict[str, Exported]:
        """{format: Exported} for every format converted: all of them once finished, those
        done before a Stop when stopped. Raises ``ExportError`` (its message) when the job
        failed."""
        progress = self.snapshot()
        if progress.state == "failed":
            raise ExportError(progress.error or "The export failed.")
        return {
            fmt: Exported(
                fmt, EXPORT_FORMATS[fmt].filename, data, self.input_shape, self.num_classes
            )
            for fmt, data in self._worker.files.items()
        }

    def checks(self) -> list[ExportCheck]:
        """Each converted format run on the check images, in ``EXPORT_FORMATS`` order (empty
        without check images, or before the job finished)."""
        worker = self._worker
        if worker.reference is None:
            return []
        files = self.files()
        return [
            compare_with_keras(files[fmt], worker.reference, worker.checks[fmt], self.check_labels)
            for fmt in EXPORT_FORMATS
            if fmt in worker.checks
        ]


def export_models(
    model: Any,
    formats: Iterable[str],
    *,
    calibration: np.ndarray | None = None,
    max_seconds: float | None = None,
    isolate: bool | None = None,
) -> dict[str, Exported]:
    """Convert ``model`` to every format in ``formats`` in one child process and wait:
    {format: Exported}. Raises ``ExportError`` (or ``InvalidArgumentError`` for a bad
    argument) with a message for the learner."""
    job = ExportJob(
        model, formats, calibration=calibration, max_seconds=max_seconds, isolate=isolate
    ).start()
    progress = job.wait()
    files = job.files()
    if set(files) != set(job.formats):
        raise ExportError(progress.message or "The export was stopped before it finished.")
    return files


def export_model(model: Any, fmt: str, *, calibration: np.ndarray | None = None) -> Exported:
    """``model`` as one file in format ``fmt`` ("keras", "litert", "litert_int8", "onnx" or
    "saved_model": the SavedModel folder zipped), without its augmentation layers.

    ``calibration``: (N, H, W, C) raw pixels like the training images, needed for
    "litert_int8" (up to ``CALIBRATION_IMAGES`` of them are used). Runs in a child process;
    raises ``ExportError`` when the conversion fails (never returns an empty file).
    """
    return export_models(model, [fmt], calibration=calibration)[fmt]


# --------------------------------------------------------------------------------------------
# Running an exported file in its own runtime
# --------------------------------------------------------------------------------------------


def _pixels(input_shape: Sequence[int], images: np.ndarray) -> np.ndarray:
    """``images`` as (N, H, W, C) float32 for a model taking ``input_shape`` (H, W, C)."""
    x = np.asarray(images, dtype=np.float32)
    shape = tuple(input_shape)
    if x.ndim == 3 and shape[-1] == 1:
        x = x[..., None]
    if x.ndim != 4 or tuple(x.shape[1:]) != shape:
        raise InvalidArgumentError(
            f"The exported model takes images shaped (N, {', '.join(map(str, shape))}); got "
            f"{x.shape}."
        )
    return np.ascontiguousarray(x)


def _run_litert(data: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    out = []
    for start in range(0, len(x), RUN_BATCH):
        batch = x[start : start + RUN_BATCH]
        interpreter.resize_tensor_input(source["index"], batch.shape)
        interpreter.allocate_tensors()
        scale, zero = source["quantization"]
        if source["dtype"] != np.float32 and scale:  # an integer input: quantise the pixels
            info = np.iinfo(source["dtype"])
            batch = np.clip(np.round(batch / scale + zero), info.min, info.max)
        interpreter.set_tensor(source["index"], batch.astype(source["dtype"]))
        interpreter.invoke()
        y = interpreter.get_tensor(target["index"]).astype(np.float32)
        scale, zero = target["quantization"]
        if target["dtype"] != np.float32 and scale:
            y = (y - zero) * scale
        out.append(y)
    return np.concatenate(out)


def _run_onnx(data: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out = [
        session.run(None, {name: x[start : start + RUN_BATCH]})[0]
        for start in range(0, len(x), RUN_BATCH)
    ]
    return np.concatenate(out).astype(np.float32)


def _run_saved_model(data: bytes, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="cnnlab-savedmodel-") as folder:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():  # our own zip, but never write outside the folder
                target = (Path(folder) / info.filename).resolve()
                if not target.is_relative_to(Path(folder).resolve()):
                    raise ExportError("The SavedModel zip holds a path outside its folder.")
            zf.extractall(folder)
        loaded = tf.saved_model.load(folder)
        out = [
            np.asarray(loaded.serve(tf.constant(x[start : start + RUN_BATCH])))
            for start in range(0, len(x), RUN_BATCH)
        ]
    return np.concatenate(out).astype(np.float32)


def _run_keras(data: bytes, x: np.ndarray) -> np.ndarray:
    register_layers()
    model = load_model_bytes(data)
    return np.asarray(model.predict(x, batch_size=RUN_BATCH, verbose=0), dtype=np.float32)


_RUNNERS = {
    "keras": _run_keras,
    "litert": _run_litert,
    "litert_int8": _run_litert,
    "onnx": _run_onnx,
    "saved_model": _run_saved_model,
}


def run_exported(exported: Exported, images: np.ndarray) -> np.ndarray:
    """The exported model's probabilities (N, K) float32 for ``images`` (N, H, W, C) raw
    pixels 0…255, computed by the format's own runtime (see the module docstring).

    For files this project exported (``export_model``), not for uploads. Raises
    ``ExportError`` when the runtime cannot run the file.
    """
    x = _pixels(exported.input_shape, images)
    if not len(x):
        return np.zeros((0, exported.num_classes), np.float32)
    try:
        return _RUNNERS[exported.format](exported.data, x)
    except CNNLabError:
        raise
    except Exception as exc:  # each runtime raises its own types
        raise ExportError(
            f"{exported.runtime} could not run the {exported.title} file: {_short(exc)}."
        ) from exc
