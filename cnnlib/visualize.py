"""Public API: what a filter wants to see (``cnnlib.inspect.visualize``)."""

from cnnlib.inspect.visualize import FilterImage, maximize_activation

__all__ = ["FilterImage", "maximize_activation"]
