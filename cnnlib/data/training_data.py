"""What training reads: a dataset object with class names, counts and tf.data batches.

``TrainingData`` is the protocol the trainer (``cnnlib.training.trainer``) consumes. Two kinds
implement it: ``ArrayData`` here (images already in memory as arrays, e.g. MNIST) and image
folders streamed from disk with ``tf.data`` (``cnnlib.uploads.folders``). Either way the batches
hold RAW pixels (0…255): the model owns its preprocessing (a ``Rescaling`` layer or a backbone's
``preprocess_input``), so a saved ``.keras`` file predicts from raw pixels too.

The train/validation split is stratified (each class keeps its share) and seeded; the
training order of each epoch depends only on (seed, epoch), so a run can be repeated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from cnnlib.core.checks import is_whole
from cnnlib.core.errors import InvalidArgumentError

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "SPLITS",
    "ArrayData",
    "TrainingData",
    "as_images",
    "as_labels",
    "stratified_sample",
]

#: The splits a ``TrainingData`` can hold.
SPLITS: tuple[str, ...] = ("train", "validation", "test")


@runtime_checkable
class TrainingData(Protocol):
    """A labelled image dataset split into "train", "validation" and "test".

    ``batches(split, batch_size, epochs=, seed=)`` yields (images (B, H, W, C) uint8 raw
    pixels 0…255 (or float32 0…255), labels (B,) int32). "train": ``epochs`` passes, each
    in a fresh order that depends only on (seed, epoch); other splits: one pass, fixed order.
    """

    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]  #: (H, W, C) of the raw images the model receives

    def counts(self, split: str) -> dict[str, int]: ...

    def size(self, split: str) -> int: ...

    def batches(
        self, split: str, batch_size: int, *, epochs: int = 1, seed: int = 0
    ) -> tf.data.Dataset: ...


# --------------------------------------------------------------------------------------------
# Checking arrays
# --------------------------------------------------------------------------------------------


def as_images(x: np.ndarray, what: str = "") -> np.ndarray:
    """Images as (N, H, W, C): (N, H, W) gets a channel axis; uint8 stays uint8, any other
    number type becomes float32 (raw pixels 0…255, not checked). Refuses NaN/inf."""
    x = np.asarray(x)
    label = f"{what} images" if what else "images"
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or len(x) == 0:
        raise InvalidArgumentError(
            f"The {label} must be a non-empty (N, H, W) or (N, H, W, C) array; got shape {x.shape}."
        )
    if x.dtype != np.uint8:
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise InvalidArgumentError(f"The {label} must be numbers; got {x.dtype}.")
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise InvalidArgumentError(f"The {label} contain NaN or infinite values.")
    return x


def as_labels(y: np.ndarray, n: int, what: str = "") -> np.ndarray:
    """(n,) int32 class indices ≥ 0, one per image."""
    y = np.asarray(y)
    label = f"{what} labels" if what else "labels"
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise InvalidArgumentError(
            f"The {label} must be {n:,} whole numbers (one per image); got an array of "
            f"shape {y.shape} and type {y.dtype}."
        )
    if n and y.min() < 0:
        raise InvalidArgumentError(f"The {label} must be ≥ 0; found {int(y.min())}.")
    return y.astype(np.int32, copy=False)


def stratified_sample(y: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` indices into ``y`` (sorted), each class keeping its share.

    Class ``c`` with ``n_c`` members gets ⌊count·n_c/N⌋ places, and the places left over go
    to the classes with the largest remainders (largest-remainder rounding, so the total is
    exactly ``count``); members are drawn at random with ``rng``.
    """
    y = np.asarray(y)
    count = int(count)
    if not 0 <= count <= len(y):
        raise InvalidArgumentError(f"Cannot pick {count:,} of {len(y):,} images.")
    classes, sizes = np.unique(y, return_counts=True)
    exact = sizes * (count / max(len(y), 1))
    quota = np.floor(exact).astype(np.int64)
    left = count - int(quota.sum())
    if left:
        order = np.lexsort((classes, -(exact - quota)))  # largest remainder first, stable
        quota[order[:left]] += 1
    picked = [
        rng.permutation(np.flatnonzero(y == c))[:q]
        for c, q in zip(classes, quota, strict=True)
        if q
    ]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def _read_only(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------------------------
# In-memory arrays
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ArrayData:
    """A ``TrainingData`` over arrays held in memory once, read-only (shareable by jobs).

    Build it with ``ArrayData.from_arrays``. ``arrays[split]`` is (images (N, H, W, C)
    uint8 or float32 raw pixels, labels (N,) int32); a missing split has no entry.
    """

    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]
    arrays: dict[str, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def from_arrays(
        cls,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_test: np.ndarray | None = None,
        y_test: np.ndarray | None = None,
        *,
        class_names: Sequence[str],
        validation_split: float = 0.2,
        train_size: int | None = None,
        seed: int = 0,
    ) -> ArrayData:
        """Split (x_train, y_train) into train and validation, stratified and seeded.

        ``x_*``: (N, H, W) or (N, H, W, C), uint8 0…255 (kept as uint8) or float 0…255;
        ``y_*``: (N,) class indices into ``class_names``. ``train_size``: first keep this
        many images (a stratified, seeded subset; None = all); then ``validation_split`` of
        them (at least one image when above 0) go to "validation", every class keeping its
        share. The test split is kept in its order.
        """
        names = tuple(str(n) for n in class_names)
        if len(names) < 2 or len(set(names)) != len(names):
            raise InvalidArgumentError(
                f"There must be at least two classes with different names; got {list(names)}."
            )
        if not (isinstance(validation_split, int | float) and 0.0 <= validation_split < 1.0):
            raise InvalidArgumentError(
                f"The validation split must be at least 0 and below 1; got {validation_split}."
            )
        x = as_images(x_train, "training")
        y = as_labels(y_train, len(x), "training")
        cls._check_classes(y, names, "training")
        rng = np.random.default_rng(seed)
        keep = np.arange(len(y))
        if train_size is not None:
            if not is_whole(train_size, 1):
                raise InvalidArgumentError(
                    f"The training-set size must be a positive whole number; got {train_size!r}."
                )
            keep = stratified_sample(y, min(train_size, len(y)), rng)
        n_val = round(len(keep) * validation_split)
        if validation_split > 0 and n_val == 0:
            n_val = 1
        if len(keep) - n_val < 1:
            raise InvalidArgumentError(
                f"{len(keep):,} training images are too few for a validation split of "
                f"{validation_split:g}: none would be left to train on."
            )
        held = keep[stratified_sample(y[keep], n_val, rng)]
        train = np.setdiff1d(keep, held, assume_unique=True)
        arrays = {"train": (_read_only(x[train]), _read_only(y[train]))}
        if n_val:
            arrays["validation"] = (_read_only(x[held]), _read_only(y[held]))
        if x_test is not None:
            xt = as_images(x_test, "test")
            yt = as_labels(y_test, len(xt), "test")
            cls._check_classes(yt, names, "test")
            if xt.shape[1:] != x.shape[1:]:
                raise InvalidArgumentError(
                    f"The test images are {xt.shape[1:]} but the training images "
                    f"{x.shape[1:]}; they must have the same size and channels."
                )
            arrays["test"] = (_read_only(xt), _read_only(yt))
        return cls(names, tuple(int(d) for d in x.shape[1:]), arrays)  # type: ignore[arg-type]

    @classmethod
    def from_tuple(cls, data, *, class_names: Sequence[str] | None = None, **split) -> ArrayData:
        """From the older ``((x_train, y_train), (x_test, y_test))`` form; (x_test, y_test)
        may be (None, None). Class names default to "0", "1", … up to the largest label."""
        try:
            (x_train, y_train), (x_test, y_test) = data
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                "The data must be a TrainingData (e.g. ArrayData) or ((x_train, y_train), "
                "(x_test, y_test)); (x_test, y_test) may be (None, None)."
            ) from None
        if class_names is None:
            x = as_images(x_train, "training")
            y = as_labels(y_train, len(x), "training")
            top = max(int(y.max()), 0 if y_test is None else int(np.max(y_test, initial=0)))
            class_names = [str(i) for i in range(max(top + 1, 2))]
        return cls.from_arrays(x_train, y_train, x_test, y_test, class_names=class_names, **split)

    @staticmethod
    def _check_classes(y: np.ndarray, names: tuple[str, ...], what: str) -> None:
        if len(y) and int(y.max()) >= len(names):
            raise InvalidArgumentError(
                f"The {what} labels go up to {int(y.max())} but there are only {len(names)} "
                f"classes (0 to {len(names) - 1})."
            )

    def _split(self, split: str) -> tuple[np.ndarray, np.ndarray] | None:
        if split not in SPLITS:
            raise InvalidArgumentError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
        return self.arrays.get(split)

    def size(self, split: str) -> int:
        """Number of images in ``split`` (0 if none)."""
        part = self._split(split)
        return 0 if part is None else len(part[1])

    def counts(self, split: str) -> dict[str, int]:
        """Images per class name in ``split`` (every class listed, 0 if absent)."""
        part = self._split(split)
        found = np.bincount(part[1], minlength=len(self.class_names)) if part else None
        return {
            name: 0 if found is None else int(found[i]) for i, name in enumerate(self.class_names)
        }

    def batches(
        self, split: str, batch_size: int, *, epochs: int = 1, seed: int = 0
    ) -> tf.data.Dataset:
        """(images (B, H, W, C) raw pixels as stored, labels (B,) int32) batches.

        "train": ``epochs`` passes, epoch ``e`` in the order of a stateless shuffle keyed by
        (seed, e) (no global seed, nothing shared between threads); other splits: one pass in
        stored order. The arrays go to the pipeline once; each batch is gathered by index.
        """
        import tensorflow as tf

        part = self._split(split)
        if part is None:
            raise InvalidArgumentError(f"This dataset has no {split} images.")
        if not is_whole(batch_size, 1):
            raise InvalidArgumentError(f"The batch size must be at least 1; got {batch_size!r}.")
        x, y = part
        with tf.device("/CPU:0"):  # the input pipeline runs on the CPU, even with a GPU
            x_t, y_t = tf.constant(x), tf.constant(y)
        if split != "train":
            return tf.data.Dataset.from_tensor_slices((x_t, y_t)).batch(batch_size).prefetch(2)
        n = len(y)

        # Plain TensorFlow ops: no AutoGraph conversion needed.
        @tf.autograph.experimental.do_not_convert
        def epoch_order(epoch):
            key = tf.stack([tf.constant(int(seed), tf.int64), epoch])
            order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=key)
            return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

        @tf.autograph.experimental.do_not_convert
        def gather(idx):
            return tf.gather(x_t, idx), tf.gather(y_t, idx)

        return (
            tf.data.Dataset.range(int(epochs))
            .flat_map(epoch_order)
            .map(gather, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(2)
        )
