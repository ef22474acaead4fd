"""The shortcut lab: plant a cue in one class's training photos, train, then see what the
model learned.

- ``shortcut_data(train, validation, class_names, target, share, cue, seed)``: an
  ``ArrayData`` whose training AND validation images of class ``target`` carry ``cue`` in
  ``share`` of them (``cnnlib.data.shortcuts.stamp_share``): the validation score is then
  measured on data with the same shortcut, as a learner's own biased photos would be;
- ``shortcut_report(model, x, y, target, share, cue, seed)``: the trained model on the same
  validation images three ways: as trained (stamped), clean (no cue anywhere), and every
  other class's images with the cue stamped (how many the cue alone turns into ``target``).

Images are (N, H, W, 3) uint8 raw pixels; labels (N,) class indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.data.shortcuts import Cue, stamp_all, stamp_share
from cnnlib.data.training_data import ArrayData
from cnnlib.training.evaluation import predict_probabilities

__all__ = ["ShortcutReport", "shortcut_data", "shortcut_report"]


def _check(x: np.ndarray, y: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 4 or x.dtype != np.uint8 or len(x) != len(y):
        raise InvalidArgumentError(
            f"Expected images (N, H, W, 3) uint8 and N labels; got {x.shape} {x.dtype} and "
            f"{y.shape}."
        )
    if not (y == target).any():
        raise InvalidArgumentError("The chosen class has no image here: choose another.")
    return x, y.astype(np.int32)


def shortcut_data(
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    class_names: Sequence[str],
    target: int,
    share: float,
    cue: Cue,
    seed: int = 0,
) -> ArrayData:
    """The training and validation images with ``cue`` on ``share`` of class ``target``'s
    images in each (different images, seeded), as an ``ArrayData`` to train on."""
    xt, yt = _check(*train, target)
    xv, yv = _check(*validation, target)
    stamped_train = stamp_share(xt, yt, target, share, cue, seed).images
    stamped_val = stamp_share(xv, yv, target, share, cue, seed + 1).images
    arrays = {"train": (stamped_train, yt), "validation": (stamped_val, yv)}
    for images, labels in arrays.values():
        images.flags.writeable = labels.flags.writeable = False
    return ArrayData(tuple(class_names), tuple(int(d) for d in xt.shape[1:]), arrays)


@dataclass(frozen=True)
class ShortcutReport:
    """The trained model on the validation images, three ways (accuracies are fractions).

    ``stamped_accuracy``: as it trained (the cue on ``share`` of the target class);
    ``clean_accuracy``: no cue anywhere; ``stamped_recall`` / ``clean_recall``: the share of
    the target class's images recognised with / without the cue; ``fooled``: the share of
    the OTHER classes' images predicted as the target once the cue is stamped on them
    (``fooled_before``: the same images without the cue); ``others`` and ``targets``: how
    many images those shares are of. ``stamped`` / ``clean`` (N, H, W, 3) uint8: the images
    as tested, for Grad-CAM.
    """

    stamped_accuracy: float
    clean_accuracy: float
    stamped_recall: float
    clean_recall: float
    fooled: float
    fooled_before: float
    others: int
    targets: int
    stamped: np.ndarray
    clean: np.ndarray


def shortcut_report(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    target: int,
    share: float,
    cue: Cue,
    seed: int = 0,
) -> ShortcutReport:
    """Test ``model`` on the clean validation images ``x`` (N, H, W, 3) uint8, labels ``y``,
    stamped as ``shortcut_data`` stamped them (same ``seed``), clean, and with the cue on
    every other class's image."""
    x, y = _check(x, y, target)
    stamped = stamp_share(x, y, target, share, cue, seed + 1).images
    others = y != target
    if not others.any():
        raise InvalidArgumentError("There are no images of other classes to test the cue on.")
    on_others = stamp_all(x[others], cue)
    p_stamped = predict_probabilities(model, stamped).argmax(1)
    p_clean = predict_probabilities(model, x).argmax(1)
    p_fooled = predict_probabilities(model, on_others).argmax(1)
    mine = y == target
    return ShortcutReport(
        stamped_accuracy=float(np.mean(p_stamped == y)),
        clean_accuracy=float(np.mean(p_clean == y)),
        stamped_recall=float(np.mean(p_stamped[mine] == target)),
        clean_recall=float(np.mean(p_clean[mine] == target)),
        fooled=float(np.mean(p_fooled == target)),
        fooled_before=float(np.mean(p_clean[others] == target)),
        others=int(others.sum()),
        targets=int(mine.sum()),
        stamped=stamped,
        clean=x,
    )
