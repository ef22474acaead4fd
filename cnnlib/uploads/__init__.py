"""Untrusted files: zip archives and folder uploads of class folders (``folders``), zips
read entry by entry in the sandbox (``zip_reader``), ``.keras`` model uploads
(``model_files``: read in the decoding sandbox and rebuilt from CNN Lab's own spec;
``model_weights``: their HDF5 weights, read with bounded memory) and saved own-images
projects (``bundle``)."""
