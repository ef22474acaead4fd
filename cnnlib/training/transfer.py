"""Recipes for your own images: a convnet from scratch, or transfer learning from a backbone.

Every model here takes RAW pixels (N, H, W, 3) float32 0..255 and owns its preprocessing
(``Rescaling(1/255)``, or the backbone's own ``preprocess_input`` as a layer) and its
augmentation layers, so a saved ``.keras`` predicts from raw pixels and loads with
``safe_mode=True``.

Transfer learning is fast on a CPU because the backbone is frozen: ``extract_features``
runs it once per image (and once per augmented copy made before extraction, as Create ML
does), the new head trains on those cached features, and ``assemble`` puts preprocessing,
backbone and the trained head back into one model. Backbones load their ImageNet weights
offline-safe (``cnnlib.models.pretrained``); without weights, ``WeightsUnavailableError``.

Keras and TensorFlow are imported inside the functions.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlib.core.budgets import budgets, format_bytes
from cnnlib.core.checks import is_whole
from cnnlib.core.errors import InvalidArgumentError, WeightsUnavailableError, WorkStopped
from cnnlib.inspect.health import CamProbe, LayerProbe
from cnnlib.models.layers import caffe_preprocess_layer
from cnnlib.models.layers import keras_module as _keras
from cnnlib.models.pretrained import (
    MOBILENETV2_NOTOP,
    RESNET50_NOTOP,
    VGG19_NOTOP,
    PretrainedModel,
    WeightsSpec,
    _load,
    how_to_provide,
    keras_cache_dir,
)
from cnnlib.training import onnx_features
from cnnlib.training.backends import backend_for
from cnnlib.training.tasks import TaskHandle, TrainingSlots, default_slots
from cnnlib.training.trainer import (
    CAM_IMAGES,
    HEALTH_IMAGES,
    Phase,
    TrainConfig,
    TrainingProgress,
    TrainingWorker,
    cam_probe,
    choose_strategy,
    fit_phases,
    health_batch,
    health_callback,
    mixed_precision_helps,
    new_stage,
)

__all__ = [
    "AUGMENTATIONS",
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "RECIPES",
    "RESNET50_NOTOP",
    "Backbone",
    "FeatureData",
    "FeatureSet",
    "OwnImagesJob",
    "OwnImagesRecipe",
    "OwnProgress",
    "WeightsStatus",
    "assemble",
    "augmentation",
    "build_head",
    "build_scratch_model",
    "confidence_sentence",
    "copy_head",
    "extract_features",
    "feature_extractor",
    "frozen_extractor",
    "labels_text",
    "load_backbone",
    "model_input",
    "predict_image",
    "prediction_snippet",
    "preview_augmentation",
    "require_weights",
    "top_block_layers",
    "transfer_model",
    "unfreeze_top",
    "uses_backbone",
    "weights_status",
]

#: The augmentations a model can use, in the order its layers apply them.
AUGMENTATIONS: tuple[str, ...] = ("flip", "rotation", "zoom", "translation", "contrast")
#: Learning rate of the optional fine-tuning phase (keras-io's transfer-learning guide).
FINE_TUNE_LR = 1e-5


@dataclass(frozen=True)
class Backbone:
    """A frozen feature extractor: its weights file, its preprocessing and its top block."""

    name: str
    spec: WeightsSpec
    #: "tf" (scale to [-1, 1]) or "caffe" (RGB→BGR, ImageNet mean subtracted).
    preprocessing: str
    #: Name prefix of the first layer of the top block (unfrozen when fine-tuning).
    top_block: str
    #: keras.applications constructor name.
    constructor: str
    min_side: int = 32


BACKBONES: dict[str, Backbone] = {
    "MobileNetV2": Backbone("MobileNetV2", MOBILENETV2_NOTOP, "tf", "block_16", "MobileNetV2"),
    "ResNet50": Backbone("ResNet50", RESNET50_NOTOP, "caffe", "conv5_block3", "ResNet50"),
    "VGG19": Backbone("VGG19", VGG19_NOTOP, "caffe", "block5", "VGG19"),
}
DEFAULT_BACKBONE = "MobileNetV2"


def _preprocess_layer(backbone: Backbone):
    keras = _keras()
    if backbone.preprocessing == "caffe":
        return caffe_preprocess_layer()
    return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="mobilenet_preprocess")


def _kinds(augment: bool | Sequence[str]) -> tuple[str, ...]:
    """The augmentation kinds asked for: ``True`` = all, ``False`` = none, or a list of them."""
    if isinstance(augment, bool):
        return AUGMENTATIONS if augment else ()
    kinds = tuple(augment)
    unknown = [k for k in kinds if k not in AUGMENTATIONS]
    if unknown:
        raise InvalidArgumentError(
            f"Unknown augmentation(s) {unknown}; choose from {', '.join(AUGMENTATIONS)}."
        )
    return tuple(k for k in AUGMENTATIONS if k in kinds)


def augmentation(
    seed: int | None = None,
    name: str = "augmentation",
    kinds: bool | Sequence[str] = AUGMENTATIONS,
):
    """The augmentation layers (active only in training): flip, rotate, zoom, shift, contrast.

    ``kinds``: which of ``AUGMENTATIONS`` (in that order; ``True`` = all). Works on raw
    pixels 0..255 (RandomContrast's value range). (N, H, W, 3) → (N, H, W, 3).
    """
    keras = _keras()
    layers = keras.layers
    make = {
        "flip": lambda: layers.RandomFlip("horizontal", seed=seed),
        "rotation": lambda: layers.RandomRotation(0.1, seed=seed),
        "zoom": lambda: layers.RandomZoom(0.1, seed=seed),
        "translation": lambda: layers.RandomTranslation(0.1, 0.1, seed=seed),
        "contrast": lambda: layers.RandomContrast(0.2, value_range=(0, 255), seed=seed),
    }
    chosen = _kinds(kinds)
    if not chosen:
        raise InvalidArgumentError("Choose at least one augmentation.")
    return keras.Sequential([make[k]() for k in chosen], name=name)


def preview_augmentation(
    images: np.ndarray, kinds: bool | Sequence[str] = AUGMENTATIONS, *, copies: int = 4, seed=0
) -> np.ndarray:
    """Augmented copies of a few images, made by the model's own augmentation layers.

    ``images``: (N, H, W, 3) raw pixels 0..255 (N ≤ 16). Returns (N, copies, H, W, 3) uint8:
    the layers run with ``training=True`` (as in ``fit``), ``copies`` times.
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] != 3 or not 1 <= len(x) <= 16 or not 1 <= copies <= 8:
        raise InvalidArgumentError(
            f"Preview needs 1..16 RGB images and 1..8 copies; got {x.shape}, {copies} copies."
        )
    layer = augmentation(seed, "augmentation_preview", kinds)
    out = [np.asarray(layer(x, training=True)) for _ in range(copies)]
    return np.clip(np.round(np.stack(out, axis=1)), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# From scratch
# --------------------------------------------------------------------------------------------


def build_scratch_model(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    augment: bool | Sequence[str] = False,
    seed: int | None = None,
):
    """The tutorial's convnet for (H, W, 3) raw pixels and ``num_classes`` classes.

    [augmentation] → Rescaling(1/255) → Conv2D(32, 3)/MaxPool → Conv2D(64, 3)/MaxPool →
    Conv2D(128, 3)/MaxPool → Dropout(0.5) → Flatten → Dense(128) → Dropout(0.5) →
    Dense(num_classes, softmax). Compiled with adam and sparse categorical cross-entropy.
    ``augment``: True (all of ``AUGMENTATIONS``) or a list of them; off by default, as in
    the tutorial: on 3,000 Fashion-MNIST images the augmentation layers cost 9 points of
    validation accuracy after 3 epochs (benchmarks/own_images_bench.py); they pay off on
    small sets trained for longer.
    """
    keras = _keras()
    layers = keras.layers
    if min(input_shape[:2]) < 22:
        raise InvalidArgumentError(
            f"Images of {input_shape[0]}×{input_shape[1]} are too small for three "
            "convolution/pooling stages; use an image size of at least 22."
        )
    stack = [keras.Input(input_shape)]
    if _kinds(augment):
        stack.append(augmentation(seed, kinds=augment))
    stack += [layers.Rescaling(1 / 255)]
    for filters in (32, 64, 128):
        stack += [layers.Conv2D(filters, 3, activation="relu"), layers.MaxPooling2D()]
    stack += [
        layers.Dropout(0.5, seed=seed),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5, seed=seed),
        layers.Dense(num_classes, activation="softmax"),
    ]
    model = keras.Sequential(stack, name="scratch_convnet")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# --------------------------------------------------------------------------------------------
# Backbones and features
# --------------------------------------------------------------------------------------------


def _backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise InvalidArgumentError(
            f"Unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}."
        )
    return BACKBONES[name]


def load_backbone(
    name: str = DEFAULT_BACKBONE,
    input_shape: tuple[int, int, int] = (224, 224, 3),
    weights: str | os.PathLike | None = "imagenet",
) -> PretrainedModel:
    """The backbone without its classifier, frozen, with where its weights came from.

    ``weights``: "imagenet" (``$CNNLAB_<NAME>_WEIGHTS`` if set, else Keras' cache/download,
    hash-checked where Keras publishes a hash), a path to a weights file, or ``None`` (random
    weights, for tests and timing only; ``weights_source`` says so). Raises
    ``WeightsUnavailableError`` when the weights cannot be had.
    """
    backbone = _backbone(name)
    h, w, _ = input_shape
    if min(h, w) < backbone.min_side:
        raise InvalidArgumentError(
            f"{name} needs images of at least {backbone.min_side}×{backbone.min_side}; "
            f"got {h}×{w}. Choose a larger image size."
        )

    def build():
        keras = _keras()
        return getattr(keras.applications, backbone.constructor)(
            weights=None, include_top=False, input_shape=tuple(input_shape)
        )

    loaded = _load(backbone.spec, weights, build)
    loaded.model.trainable = False
    return loaded


def feature_extractor(backbone: PretrainedModel, name: str | None = None):
    """Raw pixels (N, H, W, 3) 0..255 → pooled features (N, D): preprocess, backbone, GAP."""
    keras = _keras()
    spec = _backbone(name or _backbone_name(backbone))
    inputs = keras.Input(backbone.model.input_shape[1:])
    x = _preprocess_layer(spec)(inputs)
    x = backbone.model(x, training=False)
    outputs = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, outputs, name="feature_extractor")


def frozen_extractor(backbone: PretrainedModel, name: str | None = None):
    """(extractor, runtime) for ``extract_features``: ``feature_extractor(backbone, name)``
    as it is (runtime "TensorFlow") or converted for ONNX Runtime (runtime "ONNX Runtime",
    with the conversion's seconds), as ``onnx_features.feature_runtime()`` chooses."""
    extractor = feature_extractor(backbone, name)
    if onnx_features.feature_runtime() == "tensorflow":
        return extractor, "TensorFlow"
    fast = onnx_features.onnx_extractor(extractor, backbone.weights_path)
    converted = f"converted in {fast.convert_seconds:.1f} s" if fast.convert_seconds else "cached"
    return fast, f"ONNX Runtime ({converted})"


def _backbone_name(backbone: PretrainedModel) -> str:
    for name, b in BACKBONES.items():
        if b.spec == backbone.spec:
            return name
    raise InvalidArgumentError(f"{backbone.name} is not one of {', '.join(BACKBONES)}.")


@dataclass
class FeatureSet:
    """Pooled backbone features, computed once: train copies first, then validation."""

    #: (N_train × (1 + augment_copies), D) float32; copy 0 is the plain images.
    train_x: np.ndarray
    train_y: np.ndarray
    #: (N_val, D) float32.
    val_x: np.ndarray
    val_y: np.ndarray
    augment_copies: int
    seconds: float

    @property
    def nbytes(self) -> int:
        return self.train_x.nbytes + self.val_x.nbytes


def extract_features(
    extractor,
    data,
    *,
    augment_copies: int = 0,
    batch_size: int = 32,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
    max_bytes: int | None = None,
    kinds: bool | Sequence[str] = AUGMENTATIONS,
) -> FeatureSet:
    """Run the frozen ``extractor`` once over every image (and ``augment_copies`` augmented
    copies of the training images, augmented before extraction).

    ``extractor``: raw pixels (N, H, W, 3) → (N, D) (``feature_extractor``, or its ONNX
    Runtime twin from ``frozen_extractor``), or a
    ``PretrainedModel`` from ``load_backbone`` (wrapped by ``feature_extractor``). ``data``: a
    ``TrainingData``. The feature arrays' size is checked against ``max_bytes`` (default
    ``budgets().feature_bytes``, $CNNLAB_FEATURE_BYTES) before any work.
    ``progress("features", done, total)`` is called after each batch, counting images.
    ``kinds``: the augmentations of the copies (see ``augmentation``).
    """
    keras = _keras()
    if isinstance(extractor, PretrainedModel):
        extractor = feature_extractor(extractor)
    if not 0 <= augment_copies <= 20:
        raise InvalidArgumentError(f"augment_copies must be 0..20, got {augment_copies}.")
    budget = max_bytes or budgets().feature_bytes
    dim = int(extractor.output_shape[-1])
    n_train, n_val = data.size("train"), data.size("validation")
    total = n_train * (1 + augment_copies) + n_val
    if total * dim * 4 > budget:
        raise InvalidArgumentError(
            f"{total:,} feature vectors of {dim} numbers need {format_bytes(total * dim * 4)}, "
            f"over the {format_bytes(budget)} budget. Use fewer augmented copies or images."
        )
    start = time.perf_counter()
    augmenter = None
    if augment_copies:
        import tensorflow as tf

        layers = augmentation(seed, kinds=kinds)
        # Compiled: about half the time of eager calls (32 images at 96 px: 0.03 s vs 0.06 s).
        augmenter = tf.function(lambda images: layers(images, training=True))
    done = 0

    def run(split: str, augmented: bool):
        nonlocal done
        xs, ys = [], []
        for images, labels in data.batches(split, batch_size, shuffle=False):
            if augmented:
                images = augmenter(images)
            xs.append(np.asarray(extractor.predict_on_batch(images), dtype=np.float32))
            ys.append(np.asarray(labels, dtype=np.int32))
            done += len(ys[-1])
            if progress is not None:
                progress("features", done, total)
        if not xs:
            return np.zeros((0, dim), np.float32), np.zeros(0, np.int32)
        return np.concatenate(xs), np.concatenate(ys)

    keras.utils.set_random_seed(seed)
    parts = [run("train", False)] + [run("train", True) for _ in range(augment_copies)]
    val_x, val_y = run("validation", False)
    return FeatureSet(
        train_x=np.concatenate([p[0] for p in parts]),
        train_y=np.concatenate([p[1] for p in parts]),
        val_x=val_x,
        val_y=val_y,
        augment_copies=augment_copies,
        seconds=time.perf_counter() - start,
    )


def build_head(feature_dim: int, num_classes: int, *, dropout: float = 0.2, seed=None):
    """The new classifier on pooled features: (N, D) → Dropout → Dense softmax (N, classes)."""
    keras = _keras()
    inputs = keras.Input((feature_dim,))
    x = keras.layers.Dropout(dropout, seed=seed, name="head_dropout")(inputs)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    head = keras.Model(inputs, outputs, name="head")
    head.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return head


def transfer_model(
    backbone: str,
    input_shape: Sequence[int],
    classes: int,
    *,
    augment: bool | Sequence[str] = False,
    dropout: float = 0.2,
    seed=None,
):
    """The network ``assemble`` fills, with fresh weights: [augmentation] → preprocess →
    ``backbone``'s layers (frozen) → GAP → Dropout → Dense softmax, compiled.

    (N, H, W, 3) float32 0..255 (``input_shape`` (H, W, 3)) → (N, ``classes``). The backbone
    is built on the preprocessed input (``input_tensor=``), so its layers are the model's own
    (Grad-CAM and Feature maps reach its last convolution); frozen BatchNorm runs in
    inference mode.
    """
    keras = _keras()
    spec = _backbone(backbone)
    inputs = keras.Input(tuple(input_shape), name="pixels")
    x = augmentation(seed, kinds=augment)(inputs) if _kinds(augment) else inputs
    x = _preprocess_layer(spec)(x)
    flat = getattr(keras.applications, spec.constructor)(
        weights=None, include_top=False, input_tensor=x
    )
    for layer in flat.layers:
        if layer.weights and layer.name != "augmentation":
            layer.trainable = False
    x = keras.layers.GlobalAveragePooling2D(name="pool")(flat.output)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name=f"{spec.name.lower()}_transfer")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def assemble(backbone: PretrainedModel, head, *, augment: bool | Sequence[str] = False, seed=None):
    """One flat model from raw pixels: ``transfer_model`` with the backbone's weights copied
    layer by layer and the head's trained weights copied in (``copy_head``).

    (N, H, W, 3) float32 0..255 → (N, classes).
    """
    model = transfer_model(
        _backbone_name(backbone),
        backbone.model.input_shape[1:],
        head.get_layer("predictions").units,
        augment=augment,
        dropout=head.get_layer("head_dropout").rate,
        seed=seed,
    )
    for layer in backbone.model.layers:
        if layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    copy_head(head, model)
    return model


def _top_block_start(model, backbone: str) -> int:
    """Index in ``model.layers`` of the first layer of ``backbone``'s top block."""
    spec = _backbone(backbone)
    names = [layer.name for layer in model.layers]
    first = next((i for i, n in enumerate(names) if n.startswith(spec.top_block)), None)
    if first is None:
        raise InvalidArgumentError(f"The model has no {backbone} top block ({spec.top_block}).")
    return first


def unfreeze_top(model, backbone: str = DEFAULT_BACKBONE) -> int:
    """In an ``assemble``d model, make the backbone's top block (from the first layer named
    ``top_block``…) and the head trainable, everything before it and every BatchNorm frozen.
    Returns the number of layers from the top block on."""
    keras = _keras()
    first = _top_block_start(model, backbone)
    for i, layer in enumerate(model.layers):
        layer.trainable = i >= first and not isinstance(layer, keras.layers.BatchNormalization)
    return len(model.layers) - first


def top_block_layers(model, backbone: str = DEFAULT_BACKBONE) -> list[str]:
    """The names of an ``assemble``d model's layers from ``backbone``'s top block on that
    have a kernel or end in a ReLU: what fine-tuning trains (``unfreeze_top``), as a
    ``LayerProbe`` probes it."""
    first = _top_block_start(model, backbone)
    names = set(LayerProbe.probed(model))
    return [layer.name for layer in model.layers[first:] if layer.name in names]


def copy_head(head, model) -> None:
    """Copy the trained ``head``'s classifier weights into the ``assemble``d ``model``."""
    model.get_layer("predictions").set_weights(head.get_layer("predictions").get_weights())


# --------------------------------------------------------------------------------------------
# Weights status, the recipe, cached features as training data, and the background job
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightsStatus:
    """Whether a backbone's ImageNet weights can be had here without a download.

    ``available``: a local file exists (``$CNNLAB_<NAME>_WEIGHTS`` or Keras' cache);
    ``source``: where it is; ``message``: for the learner (how to provide them when absent).
    Whether the file is Keras' own is known only once loaded (``weights_verified``).
    """

    backbone: str
    available: bool
    source: str
    message: str


def weights_status(name: str = DEFAULT_BACKBONE) -> WeightsStatus:
    """Look for ``name``'s weights file (environment variable, then Keras' cache); no download."""

    spec = _backbone(name).spec
    env = os.environ.get(spec.env_var, "").strip()
    if env:
        path = Path(env).expanduser()
        if path.is_file():
            return WeightsStatus(name, True, f"`{path}` (from `{spec.env_var}`)", "")
        message = f"`{spec.env_var}` names `{path}`, which is not a file. " + how_to_provide(spec)
        return WeightsStatus(name, False, "", message)
    cached = keras_cache_dir() / spec.file_name
    if cached.is_file():
        return WeightsStatus(name, True, f"Keras' cache `{cached}`", "")
    message = (
        f"No ImageNet weights for {name} on this server (no internet access to download "
        "them). " + how_to_provide(spec)
    )
    return WeightsStatus(name, False, "", message)


def require_weights(name: str, weights: str | os.PathLike | None) -> None:
    """Before a training starts: raise ``WeightsUnavailableError`` (with how to provide them)
    when ``weights`` is "imagenet" and ``weights_status(name)`` finds no local file, or a path
    that is not a file. None (random weights, for tests and timing) passes."""
    if weights is None:
        return
    if isinstance(weights, str) and weights == "imagenet":
        status = weights_status(name)
        if not status.available:
            raise WeightsUnavailableError(status.message)
    elif not Path(weights).expanduser().is_file():
        raise WeightsUnavailableError(
            f"The weights file `{weights}` for {name} does not exist. "
            + how_to_provide(_backbone(name).spec)
        )


#: The two ways to train on your own images.
RECIPES: tuple[str, ...] = ("scratch", "transfer")


def uses_backbone(recipe: str) -> bool:
    """The one rule of the recipes: a backbone, augmented copies of its features and
    fine-tuning exist for "transfer" only ("scratch" trains the tutorial's convnet)."""
    return recipe == "transfer"


@dataclass(frozen=True)
class OwnImagesRecipe:
    """How to train on your own images: every setting of the page, one name each, checked
    once, from the widgets to the training's child process.

    ``recipe``: "scratch" (``build_scratch_model``) or "transfer" (the frozen ``backbone``,
    ImageNet ``weights``: "imagenet" = ``$CNNLAB_<NAME>_WEIGHTS`` or Keras' cache, or a path to
    a weights file, or None = random weights, for tests and timing only). ``image_size``: the
    side the images are resized to (pixels); ``validation_fraction``: share of each class
    held out for validation; ``test_fraction``: share of each class set aside as a held-out
    test, never seen in training nor used to pick the model. ``augment``: augmentation
    kinds (``AUGMENTATIONS``; layers in the scratch model, the copies' kinds for transfer);
    ``augment_copies``: augmented copies per training image whose features are extracted;
    ``fine_tune_epochs``: epochs with the backbone's top block unfrozen at ``FINE_TUNE_LR``,
    after the head's ``epochs``. Copies and fine-tuning apply to transfer only
    (``uses_backbone``): for "scratch" they are 0, and
    so are the copies without augmentation kinds.
    ``epochs``, ``learning_rate``, ``patience``, ``batch_size`` and ``seed`` as in
    ``cnnlib.training.trainer.TrainConfig`` (``train_config()``).
    """

    recipe: str = "scratch"
    backbone: str = DEFAULT_BACKBONE
    weights: str | os.PathLike | None = "imagenet"
    image_size: int = 64
    validation_fraction: float = 0.2
    test_fraction: float = 0.0
    augment: tuple[str, ...] = ()
    augment_copies: int = 0
    epochs: int = 5
    learning_rate: float = 1e-3
    patience: int = 3
    batch_size: int = 32
    fine_tune_epochs: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise InvalidArgumentError(
                f"recipe must be 'scratch' or 'transfer', got {self.recipe!r}."
            )
        _backbone(self.backbone)
        if not is_whole(self.image_size, 8, 1024):
            raise InvalidArgumentError(
                f"The image size must be a whole number of pixels from 8 to 1024; got "
                f"{self.image_size!r}."
            )
        if not 0.0 <= self.validation_fraction < 1.0:
            raise InvalidArgumentError(
                "The validation split must be at least 0 and below 1; got "
                f"{self.validation_fraction!r}."
            )
        if not 0.0 <= self.test_fraction < 1.0 - self.validation_fraction:
            raise InvalidArgumentError(
                "The test share must be at least 0 and leave images to train on beside the "
                f"validation split; got {self.test_fraction!r} with "
                f"{self.validation_fraction!r}."
            )
        if not is_whole(self.augment_copies, 0, 20) or not is_whole(self.fine_tune_epochs, 0, 100):
            raise InvalidArgumentError("augment_copies must be 0..20, fine_tune_epochs 0..100.")
        object.__setattr__(self, "augment", _kinds(self.augment))
        if not uses_backbone(self.recipe):
            object.__setattr__(self, "fine_tune_epochs", 0)
        if not uses_backbone(self.recipe) or not self.augment:
            object.__setattr__(self, "augment_copies", 0)
        self.train_config()  # epochs, learning rate, patience, batch size and seed checked

    @property
    def transfer(self) -> bool:
        return uses_backbone(self.recipe)

    @property
    def label(self) -> str:
        """The model's name for the learner: "From scratch", or the backbone's."""
        return self.backbone if self.transfer else "From scratch"

    def train_config(self) -> TrainConfig:
        """The ``TrainConfig`` of the head's (or the scratch model's) epochs."""
        return TrainConfig(
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            epochs=self.epochs,
            patience=self.patience,
            seed=self.seed,
        )

    @property
    def model_augment(self) -> tuple[str, ...]:
        """The augmentation layers inside a transfer model: the recipe's when it fine-tunes
        (images then pass through the model in training), else none (the head trains on
        features of augmented copies)."""
        return self.augment if self.fine_tune_epochs > 0 else ()

    def stage_learning_rate(self, stage: str) -> float:
        """The learning rate a stage starts at: ``FINE_TUNE_LR`` for "fine-tune", else
        ``learning_rate`` (the head's, or the scratch model's)."""
        return FINE_TUNE_LR if stage == "fine-tune" else self.learning_rate

    def fine_tune_phase(self) -> Phase:
        """The fine-tuning phase: the backbone's top block unfrozen, at ``FINE_TUNE_LR``."""
        unfreeze = functools.partial(unfreeze_top, backbone=self.backbone)
        return Phase(self.fine_tune_epochs, FINE_TUNE_LR, unfreeze, "Fine-tuning")


class FeatureData:
    """A ``FeatureSet`` as the training core's ``TrainingData``: (N, D) features, labels.

    ``input_shape`` is (D,): the head's input. "train" holds every copy's features.
    """

    def __init__(self, features: FeatureSet, class_names: Sequence[str]) -> None:
        self.features = features
        self.class_names = tuple(class_names)
        self.input_shape = (int(features.train_x.shape[1]),)

    def _arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        f = self.features
        if split == "train":
            return f.train_x, f.train_y
        if split == "validation":
            return f.val_x, f.val_y
        if split == "test":
            return f.val_x[:0], f.val_y[:0]
        raise InvalidArgumentError(f"Unknown split {split!r}.")

    def size(self, split: str) -> int:
        return len(self._arrays(split)[1])

    def counts(self, split: str) -> dict[str, int]:
        per = np.bincount(self._arrays(split)[1], minlength=len(self.class_names))
        return {name: int(per[i]) for i, name in enumerate(self.class_names)}

    def batches(self, split: str, batch_size: int, *, epochs: int = 1, seed: int = 0, shuffle=None):
        """(features (B, D) float32, labels (B,) int32); "train" shuffled per (seed, epoch)."""
        import tensorflow as tf

        x, y = self._arrays(split)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if (split == "train") if shuffle is None else shuffle:
            ds = ds.shuffle(max(1, len(y)), seed=seed, reshuffle_each_iteration=True)
            return ds.batch(batch_size).repeat(epochs).prefetch(tf.data.AUTOTUNE)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


@dataclass(frozen=True)
class OwnProgress(TrainingProgress):
    """``TrainingProgress`` plus the own-images stages.

    ``stage``: "loading" (the backbone, converted for ONNX Runtime where that runs the
    features: ``feature_runtime``), "features" (the one-off extraction, ``features_done``
    of ``features_total`` images), "head" (the new head's epochs on cached features),
    "fine-tune" (the top block unfrozen, on images) or "scratch". The curves are those of
    the current stage; ``head_val_accuracy`` keeps the head's before a fine-tune.
    """

    stage: str = "queued"
    features_done: int = 0
    features_total: int = 0
    extract_seconds: float = 0.0
    #: What computed the features: "TensorFlow", or "ONNX Runtime (converted in 2.6 s)".
    feature_runtime: str | None = None
    weights_source: str | None = None
    weights_verified: bool = False
    head_val_accuracy: tuple[float, ...] = ()


class _OwnImagesWorker(TrainingWorker):
    """``OwnImagesJob``'s side: each stage composes ``fit_phases``. No link to the handle."""

    thread_name = "cnnlab-own-images"

    def __init__(
        self, data, recipe: OwnImagesRecipe, slots, max_seconds, isolate=None, health=False
    ) -> None:
        super().__init__(
            OwnProgress(epochs=recipe.epochs),
            slots=slots,
            max_seconds=max_seconds,
            isolate=isolate,
        )
        self.data = data
        self.recipe = recipe
        self.health = health
        self.fine_tuned = False  # the top block was unfrozen and trained
        self.held_seconds = 0.0  # seconds the feature extraction was held by Pause

    def on_exit(self) -> None:
        self.data = None  # free the data; the model stays

    def export_result(self) -> dict:
        """In the child: a transfer model as its weights (``transfer_model`` rebuilds the
        rest where they arrive: no ``.keras`` file written and parsed, about 2 s less on a
        2-core machine for MobileNetV2); a scratch model as ``.keras`` bytes."""
        if not self.recipe.transfer or self.model is None:
            return super().export_result()
        return {
            "weights": self.model.get_weights(),
            "input_shape": tuple(self.model.input_shape[1:]),
            "classes": int(self.model.output_shape[-1]),
            "fine_tuned": self.fine_tuned,
        }

    def _run_work(self) -> None:
        """In the server, when the work leaves this process: build the network its weights
        will fill (``import_result``) in the meantime, on a core the work's first steps
        leave idle (loading and converting the backbone run on one)."""
        self._network = None
        if self.recipe.transfer and backend_for(self).name != "thread":
            shape, classes = tuple(self.data.input_shape), len(self.data.class_names)
            pool = ThreadPoolExecutor(1, thread_name_prefix="cnnlab-own-network")
            self._network = pool.submit(self._new_network, shape, classes)
            pool.shutdown(wait=False)  # the build goes on; nothing else is queued
        super()._run_work()

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_network", None)  # the server's own
        return state

    def _new_network(self, input_shape: tuple, classes: int):
        """``transfer_model`` for this recipe's result: (H, W, 3) pixels → ``classes``."""
        r = self.recipe
        return transfer_model(
            r.backbone, input_shape, classes, augment=r.model_augment, seed=r.seed
        )

    def import_result(self, result: dict) -> None:
        """In the parent: the child's model, rebuilt from its weights (or loaded): into the
        network built ahead (``_run_work``) when it has the same shapes."""
        if "weights" not in result:
            return super().import_result(result)
        shape, classes = tuple(result["input_shape"]), int(result["classes"])
        network = getattr(self, "_network", None)
        self._network = None
        model = network.result() if network is not None else None
        if model is None or (tuple(model.input_shape[1:]), model.output_shape[-1]) != (
            shape,
            classes,
        ):
            model = self._new_network(shape, classes)
        model.set_weights(result["weights"])
        if result["fine_tuned"]:
            unfreeze_top(model, self.recipe.backbone)
        self.model = model

    def _health(self, model, x, y, *, layers=None, cams: CamProbe | None = None, before=None):
        """[the health callback of ``model`` on the fixed batch (x, y)] when asked for."""
        if not self.health:
            return []
        return [health_callback(self, LayerProbe(model, x, y, layers=layers), cams, before=before)]

    def work(self) -> None:
        images, r = self.data, self.recipe
        self.data = None
        strategy, device = choose_strategy()
        mixed = mixed_precision_helps()
        self.describe_device(strategy, device, mixed)
        self.update(class_names=tuple(images.class_names))
        config, n_classes = r.train_config(), len(images.class_names)
        fit = functools.partial(
            fit_phases,
            stop=self.stop_event,
            report=self,
            strategy=strategy,
            mixed=mixed,
            control=self.control,
        )
        fixed = health_batch(images) if self.health else None  # first validation images
        if not r.transfer:
            self.update(stage="scratch")
            with strategy.scope():
                model = build_scratch_model(
                    images.input_shape, n_classes, augment=r.augment, seed=r.seed
                )
            self.model = model
            watch = self._health(model, *fixed, cams=cam_probe(model, *fixed)) if fixed else []
            if fit(model, images, config.plan(), config, callbacks=watch).batches == 0:
                self.model = None  # stopped before the first batch: nothing learned
            return
        self.update(stage="loading")
        loaded = load_backbone(r.backbone, images.input_shape, r.weights)
        extractor, runtime = frozen_extractor(loaded, r.backbone)
        total = images.size("train") * (1 + r.augment_copies) + images.size("validation")
        self.update(
            stage="features",
            features_total=total,
            feature_runtime=runtime,
            weights_source=loaded.weights_source,
            weights_verified=loaded.imagenet_verified,
        )
        try:
            features = extract_features(
                extractor,
                images,
                augment_copies=r.augment_copies,
                batch_size=config.batch_size,
                seed=config.seed,
                progress=self._extracted,
                kinds=r.augment,
            )
        except WorkStopped:
            return  # stopped during the extraction: nothing learned yet
        self.update(stage="head", extract_seconds=features.seconds - self.held_seconds)
        tune = r.fine_tune_epochs > 0
        with strategy.scope():
            head = build_head(features.train_x.shape[1], n_classes, seed=r.seed)
            # The full model, built once: the head's weights are copied into it at each
            # epoch end (its Grad-CAM) and once trained.
            model = assemble(loaded, head, augment=r.model_augment)
        watch = []
        if fixed:
            # The head's health on the cached features of the first validation images (in
            # the extraction's order: the same images as ``fixed``); Grad-CAM on the images.
            split = (features.val_x, features.val_y) if len(features.val_y) else None
            fx, fy = split or (features.train_x, features.train_y)
            watch = self._health(
                head,
                fx[:HEALTH_IMAGES],
                fy[:HEALTH_IMAGES],
                cams=CamProbe(model, *fixed, CAM_IMAGES, frozen=True),
                before=functools.partial(copy_head, head, model),
            )
        head_data = FeatureData(features, images.class_names)
        if fit(head, head_data, config.plan(), config, callbacks=watch).batches == 0:
            return
        copy_head(head, model)  # the weights the head ended with (early stopping's best)
        self.model = model
        if tune and not self.stop_event.is_set():
            self.update(
                **new_stage(stage="fine-tune", head_val_accuracy=self.progress.val_accuracy)
            )
            layers = top_block_layers(model, r.backbone)
            watch = (
                self._health(model, *fixed, layers=layers, cams=cam_probe(model, *fixed))
                if fixed
                else []
            )
            self.fine_tuned = True
            fit(model, images, (r.fine_tune_phase(),), config, callbacks=watch)

    def _extracted(self, stage: str, done: int, total: int) -> None:
        """After each extraction batch: report it, then hold there while paused (a Step
        extracts one more batch), counting the seconds held in ``held_seconds``. After the
        last batch the head's first batch holds instead. Raises ``WorkStopped`` once Stop (or
        the time limit) is set."""
        self.update(features_done=done, features_total=total)
        if self.stop_event.is_set():
            raise WorkStopped
        if done < total:
            start = time.perf_counter()
            go_on = self.control.wait_turn(self.stop_event, self._hold)
            self.held_seconds += time.perf_counter() - start
            if not go_on:
                raise WorkStopped

    def _hold(self, paused: bool) -> None:
        self.update(paused=paused)


class OwnImagesJob(TaskHandle[OwnProgress]):
    """One background training on your own images, on the shared task base (slots, Stop,
    time limit, and Pause / Step / a new learning rate): ``recipe`` (an ``OwnImagesRecipe``)
    "scratch" trains ``build_scratch_model``; "transfer" loads the frozen backbone, extracts
    features once per image (and per augmented copy) with progress, trains the new head on
    them, assembles the full model and, with fine-tuning epochs, fine-tunes the backbone's
    top block on the images. Each stage is one ``fit_phases`` call: its curves, batches,
    learning-rate changes and health start afresh (``new_stage``), and it starts at its own
    learning rate (``OwnImagesRecipe.stage_learning_rate``). Pause also holds the feature
    extraction after its current batch (Step: one more batch of images), and the time held is
    not counted in ``extract_seconds``.

    ``data``: a ``TrainingData`` of raw-pixel images (``cnnlib.uploads.folders.FolderData``,
    split with the recipe's ``image_size`` and ``validation_fraction``). ``model`` is the full
    raw-pixels model once done (None while it trains, or when nothing was learned).
    ``isolate``: run in a child process (see ``cnnlib.training.trainer.TrainingJob``).
    ``health``: at every epoch end, measure the health of the layers that learn on the first
    ``HEALTH_IMAGES`` validation images (``snapshot().health``; ``cnnlib.inspect.health``)
    and the Grad-CAM of ``CAM_IMAGES`` of them, spread over the classes
    (``snapshot().cams``). What learns is the whole convnet from scratch; the new head on
    the cached features of those images while the backbone is frozen (its Grad-CAM: the
    full model with the head's weights, at the backbone's last Conv2D); the top block and
    the head when fine-tuning.
    Raises ``WeightsUnavailableError`` (``require_weights``) before anything starts when a
    transfer recipe's weights are not here; ``start()`` raises ``ServerBusyError`` when the
    server's queue is full.
    """

    def __init__(
        self,
        data,
        recipe: OwnImagesRecipe,
        *,
        slots: TrainingSlots | None = None,
        max_seconds: float | None = None,
        isolate: bool | None = None,
        health: bool = False,
    ) -> None:
        if not isinstance(recipe, OwnImagesRecipe):
            raise InvalidArgumentError("recipe must be an OwnImagesRecipe.")
        if recipe.transfer:
            require_weights(recipe.backbone, recipe.weights)
        self.recipe = recipe
        worker = _OwnImagesWorker(
            data, recipe, slots or default_slots(), max_seconds, isolate=isolate, health=health
        )
        super().__init__(worker)

    def set_learning_rate(self, value: float) -> float:
        """Train at ``value`` from the next batch of the current stage on (the next stage
        starts at its own rate). Raises ``InvalidArgumentError`` for a bad value, or when the
        recipe's learning rate follows a schedule (``TrainConfig.lr_change_refusal``)."""
        refusal = self.recipe.train_config().lr_change_refusal()
        if refusal:
            raise InvalidArgumentError(refusal)
        return super().set_learning_rate(value)

    @property
    def model(self):
        """The full model (raw pixels → class probabilities) once trained, else None."""
        worker = self._worker
        return worker.model if worker.done_event.is_set() else None


# --------------------------------------------------------------------------------------------
# Export and prediction
# --------------------------------------------------------------------------------------------


def labels_text(class_names: Sequence[str]) -> str:
    """The labels file: one class name per line, in the model's output order."""
    return "".join(f"{name}\n" for name in class_names)


def _uses_caffe(model) -> bool:
    return any(layer.__class__.__name__ == "CaffePreprocess" for layer in model.layers)


def prediction_snippet(
    model,
    *,
    model_file: str = "model.keras",
    labels_file: str = "labels.txt",
    threshold: float = 0.0,
) -> str:
    """A short Python script that loads the exported model and predicts one image.

    Usage: ``python predict.py photo.jpg``. It needs keras, pillow and numpy; models with a
    ResNet50/VGG19 backbone also need CNN Lab's ``cnnlib`` importable (its registered
    ``CaffePreprocess`` layer). With a ``threshold`` above 0 it answers "not sure" when the
    top probability is below it (``cnnlib.training.thresholds.answer``'s rule).
    """
    h, w = model.input_shape[1:3]
    extra = (
        "from cnnlib.models.layers import register_layers\n\nregister_layers()  # CaffePreprocess\n"
        if _uses_caffe(model)
        else ""
    )
    answer = 'print(f"{labels[best]} with {100 * probabilities[best]:.1f}% confidence")\n'
    if threshold > 0:
        answer = (
            f"if probabilities[best] >= {float(threshold)!r}:  # your confidence threshold\n"
            f"    {answer}"
            "else:\n"
            '    print(f"not sure (best guess {labels[best]} with '
            "{100 * probabilities[best]:.1f}% confidence, below the threshold of "
            f'{100 * float(threshold):g}%)")\n'
        )
    return (
        f'''import sys

import keras
import numpy as np
from PIL import Image
{extra}
model = keras.saving.load_model("{model_file}", safe_mode=True)
labels = open("{labels_file}", encoding="utf-8").read().splitlines()
image = Image.open(sys.argv[1]).convert("RGB").resize(({w}, {h}))
pixels = np.asarray(image, dtype="float32")[None]  # (1, {h}, {w}, 3), raw 0..255
probabilities = model.predict(pixels, verbose=0)[0]
best = int(np.argmax(probabilities))
'''
        + answer
    )


def model_input(model, image: Image.Image) -> np.ndarray:
    """``image`` as ``model`` takes it: (H, W, 3) float32 raw pixels 0..255 at the model's
    input size, resized with ``tf.image.resize`` (bilinear, as the training pipeline does)
    and rounded. The one resize of a photo for an own-images model: its prediction and the
    Grad-CAM that explains it use the same pixels."""
    import tensorflow as tf

    h, w = model.input_shape[1:3]
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    return np.asarray(tf.clip_by_value(tf.round(tf.image.resize(pixels, (h, w))), 0, 255))


def predict_image(model, image: Image.Image, class_names: Sequence[str]) -> list[tuple[str, float]]:
    """(class, probability) for every class, most likely first.

    ``image``: an RGB PIL image (from ``cnnlib.data.images.load_image``), resized to the model's
    input size by ``model_input`` (as in training); raw pixels go in.
    """
    if model.output_shape[-1] != len(class_names):
        raise InvalidArgumentError(
            f"The model has {model.output_shape[-1]} outputs but {len(class_names)} class names."
        )
    probs = np.asarray(model(model_input(model, image)[None], training=False))[0]
    return ranked(probs, class_names)


def ranked(probabilities: np.ndarray, class_names: Sequence[str]) -> list[tuple[str, float]]:
    """(class, probability) for every class of (K,) ``probabilities``, most likely first
    (ties in class order)."""
    order = np.argsort(-np.asarray(probabilities), kind="stable")
    return [(class_names[i], float(probabilities[i])) for i in order]


def confidence_sentence(predictions: Sequence[tuple[str, float]]) -> str:
    """The tutorial's sentence for the top prediction: "<class> with <p>% confidence"."""
    name, p = predictions[0]
    return f"{name} with {100 * p:.1f}% confidence"
