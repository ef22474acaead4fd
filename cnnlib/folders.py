"""Public API: your own images from a zip of class folders (``cnnlib.uploads.folders``)."""

from cnnlib.uploads.folders import open_archive, open_files, train_from_archive

__all__ = ["open_archive", "open_files", "train_from_archive"]
