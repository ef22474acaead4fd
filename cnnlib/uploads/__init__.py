"""Untrusted files: zip archives and folder uploads of class folders (``folders``) and
``.keras`` model uploads (``model_files``: read in the decoding sandbox and rebuilt from
CNN Lab's own spec; ``model_weights``: their HDF5 weights, read with bounded memory)."""
