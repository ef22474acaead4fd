"""Public API: saliency maps (``cnnlib.inspect.saliency``)."""

from cnnlib.inspect.saliency import SaliencyResult, saliency_map, saliency_maps

__all__ = ["SaliencyResult", "saliency_map", "saliency_maps"]
