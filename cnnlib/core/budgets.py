"""Per-process limits on memory and compute, in one place, and the training-cost check.

A public server shares one process between every visitor: Streamlit Community Cloud gives
the whole process between 690 MB and 2.7 GB. The defaults below fit the small end once
TensorFlow and ResNet50 (about 940 MB together) are loaded. Every limit is in bytes,
operations or counts, is checked *before* the work it guards, and can be raised on a bigger
server with an environment variable ``CNNLAB_<FIELD NAME IN CAPITALS>``:

| Variable | Default | What it limits |
|---|---|---|
| ``CNNLAB_IMAGE_FILE_BYTES`` | 20 MiB | one uploaded image file |
| ``CNNLAB_IMAGE_PIXELS`` | 40,000,000 | pixels of one image ``load_image`` decodes |
| ``CNNLAB_IMAGE_SIDE`` | 30,000 | longer side of one image, pixels |
| ``CNNLAB_IMAGE_DECODED_BYTES`` | 600 MB | peak memory of decoding one image (from its header) |
| ``CNNLAB_SESSION_IMAGE_BYTES`` | 256 MiB | decoded-image bytes one session keeps |
| ``CNNLAB_SESSION_UPLOADS`` | 20 | uploads decoded per session |
| ``CNNLAB_SESSION_UPLOAD_BYTES`` | 100 MiB | file bytes decoded per session |
| ``CNNLAB_BURST_FRAMES`` | 60 | frames in one webcam burst (one upload of the session) |
| ``CNNLAB_BURST_BYTES`` | 8 MiB | encoded bytes of one webcam burst's frames, in all |
| ``CNNLAB_LAB_PIXELS`` | 4,000,000 | the lab's compute size: uploads come back shrunk to it |
| ``CNNLAB_ACTIVATION_BYTES`` | 256 MiB | activations kept from one forward pass (Feature maps) |
| ``CNNLAB_CACHE_BYTES`` | 256 MiB | ``st.cache_data(max_size=...)`` of the big caches |
| ``CNNLAB_TRAINING_MULTIPLY_ADDS`` | 10^10 | multiply-adds of one training step (image × batch) |
| ``CNNLAB_TRAINING_ACTIVATION_BYTES`` | 256 MiB | memory of one training step |
| ``CNNLAB_TRAINING_SECONDS`` | 900 | wall-clock seconds of one training |
| ``CNNLAB_TRAINING_PROCESS_BYTES`` | 2 GiB | resident memory of one training's own process |
| ``CNNLAB_MAX_TRAININGS`` | 2 | trainings running at once (the others queue) |
| ``CNNLAB_TRAINING_QUEUE`` | 8 | trainings waiting in the queue |
| ``CNNLAB_RAY_PAYLOAD_BYTES`` | 256 MiB | what one training sends to a Ray cluster |
| ``CNNLAB_CLASSIFY_PHOTOS`` | 8 | photos in one Classify run |
| ``CNNLAB_MODEL_WAIT_SECONDS`` | 20 | wait for a shared model (ResNet50, VGG19) busy with others |
| ``CNNLAB_MODEL_FILE_BYTES`` | 20 MiB | one uploaded ``.keras`` archive |
| ``CNNLAB_MODEL_MEMBERS`` | 8 | files inside that archive |
| ``CNNLAB_MODEL_UNPACKED_BYTES`` | 64 MiB | the archive's files once decompressed |
| ``CNNLAB_MODEL_CONFIG_BYTES`` | 2 MiB | its ``config.json`` |
| ``CNNLAB_MODEL_PARAMS`` | 10,000,000 | parameters of an uploaded model |
| ``CNNLAB_MODEL_ACTIVATION_BYTES`` | 256 MiB | its activations for one image at its input shape |
| ``CNNLAB_MAX_ARCHIVE_BYTES`` | 512 MiB | one uploaded zip (or folder) of class folders |
| ``CNNLAB_MAX_ARCHIVE_MEMBERS`` | 20,000 | files and folders that archive lists |
| ``CNNLAB_MAX_UNCOMPRESSED_BYTES`` | 2 GiB | its members decompressed, in all |
| ``CNNLAB_MAX_COMPRESSION_RATIO`` | 100 | one member's unpacked ÷ packed size (zip bombs) |
| ``CNNLAB_MIN_IMAGES_PER_CLASS`` | 5 | images a class needs to be trained on |
| ``CNNLAB_FOLDER_CACHE_BYTES`` | 512 MiB | a split's decoded images kept in memory |
| ``CNNLAB_FEATURE_BYTES`` | 1 GiB | cached backbone features of one transfer-learning run |
| ``CNNLAB_SANDBOX_MEMORY_BYTES`` | 1 GiB | address space (``RLIMIT_AS``) of one decoder process |
| ``CNNLAB_SANDBOX_CPU_SECONDS`` | 10 | CPU-seconds (``RLIMIT_CPU``) of one decoding job |
| ``CNNLAB_SANDBOX_WALL_SECONDS`` | 30 | wall-clock seconds of one decoding job (then killed) |
| ``CNNLAB_SANDBOX_WORKERS`` | 2 | warm decoder processes |
| ``CNNLAB_SANDBOX_JOBS_PER_WORKER`` | 200 | jobs one decoder runs before it is replaced |
| ``CNNLAB_SANDBOX_RESULT_BYTES`` | 64 MiB | arrays one decoding job may send back |
| ``CNNLAB_SANDBOX_WAIT_SECONDS`` | 60 | wait for a free decoder when all are busy |

Values are whole numbers; byte limits also take a unit: ``512MB``, ``2GiB``, ``300k``
(K, M, G are powers of 1024, as in Streamlit's ``server.maxCacheDataSize``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cnnlib.core.checks import is_whole
from cnnlib.core.errors import BudgetError

__all__ = [
    "ENV_PREFIX",
    "Budgets",
    "SessionUsage",
    "budgets",
    "check_session_images",
    "format_bytes",
]

#: Prefix of the environment variables that override the defaults.
ENV_PREFIX = "CNNLAB_"
#: Bytes per float32 value.
FLOAT_BYTES = 4
#: Activation memory of a training step relative to the forward pass alone: the forward
#: activations are kept for the backward pass, which makes gradients of the same size, and
#: the optimizer's work needs about as much again.
TRAINING_MEMORY_FACTOR = 3

_MiB = 1024 * 1024


@dataclass(frozen=True)
class Budgets:
    """The limits of one server process (see the module docstring for the variables)."""

    #: Largest uploaded image file, bytes (``server.maxUploadSize`` refuses bigger first).
    image_file_bytes: int = 20 * _MiB
    #: Largest image ``load_image`` decodes, pixels (W·H), checked from the header.
    image_pixels: int = 40_000_000
    #: Longest side of an image, pixels (a 1×40,000,000 "image" is no photo).
    image_side: int = 30_000
    #: Peak memory of decoding and converting one image, bytes, estimated from its header
    #: before decoding (``cnnlib.data.images.decode_peak_bytes``; a test measures it). It must
    #: fit the decoder's ``sandbox_memory_bytes`` with the interpreter's own ~150 MB.
    image_decoded_bytes: int = 600_000_000
    #: Decoded-image bytes one session may keep (uploads, camera shots, samples).
    session_image_bytes: int = 256 * _MiB
    #: Uploads one session may decode.
    session_uploads: int = 20
    #: File bytes one session may decode in all.
    session_upload_bytes: int = 100 * _MiB
    #: Frames one webcam burst ("hold to record") may send; the burst counts as one upload.
    burst_frames: int = 60
    #: Encoded bytes of one burst's frames together (its data URLs decoded from base64).
    burst_bytes: int = 8 * _MiB
    #: Largest image the Convolution lab computes on, pixels; "original size" is offered
    #: only up to this. The largest size any page uses: the decoding sandbox hands uploaded
    #: images back shrunk to it.
    lab_pixels: int = 4_000_000
    #: Activations one forward pass may keep (Feature maps), bytes.
    activation_bytes: int = 256 * _MiB
    #: ``st.cache_data(max_size=...)`` for the caches holding images and arrays, bytes.
    cache_bytes: int = 256 * _MiB
    #: Multiply-adds of one training step's forward pass (per image × batch).
    training_multiply_adds: int = 10_000_000_000
    #: Activation memory of one training step (forward × batch × 4 bytes × 3), bytes.
    training_activation_bytes: int = 256 * _MiB
    #: Wall-clock seconds one training may run.
    training_seconds: int = 900
    #: Resident memory (RSS) one training's own process may reach before it is ended, bytes
    #: (``cnnlib.training.task_process``: each training runs in a child process of the server).
    training_process_bytes: int = 2048 * _MiB
    #: Trainings running at once in the process.
    max_trainings: int = 2
    #: Trainings waiting for a slot.
    training_queue: int = 8
    #: What one training sends to a Ray cluster (its settings, arrays, own images), bytes
    #: (``cnnlib.training.ray_backend``).
    ray_payload_bytes: int = 256 * _MiB
    #: Photos classified in one Classify run.
    classify_photos: int = 8
    #: Seconds a request waits for a shared ImageNet model other sessions are using, before
    #: ``ModelBusyError`` ("busy, try again in a few seconds").
    model_wait_seconds: int = 20
    #: Largest uploaded ``.keras`` archive, bytes.
    model_file_bytes: int = 20 * _MiB
    #: Files inside a ``.keras`` archive.
    model_members: int = 8
    #: The archive's files decompressed, bytes in all.
    model_unpacked_bytes: int = 64 * _MiB
    #: The archive's ``config.json``, bytes.
    model_config_bytes: int = 2 * _MiB
    #: Parameters of an uploaded model.
    model_params: int = 10_000_000
    #: Activations of an uploaded model for one image at its declared input shape, bytes.
    model_activation_bytes: int = 256 * _MiB
    #: Largest uploaded zip of class folders (or sum of a folder upload's files), bytes.
    max_archive_bytes: int = 512 * _MiB
    #: Members (files and folders) such an archive may list.
    max_archive_members: int = 20_000
    #: Its members decompressed, bytes in all.
    max_uncompressed_bytes: int = 2048 * _MiB
    #: Largest uncompressed ÷ compressed ratio of one member (images barely compress).
    max_compression_ratio: int = 100
    #: Fewest images a class needs to be trained on.
    min_images_per_class: int = 5
    #: Decoded images of one split cached in memory by ``FolderData``; above, on disk.
    folder_cache_bytes: int = 512 * _MiB
    #: Cached backbone features of one transfer-learning run (train copies + validation).
    feature_bytes: int = 1024 * _MiB
    #: Address space (``RLIMIT_AS``) of one decoder process of the sandbox
    #: (``cnnlib.core.sandbox``), bytes: its interpreter, the file and the decoding together.
    sandbox_memory_bytes: int = 1024 * _MiB
    #: CPU-seconds one decoding job may use (``RLIMIT_CPU``, set before each job).
    sandbox_cpu_seconds: int = 10
    #: Wall-clock seconds one decoding job may take before the server kills its decoder.
    sandbox_wall_seconds: int = 30
    #: Warm decoder processes (started on first use, each one job at a time).
    sandbox_workers: int = 2
    #: Jobs one decoder runs before it is replaced by a fresh one (its memory returns). A
    #: fresh one costs ~0.3 CPU-seconds (interpreter, imports): at 200 jobs that was ~1.4 ms
    #: a job, as much as decoding and storing a 256 × 256 JPEG of an upload.
    sandbox_jobs_per_worker: int = 1000
    #: Bytes of arrays one decoding job may send back to the server.
    sandbox_result_bytes: int = 64 * _MiB
    #: Seconds a request waits for a free decoder when every one is busy.
    sandbox_wait_seconds: int = 60

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not is_whole(value, 1):
                raise BudgetError(f"The budget {f.name} must be a whole number ≥ 1, got {value!r}.")


_NUMBER = re.compile(r"^\s*([0-9][0-9_,]*(?:\.[0-9]+)?(?:e[0-9]+)?)\s*([kmgt]?)(i?b)?\s*$", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _parse(name: str, text: str) -> int:
    """'512MB' → 536870912, '40000000' → 40000000, '1e9' → 1000000000."""
    match = _NUMBER.match(text)
    if not match:
        raise BudgetError(
            f"The environment variable {name}={text!r} is not a number. Write a whole number, "
            "optionally with a unit for bytes: 512MB, 2GiB."
        )
    number = float(match.group(1).replace("_", "").replace(",", ""))
    value = number * _UNITS[match.group(2).lower()]
    if not math.isfinite(value) or value < 1 or value > 2**62:
        raise BudgetError(f"The environment variable {name}={text!r} must be at least 1.")
    return int(value)


def budgets(environ: Mapping[str, str] | None = None) -> Budgets:
    """The defaults, overridden by ``CNNLAB_*`` variables in ``environ`` (``os.environ``).

    Raises ``BudgetError`` naming the variable when a value is not a number ≥ 1.
    """
    env = os.environ if environ is None else environ
    changes = {}
    for f in dataclasses.fields(Budgets):
        name = ENV_PREFIX + f.name.upper()
        text = env.get(name, "").strip()
        if text:
            changes[f.name] = _parse(name, text)
    return Budgets(**changes)


def format_bytes(n: float) -> str:
    """Bytes for a learner: '512 B', '3.2 MB', '1.5 GB' (powers of 1000, like file managers)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


@dataclass
class SessionUsage:
    """Uploads one session has decoded so far (keep one per session, e.g. in session state)."""

    uploads: int = 0
    upload_bytes: int = 0

    def admit(self, file_bytes: int, *, budgets: Budgets) -> None:
        """Count one more upload of ``file_bytes``, or raise ``BudgetError`` (nothing counted)
        when the session would pass ``session_uploads`` or ``session_upload_bytes``."""
        if self.uploads + 1 > budgets.session_uploads:
            raise BudgetError(
                f"This session has already decoded {self.uploads} uploads, the most one visit "
                "may. Reload the page to start a new session, or use a sample image."
            )
        if self.upload_bytes + file_bytes > budgets.session_upload_bytes:
            raise BudgetError(
                f"This session has already decoded {format_bytes(self.upload_bytes)} of uploads; "
                f"{format_bytes(file_bytes)} more would pass the "
                f"{format_bytes(budgets.session_upload_bytes)} one visit may. Reload the page "
                "to start a new session, or use a smaller image."
            )
        self.uploads += 1
        self.upload_bytes += file_bytes


def check_session_images(sizes: Sequence[tuple[int, int]], *, budgets: Budgets) -> int:
    """Decoded bytes (W·H·3) of the images a session keeps, (width, height) each; raises
    ``BudgetError`` over ``session_image_bytes``, suggesting fewer or smaller images."""
    total = sum(int(w) * int(h) * 3 for w, h in sizes)
    if total > budgets.session_image_bytes:
        raise BudgetError(
            f"These {len(sizes)} images take {format_bytes(total)} once decoded, more than the "
            f"{format_bytes(budgets.session_image_bytes)} one session may keep. Remove some "
            "images or upload smaller ones."
        )
    return total
