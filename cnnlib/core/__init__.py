"""The floor every other package stands on: the project's error types (``errors``), the
limits of this server (``budgets``), text and number formatting (``text``), colour scales
(``colormaps``), returning freed memory to the system (``heap``) and the decoding sandbox
that parses every untrusted file in a limited child process (``sandbox``). No TensorFlow."""
