"""The weights of an uploaded ``.keras`` file (its ``model.weights.h5``), read with bounded
memory, only where the model's spec says they are.

``read_weights`` opens the HDF5 file with h5py and reads, for each layer with weights
(``cnnlib.models.keras_config.weight_groups``), the datasets "0", "1", … of its group.
Before reading a byte of a dataset it checks:

- the path is made of hard links only (no soft or external links), and ends at a dataset;
- the group holds exactly the datasets the layer has;
- the dataset's shape equals its variable's (computed from the spec) and its type is
  float32;
- its storage is in the file: no external files, no virtual dataset;
- its filters are gzip (deflate) or none, chunks are at most ``MAX_CHUNK_BYTES`` and at
  most ``MAX_CHUNKS`` of them.

Contiguous data is read straight into an array of the checked shape (a dataset whose
storage was never written reads as its fill value, within that array). Chunked data is
read chunk by chunk: its bytes taken from the file where HDF5's chunk index says, and
inflated by ``zlib`` with the output capped at the chunk's size, so a gzip bomb stops at
one chunk (HDF5's own deflate filter would grow its buffer until the stream ends).
Everything else in the file (the optimizer's state, attributes) is never opened.

This runs in the decoding sandbox: h5py and the HDF5 library parse the uploaded bytes.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Sequence

import numpy as np

from cnnlib.core.budgets import format_bytes
from cnnlib.core.errors import InvalidModelError
from cnnlib.models.graph import quoted
from cnnlib.models.keras_config import WeightGroup

__all__ = ["MAX_CHUNKS", "MAX_CHUNK_BYTES", "read_weights"]

#: Largest chunk of a chunked dataset, bytes (h5py's own chunks are ≤ 1 MiB).
MAX_CHUNK_BYTES = 16 * 1024 * 1024
#: Most chunks in one dataset.
MAX_CHUNKS = 65_536
_FLOAT32 = np.dtype("float32")


def _refuse(problem: str) -> InvalidModelError:
    return InvalidModelError(
        f"its weights file (model.weights.h5) {problem} Save your model again with "
        "model.save('name.keras') and upload that file."
    )


def _node(h5py, root, path: str):
    """The object at ``path``, reached through hard links only (None when absent)."""
    node = root
    parts = path.split("/")
    for i, part in enumerate(parts):
        link = node.get(part, getlink=True) if isinstance(node, h5py.Group) else None
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            raise _refuse(f"links {quoted('/'.join(parts[: i + 1]))} to another place or file.")
        node = node[part]
    return node


def _check_storage(h5py, ds, path: str, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The chunk shape of a chunked dataset (None for contiguous or compact storage), after
    every check that does not read its data."""
    if ds.shape != shape:
        raise _refuse(
            f"holds weights of shape {ds.shape} at {quoted(path)}, where the layer has {shape}."
        )
    if ds.dtype.kind != "f" or ds.dtype.itemsize != 4:
        raise _refuse(
            f"holds {quoted(str(ds.dtype))} weights at {quoted(path)}; Keras writes float32."
        )
    plist = ds.id.get_create_plist()
    layout = plist.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        raise _refuse(f"has a virtual dataset at {quoted(path)} (it would read other files).")
    if plist.get_external_count():
        raise _refuse(f"keeps the weights at {quoted(path)} in another file.")
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code != h5py.h5z.FILTER_DEFLATE or plist.get_nfilters() > 1:
            raise _refuse(
                f"compresses the weights at {quoted(path)} with a filter CNN Lab does not read "
                "(only gzip or none)."
            )
    if layout != h5py.h5d.CHUNKED:
        if layout not in (h5py.h5d.CONTIGUOUS, h5py.h5d.COMPACT):
            raise _refuse(f"stores the weights at {quoted(path)} in an unknown layout.")
        return None
    chunk = tuple(plist.get_chunk())
    if len(chunk) != len(shape) or min(chunk, default=1) < 1:
        raise _refuse(f"stores the weights at {quoted(path)} in invalid chunks.")
    chunk_bytes = math.prod(chunk) * 4
    count = math.prod(math.ceil(n / c) for n, c in zip(shape, chunk, strict=True))
    if chunk_bytes > MAX_CHUNK_BYTES or count > MAX_CHUNKS:
        raise _refuse(
            f"stores the weights at {quoted(path)} in {count:,} chunks of "
            f"{format_bytes(chunk_bytes)} "
            f"(at most {MAX_CHUNKS:,} chunks of {format_bytes(MAX_CHUNK_BYTES)} are read)."
        )
    return chunk


def _read_chunked(
    data: bytes, ds, path: str, shape: tuple[int, ...], chunk: tuple[int, ...]
) -> np.ndarray:
    """Chunk by chunk: each chunk's bytes taken from the file at the address HDF5's index
    gives, inflated by zlib with its output capped at the chunk's size. Chunks never
    written read as the fill value."""
    fill = ds.fillvalue
    out = np.full(shape, fill if np.isfinite(fill) else 0.0, dtype=_FLOAT32)
    chunk_bytes = math.prod(chunk) * 4
    limit = math.prod(math.ceil(n / c) for n, c in zip(shape, chunk, strict=True))
    chunks: list = []

    def collect(info) -> int | None:
        chunks.append(info)
        return 1 if len(chunks) > limit else None  # anything but None stops the iteration

    ds.id.chunk_iter(collect)
    if len(chunks) > limit:
        raise _refuse(
            f"lists more chunks for the weights at {quoted(path)} than {limit:,} that fit."
        )
    deflated = ds.id.get_create_plist().get_nfilters() == 1
    view = memoryview(data)
    for info in chunks:
        offset = tuple(info.chunk_offset)
        start, size = info.byte_offset, info.size
        if (
            len(offset) != len(shape)
            or any(o % c or not 0 <= o < n for o, c, n in zip(offset, chunk, shape, strict=True))
            or start is None
            or not 0 <= start <= start + size <= len(data)
        ):
            raise _refuse(f"has a damaged chunk in the weights at {quoted(path)}.")
        if size > chunk_bytes + chunk_bytes // 8 + 1024:
            raise _refuse(
                f"has a compressed chunk at {quoted(path)} of {format_bytes(size)}, far more than "
                f"the {format_bytes(chunk_bytes)} of weights it holds."
            )
        raw = view[start : start + size]
        if deflated and not info.filter_mask & 1:
            inflater = zlib.decompressobj()
            try:
                raw = inflater.decompress(raw, chunk_bytes)
            except zlib.error:
                raise _refuse(f"has a damaged compressed chunk at {quoted(path)}.") from None
            if inflater.unconsumed_tail or not inflater.eof:
                raise _refuse(
                    f"has a compressed chunk at {quoted(path)} that unpacks to more than its "
                    f"{format_bytes(chunk_bytes)}."
                )
        if len(raw) != chunk_bytes:
            raise _refuse(f"has a chunk of the wrong size in the weights at {quoted(path)}.")
        block = np.frombuffer(raw, dtype=ds.dtype).reshape(chunk)
        region = tuple(
            slice(o, min(o + c, n)) for o, c, n in zip(offset, chunk, shape, strict=True)
        )
        out[region] = block[tuple(slice(0, r.stop - r.start) for r in region)]
    return out


def read_weights(data: bytes, groups: Sequence[WeightGroup]) -> list[np.ndarray]:
    """The weight arrays of ``groups`` (one per weight shape, in order), each float32 of
    its checked shape, from the bytes of a ``model.weights.h5``.

    Memory: the arrays themselves plus one chunk. Raises ``InvalidModelError`` for a file
    that is not HDF5, a missing or extra dataset, and every refusal of the module docstring.
    """
    import h5py

    arrays: list[np.ndarray] = []
    try:
        with h5py.File(io.BytesIO(data), "r") as root:
            for group in groups:
                shapes = group.row.weight_shapes
                vars_group = _node(h5py, root, group.group)
                names = list(vars_group.keys()) if isinstance(vars_group, h5py.Group) else []
                if sorted(names) != sorted(str(i) for i in range(len(shapes))):
                    count = f"{len(names)} weight array{'' if len(names) == 1 else 's'}"
                    raise _refuse(
                        f"holds {count} for layer {quoted(group.row.name)}, which has "
                        f"{len(shapes)}."
                    )
                for i, shape in enumerate(shapes):
                    path = f"{group.group}/{i}"
                    ds = _node(h5py, vars_group, str(i))
                    if not isinstance(ds, h5py.Dataset):
                        raise _refuse(f"holds something other than weights at {quoted(path)}.")
                    chunk = _check_storage(h5py, ds, path, shape)
                    if chunk is None:
                        out = np.empty(shape, dtype=_FLOAT32)
                        if out.size:
                            ds.read_direct(out)
                    else:
                        out = _read_chunked(data, ds, path, shape, chunk)
                    if not np.isfinite(out).all():
                        raise _refuse(f"holds weights that are not numbers at {quoted(path)}.")
                    arrays.append(out)
    except InvalidModelError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, zlib.error):
        raise _refuse("is damaged or is not an HDF5 file.") from None
    return arrays
