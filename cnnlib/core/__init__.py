"""The floor every other package stands on: the project's error types (``errors``), checks
of arguments (``checks``: a whole number in range), the limits of this server (``budgets``),
text and number formatting (``text``), colour scales (``colormaps``), returning freed memory
to the system (``heap``), Keras' home folder (``paths``) and the decoding sandbox that parses
every untrusted file in a limited child process (``sandbox``). No TensorFlow."""
