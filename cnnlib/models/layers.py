"""CNN Lab's layer vocabulary: which Keras layers prepare an input, and CNN Lab's own layer.

- ``AUGMENTATION_LAYERS``: Keras' random image-augmentation layers (each keeps the image's
  shape and is an identity outside training).
- ``PREPROCESSING_LAYERS``: layers that prepare the input inside a model (scaling,
  augmentation, the ImageNet "caffe" preprocessing); they are not feature maps.
- ``CaffePreprocess``: ResNet50/VGG19's ``preprocess_input`` as a layer, registered with
  Keras as ``cnnlab>CaffePreprocess`` so that saved models load (``register_layers``).

Keras is imported only when a layer is made.
"""

from __future__ import annotations

__all__ = [
    "AUGMENTATION_LAYERS",
    "CAFFE_REGISTERED_NAME",
    "PREPROCESSING_LAYERS",
    "caffe_preprocess_layer",
    "is_preprocessing_layer",
    "keras_module",
    "register_layers",
]

#: Keras' random image-augmentation layers a model may hold (class names).
AUGMENTATION_LAYERS = (
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
    "RandomTranslation",
    "RandomContrast",
    "RandomBrightness",
)
#: The registered name of CNN Lab's ``CaffePreprocess`` layer in saved ``.keras`` files.
CAFFE_REGISTERED_NAME = "cnnlab>CaffePreprocess"
#: Layers that prepare the input inside a model (class names): not feature maps.
PREPROCESSING_LAYERS = frozenset(
    {"Rescaling", "Normalization", "Resizing", *AUGMENTATION_LAYERS, "CaffePreprocess"}
)


def keras_module():
    """The ``keras`` module, imported on first use (the one lazy import of Keras)."""
    import keras

    return keras


def is_preprocessing_layer(layer) -> bool:
    """True for a layer that prepares the input (``PREPROCESSING_LAYERS``, or a layer that
    declares ``is_preprocessing = True``, as the backbones' input layers do)."""
    return type(layer).__name__ in PREPROCESSING_LAYERS or bool(
        getattr(layer, "is_preprocessing", False)
    )


def _caffe_layer_class():
    """The registered ``CaffePreprocess`` layer class (defined once, on first use)."""
    keras = keras_module()
    registered = keras.saving.get_registered_object(CAFFE_REGISTERED_NAME)
    if registered is not None:
        return registered

    @keras.saving.register_keras_serializable(package="cnnlab")
    class CaffePreprocess(keras.layers.Layer):
        """ResNet50/VGG19's ``preprocess_input`` as a layer: RGB 0..255 → BGR minus the mean.

        (N, H, W, 3) float32 raw pixels → (N, H, W, 3) float32, exactly
        ``keras.applications.resnet50.preprocess_input``.
        """

        MEAN_BGR = (103.939, 116.779, 123.68)

        def call(self, inputs):
            ops = keras.ops
            x = ops.flip(ops.cast(inputs, self.compute_dtype), axis=-1)
            return x - ops.convert_to_tensor(self.MEAN_BGR, dtype=self.compute_dtype)

    return CaffePreprocess


def register_layers() -> None:
    """Register CNN Lab's own layers (``CaffePreprocess``) so saved models load."""
    _caffe_layer_class()


def caffe_preprocess_layer(name: str = "caffe_preprocess"):
    """A ``CaffePreprocess`` layer (registered as ``cnnlab>CaffePreprocess``)."""
    return _caffe_layer_class()(name=name)
