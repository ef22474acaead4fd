"""Convolution by hand: the arithmetic and NumPy operations (``ops``, re-exported here:
``cnnlib.conv.conv2d``, ``cnnlib.conv.conv2d_transpose``, …), the preset kernels
(``kernels``), the Convolution lab's logic and share links (``lab``) and its quiz (``quiz``)."""

from cnnlib.conv.ops import (
    ConvGeometry,
    avg_pool2d,
    conv2d,
    conv2d_transpose,
    dropped_cells,
    effective_kernel_size,
    max_pool2d,
    output_size,
    pad_amounts,
    relu,
    transpose_grid,
    transpose_output_size,
    transpose_pad_amounts,
)

__all__ = [
    "ConvGeometry",
    "avg_pool2d",
    "conv2d",
    "conv2d_transpose",
    "dropped_cells",
    "effective_kernel_size",
    "max_pool2d",
    "output_size",
    "pad_amounts",
    "relu",
    "transpose_grid",
    "transpose_output_size",
    "transpose_pad_amounts",
]
