"""Public API: saliency maps and their sanity check (``cnnlib.inspect.saliency``,
``cnnlib.inspect.sanity``)."""

from cnnlib.inspect.saliency import (
    METHOD_NOTES,
    METHODS,
    MethodNote,
    SaliencyResult,
    saliency_map,
    saliency_maps,
)
from cnnlib.inspect.sanity import CONTROLS, SanityCheck, sanity_check

__all__ = [
    "CONTROLS",
    "METHODS",
    "METHOD_NOTES",
    "MethodNote",
    "SaliencyResult",
    "SanityCheck",
    "saliency_map",
    "saliency_maps",
    "sanity_check",
]
