"""CNN Lab's logic: convolution, kernels, images, data, models, training, features.

Importable and testable without Streamlit; TensorFlow is imported lazily, only by the
modules that need it (``data`` for Keras' download, ``models``, ``training``, ``features``,
``imagenet``).
"""
