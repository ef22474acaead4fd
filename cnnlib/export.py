"""Public API: a trained model as Keras, LiteRT (float32, int8), ONNX or SavedModel files,
each run by its own runtime (``cnnlib.training.export``)."""

from cnnlib.training.export import (
    EXPORT_FORMATS,
    Exported,
    ExportError,
    export_model,
    export_models,
    run_exported,
)

__all__ = [
    "EXPORT_FORMATS",
    "ExportError",
    "Exported",
    "export_model",
    "export_models",
    "run_exported",
]
