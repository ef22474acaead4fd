"""Untrusted files: zip archives and folder uploads of class folders (``folders``),
``.keras`` model uploads (``model_files``), zips read entry by entry in the sandbox
(``zip_reader``) and saved own-images projects (``bundle``)."""
