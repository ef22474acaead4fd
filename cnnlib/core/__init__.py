"""The floor every other package stands on: the project's error types (``errors``), the
limits of this server (``budgets``), text and number formatting (``text``), colour scales
(``colormaps``) and returning freed memory to the system (``heap``). No TensorFlow."""
