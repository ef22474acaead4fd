"""The project's own exception types.

Pages catch ``CNNLabError`` at their boundary and show its message to the learner; the
message itself says what was wrong and what to do.
"""

from __future__ import annotations


class CNNLabError(Exception):
    """Base class: an error whose message is meant for the learner."""


class InvalidImageError(CNNLabError, ValueError):
    """The input is not a usable image (empty, not an image, truncated, too large, ...)."""


class InvalidArgumentError(CNNLabError, ValueError):
    """An argument is out of range or of the wrong shape (kernel, stride, padding, ...)."""


class DataUnavailableError(CNNLabError, RuntimeError):
    """A dataset could not be found or read from any source."""


class CorruptDataError(CNNLabError, ValueError):
    """A data file exists but its content is not what its format promises."""


class WeightsUnavailableError(CNNLabError, RuntimeError):
    """Pretrained weights could not be downloaded or loaded from a local file."""


class InvalidModelError(CNNLabError, ValueError):
    """A layer stack or an uploaded model file cannot be built or loaded."""


class BudgetError(CNNLabError, ValueError):
    """A request would use more memory or compute than this server allows
    (``cnnlib.core.budgets``)."""


class ArchiveError(CNNLabError, ValueError):
    """An uploaded archive or folder of images is unsafe, malformed or not trainable."""


class SandboxError(CNNLabError, RuntimeError):
    """An uploaded file could not be read in the decoding sandbox (``cnnlib.core.sandbox``):
    its decoder ran out of memory, CPU time or wall-clock time, crashed, or sent back
    something malformed. ``reason`` is one of "memory", "cpu", "time", "crash", "malformed",
    "busy", "start"; the message names the file and the limit."""

    def __init__(self, message: str, *, reason: str = "crash"):
        self.reason = reason
        super().__init__(message)


class ModelBusyError(CNNLabError, RuntimeError):
    """A shared model (ResNet50, VGG19, …) stayed busy with other sessions' requests for
    longer than the wait allowed (``cnnlib.core.budgets.Budgets.model_wait_seconds``)."""

    def __init__(self, model_name: str, waited_seconds: float):
        self.model_name, self.waited_seconds = model_name, waited_seconds
        super().__init__(
            f"{model_name} is busy with other visitors' photos (waited {waited_seconds:g} s); "
            "try again in a few seconds."
        )


class WorkStopped(Exception):
    """Long work was asked to stop (Stop, the time limit, the session's end) between two of
    its steps. Not an error and never shown: the task that catches it reports "stopped" and
    keeps what was done so far."""


class TrainingFailedError(CNNLabError, RuntimeError):
    """A training run synchronously (e.g. ``cnnlib.folders.train_from_archive``) failed; the
    message is the one its task gave the learner."""
