"""Untrusted files: zip archives and folder uploads of class folders (``folders``) and
``.keras`` model uploads (``model_files``)."""
