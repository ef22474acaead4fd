"""Trainings on a Ray cluster: one actor per training, pulled for progress, stopped by a call.

Used by ``cnnlib.training.backends`` when ``$CNNLAB_RAY_ADDRESS`` is set; Ray is imported
only then (``requirements-ray.txt``), never at import time.

- ``local``: a private cluster on this machine, started once per server process, with as
  many training slots as ``budgets().max_trainings`` (demos, tests);
- ``auto`` or ``host:port``: join a running cluster as a native driver. The server must run
  on a Ray node (``ray start --address=<head>:6379 --num-cpus=0 --num-gpus=0`` on a
  machine that trains nothing, or the head of a one-machine cluster);
- ``ray://…`` (Ray Client) is refused: Ray has deprecated it.

One training is one ``TrainingActor``, a process of its own on some node, killed once its
result is fetched (TensorFlow keeps memory per fitted model; the process gives it back):

- the worker is pickled without any path of the server: large arrays (MNIST) go to the
  object store once per server process and are shared by every training; an object with
  ``to_portable(max_bytes)`` (own images: ``cnnlib.uploads.folders.FolderData``) travels as
  what it returns, which rebuilds it on the worker. Everything one training sends is
  bounded by ``budgets().ray_payload_bytes`` (``$CNNLAB_RAY_PAYLOAD_BYTES``);
- each actor asks for ``$CNNLAB_RAY_CPUS_PER_TRAINING`` CPUs (default 1; TensorFlow's
  thread pools are set to match), ``$CNNLAB_RAY_GPUS_PER_TRAINING`` GPUs (default 0; a
  fraction gets a TensorFlow memory limit of that share, since Ray enforces none) and one
  unit of the custom resource ``cnnlab_training``, which each node advertises as the
  number of trainings it may run at once;
- until the actor answers, it waits for a free slot on the cluster: the progress shows
  ``state="queued"``, ``queued_on_cluster=True``; Stop then cancels it (``ray.kill``);
- the server pulls the progress events the actor buffered every ``DRAIN_SECONDS`` (an
  event reaches the server within that plus one round trip), with the actor's resident
  memory: above ``budgets().training_process_bytes`` the actor
  is killed and the task fails with a message;
- Stop is the actor's ``stop()`` (the training ends at its next batch and its model is
  kept); an actor that has not ended is killed once ``STOP_GRACE_SECONDS`` have passed and
  it has spent that much processor time since (counted from ``stop()``'s answer, as each
  ``drain`` reports it), or once ``STOP_WAIT_SECONDS`` have passed
  (``cnnlib.training.task_process.StopClock``: Ray runs its workers at a low CPU priority,
  so on a busy node a stopping training may need minutes of wall-clock time); Pause, Step
  and a new learning rate are its ``control(state)`` (``cnnlib.training.control``);
- the result (the model as ``.keras`` bytes) comes back through the object store; an actor
  that dies (killed, out of memory, its node lost) fails the task with a message.

Usage statistics are off (``RAY_USAGE_STATS_ENABLED=0``), and so is Ray's implicit
``ray.init()`` on a first call (``RAY_ENABLE_AUTO_CONNECT=0``): the server joins only the
cluster ``connect`` names, never one a ``ray start`` left recorded in ``/tmp/ray``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import os
import pickle
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlib.core.budgets import budgets, format_bytes
from cnnlib.core.errors import BudgetError, InvalidArgumentError
from cnnlib.training.control import TaskControl
from cnnlib.training.task_process import (
    StopClock,
    TaskProcessError,
    apply_message,
    not_stopped_error,
    over_memory_error,
    process_rss_bytes,
    refuse_or_warn_unpicklable,
    run_job,
)

__all__ = [
    "DRAIN_SECONDS",
    "RESOURCE",
    "Payload",
    "RayBackend",
    "RaySettings",
    "TrainingActor",
    "connect",
    "load_payload",
    "portable_payload",
    "ray_address",
]

_log = logging.getLogger(__name__)

#: The custom resource a node advertises as the number of trainings it may run at once.
RESOURCE = "cnnlab_training"
#: The Ray namespace of CNN Lab's actors.
NAMESPACE = "cnnlab"
#: How often the server pulls a running actor's progress events, seconds.
DRAIN_SECONDS = 0.25
#: How often the server checks a waiting actor (and Stop), seconds.
WAIT_SECONDS = 0.1
#: Arrays of at least this many bytes go to the object store (once per server process).
STORE_MIN_BYTES = 1 << 20
#: Arrays kept in the object store for later trainings (the least recently used go first).
STORED_ARRAYS = 16
#: Object store of a ``local`` cluster, bytes (results and the shared arrays).
LOCAL_OBJECT_STORE_BYTES = 512 << 20
#: Share of a GPU fraction's memory TensorFlow may take (the rest: the CUDA context).
GPU_MEMORY_USABLE = 0.9


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


def ray_address(environ: Mapping[str, str] | None = None) -> str | None:
    """``$CNNLAB_RAY_ADDRESS``: "local", "auto" or "host:port", or None when unset (no Ray).

    Raises ``InvalidArgumentError`` for a Ray Client address (``ray://…``)."""
    env = os.environ if environ is None else environ
    address = env.get("CNNLAB_RAY_ADDRESS", "").strip()
    if not address:
        return None
    if address.lower().startswith("ray://"):
        raise InvalidArgumentError(
            f"CNNLAB_RAY_ADDRESS={address} asks for Ray Client, which Ray has deprecated and "
            "CNN Lab does not use. Run the server on a node of the cluster (ray start "
            "--address=<head>:6379 --num-cpus=0 --num-gpus=0) and set CNNLAB_RAY_ADDRESS=auto "
            "or <head>:6379."
        )
    return address


def _number(env: Mapping[str, str], name: str, default: float, low: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= low):
        raise BudgetError(f"The environment variable {name}={text!r} must be a number ≥ {low:g}.")
    return value


@dataclass(frozen=True)
class RaySettings:
    """How trainings run on the cluster (from the ``CNNLAB_RAY_*`` variables).

    ``cpus_per_training``: CPUs each actor asks for (> 0; TensorFlow gets that many
    threads, at least 1); ``gpus_per_training``: GPUs (≥ 0; a fraction shares one GPU, with
    TensorFlow's memory limited to that share).
    """

    address: str
    cpus_per_training: float = 1.0
    gpus_per_training: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RaySettings:
        env = os.environ if environ is None else environ
        address = ray_address(env)
        if address is None:
            raise InvalidArgumentError("CNNLAB_RAY_ADDRESS is not set: trainings run here.")
        cpus = _number(env, "CNNLAB_RAY_CPUS_PER_TRAINING", 1.0, 0.01)
        gpus = _number(env, "CNNLAB_RAY_GPUS_PER_TRAINING", 0.0, 0.0)
        return cls(address, cpus, gpus)

    @property
    def threads(self) -> int:
        """TensorFlow's intra- and inter-op threads in each actor."""
        return max(1, math.floor(self.cpus_per_training))


_CONNECT_LOCK = threading.Lock()
#: Starts of a ``local`` cluster tried (a raylet whose agents start slowly on a busy machine
#: dies at start, ray-project/ray#65983).
LOCAL_START_TRIES = 2


def _start_local(ray: Any, **init: Any) -> None:
    """``ray.init(address="local", **init)`` from a thread of its own that lives as long as
    this process. Ray's processes die with the *thread* that started them (Linux's
    ``PR_SET_PDEATHSIG``): started from a task's or a page run's thread, the cluster would
    die when that thread ends, and the server with it at its next call. Raises what
    ``ray.init`` raised."""
    started = threading.Event()
    failure: list[BaseException] = []

    def keep() -> None:
        for attempt in range(1, LOCAL_START_TRIES + 1):
            try:
                ray.init(address="local", **init)  # never a cluster found in /tmp/ray
                break
            except Exception as exc:
                ray.shutdown()
                if attempt == LOCAL_START_TRIES:
                    failure.append(exc)
                    started.set()
                    return
        started.set()
        threading.Event().wait()  # the cluster's processes live while this thread does

    threading.Thread(target=keep, name="cnnlab-ray-local", daemon=True).start()
    started.wait()
    if failure:
        raise failure[0]


def connect(settings: RaySettings):
    """The ``ray`` module, connected to the cluster (once per process; a process that has
    already called ``ray.init`` keeps its cluster). Raises ``TaskProcessError`` when Ray is
    not installed or the cluster cannot be reached."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"  # read when ray is first imported
    try:
        import ray
    except ImportError as exc:
        raise TaskProcessError(
            "CNNLAB_RAY_ADDRESS is set but Ray is not installed on this server: "
            "pip install -r requirements-ray.txt, or unset the variable."
        ) from exc
    with _CONNECT_LOCK:
        if ray.is_initialized():
            return ray
        common = {"namespace": NAMESPACE, "log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if settings.address == "local":
                _start_local(
                    ray,
                    num_cpus=os.cpu_count() or 1,
                    resources={RESOURCE: budgets().max_trainings},
                    include_dashboard=False,
                    object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                    **common,
                )
            else:
                ray.init(address=settings.address, **common)
        except Exception as exc:  # ConnectionError, RuntimeError, ValueError from ray.init
            raise TaskProcessError(
                f"The training cluster (CNNLAB_RAY_ADDRESS={settings.address}) cannot be "
                f"reached ({type(exc).__name__}: {exc}). Try again in a minute; if it keeps "
                "failing, tell the person who runs this server."
            ) from exc
    return ray


# --------------------------------------------------------------------------------------------
# What crosses the wire
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """A worker ready for the cluster: ``data`` (pickled, naming no server path) and the
    large ``arrays`` it refers to, which go to the object store."""

    data: bytes
    arrays: tuple[np.ndarray, ...]

    @property
    def nbytes(self) -> int:
        return len(self.data) + sum(int(a.nbytes) for a in self.arrays)


def _from_portable(portable: Any) -> Any:
    """On the worker: the object ``portable`` stands for (``portable.rebuild()``)."""
    return portable.rebuild()


class _PortablePickler(pickle.Pickler):
    """Pickles large arrays by reference (into ``arrays``) and portable objects as what
    their ``to_portable(max_bytes)`` returns."""

    def __init__(self, file: io.BytesIO, max_bytes: int):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.max_bytes = max_bytes
        self.arrays: list[np.ndarray] = []
        self._index: dict[int, int] = {}

    def persistent_id(self, obj: Any) -> Any:
        if type(obj) is np.ndarray and obj.nbytes >= STORE_MIN_BYTES and not obj.dtype.hasobject:
            if id(obj) not in self._index:
                self._index[id(obj)] = len(self.arrays)
                self.arrays.append(obj)
            return ("array", self._index[id(obj)])
        return None

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type):
            return NotImplemented
        to_portable = getattr(type(obj), "to_portable", None)
        if to_portable is None:
            return NotImplemented
        return (_from_portable, (to_portable(obj, self.max_bytes),))


class _PortableUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, arrays: Sequence[np.ndarray]):
        super().__init__(file)
        self.arrays = arrays

    def persistent_load(self, pid: Any) -> Any:
        kind, index = pid
        if kind != "array":
            raise pickle.UnpicklingError(f"unknown reference {kind!r}")
        return self.arrays[index]


def _too_big(nbytes: int, limit: int) -> BudgetError:
    return BudgetError(
        f"This training's data take {format_bytes(nbytes)}, more than the "
        f"{format_bytes(limit)} one training may send to the training cluster. Use fewer or "
        "smaller images."
    )


def portable_payload(worker: Any, *, required: bool, max_bytes: int) -> Payload | None:
    """``worker`` ready for the cluster (see ``Payload``), or None when it does not pickle
    and is not ``required`` to (a logged warning; ``InvalidArgumentError`` when required,
    as ``cnnlib.training.task_process.pickled_for_child``). Raises ``BudgetError`` when it
    would send more than ``max_bytes``."""
    buffer = io.BytesIO()
    pickler = _PortablePickler(buffer, max_bytes)
    try:
        pickler.dump(worker)
    except BudgetError:
        raise
    except Exception as exc:  # whatever a user's builder or callback raises when pickled
        refuse_or_warn_unpicklable(worker, exc, required=required, where="on the training cluster")
        return None
    payload = Payload(buffer.getvalue(), tuple(pickler.arrays))
    if payload.nbytes > max_bytes:
        raise _too_big(payload.nbytes, max_bytes)
    return payload


def load_payload(data: bytes, arrays: Sequence[np.ndarray]) -> Any:
    """On the worker: the worker ``portable_payload`` pickled, its arrays put back."""
    return _PortableUnpickler(io.BytesIO(data), arrays).load()


class _ArrayStore:
    """Large arrays put in the object store once per server process (MNIST: once per
    replica, whichever session sends them), found again by their content."""

    def __init__(self, capacity: int = STORED_ARRAYS):
        self.capacity = capacity
        self._lock = threading.Lock()
        self._refs: OrderedDict[tuple, Any] = OrderedDict()
        self._keys: dict[int, tuple[Any, tuple]] = {}

    def _key(self, array: np.ndarray) -> tuple:
        known = self._keys.get(id(array))
        if known is not None and known[0]() is array:
            return known[1]
        digest = hashlib.blake2b(np.ascontiguousarray(array), digest_size=16).hexdigest()
        key = (array.shape, array.dtype.str, digest)
        ident, forget = id(array), self._keys.pop
        self._keys[ident] = (weakref.ref(array, lambda _: forget(ident, None)), key)
        return key

    def refs(self, ray: Any, arrays: Sequence[np.ndarray]) -> list:
        """An object-store reference for each array (put now if not there yet)."""
        found = []
        with self._lock:
            for array in arrays:
                key = self._key(array)
                ref = self._refs.get(key)
                if ref is None:
                    ref = self._refs[key] = ray.put(array)
                    while len(self._refs) > self.capacity:
                        self._refs.popitem(last=False)
                self._refs.move_to_end(key)
                found.append(ref)
        return found

    def clear(self) -> None:
        with self._lock:
            self._refs.clear()


# --------------------------------------------------------------------------------------------
# The actor (on a cluster node)
# --------------------------------------------------------------------------------------------


class _Relay:
    """What the worker's ``update`` / ``append`` send through in the actor: a buffer."""

    def __init__(self, events: list, lock: threading.Lock):
        self._events, self._lock = events, lock

    def send(self, message: tuple[str, Any]) -> None:
        with self._lock:
            self._events.append(message)


def _gpu_memory_mb() -> int | None:
    """Total memory of the first GPU Ray gave this process, MiB (None: unknown)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    command = ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"]
    if visible:
        command += ["-i", visible]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
        return int(done.stdout.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def limit_tensorflow(threads: int, gpus: float) -> None:
    """In an actor, before TensorFlow starts: its thread pools of ``threads`` threads (the
    variables it reads when it starts; Ray sets ``OMP_NUM_THREADS``), and for a fraction of
    a GPU a memory limit of that share of it (Ray enforces neither). TensorFlow is imported
    here only for a GPU fraction."""
    os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    if not 0 < gpus < 1:
        return
    import tensorflow as tf

    total = _gpu_memory_mb()
    devices = tf.config.list_physical_devices("GPU")
    if total is None or not devices:
        _log.warning("No GPU memory limit for a %g GPU share: the GPU was not found.", gpus)
        return
    limit = int(total * gpus * GPU_MEMORY_USABLE)
    for device in devices:
        tf.config.set_logical_device_configuration(
            device, [tf.config.LogicalDeviceConfiguration(memory_limit=limit)]
        )


class TrainingActor:
    """One training on a cluster node (made a Ray actor by ``RayBackend``; threaded, so
    that ``drain`` and ``stop`` answer while ``run`` trains).

    ``payload`` / ``arrays``: from ``portable_payload`` (the arrays arrive from the object
    store); ``threads`` / ``gpus``: TensorFlow's share of this node.
    """

    def __init__(self, payload: bytes, threads: int, gpus: float, *arrays: np.ndarray):
        self._payload, self._arrays = payload, arrays
        self._threads, self._gpus = threads, gpus
        self._events: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._control = TaskControl()

    def ping(self) -> tuple[int, str]:
        """(this process's id, this node's ID): the actor has started."""
        import ray

        return os.getpid(), ray.get_runtime_context().get_node_id()

    def run(self) -> tuple[str, Any]:
        """The training: ("done", the worker's ``export_result()``) or ("failed", the
        learner's message). Files it writes go to a folder of its own, removed at the end."""
        folder = tempfile.mkdtemp(prefix="cnnlab-actor-")
        tempfile.tempdir = folder
        try:
            limit_tensorflow(self._threads, self._gpus)
            worker = load_payload(self._payload, self._arrays)
            self._payload, self._arrays = b"", ()
            worker.attach_child(_Relay(self._events, self._lock), self._stop)
            self._control.sync(worker.control.state())  # unless the server's is newer
            worker.control = self._control
            return run_job(worker)
        except Exception as exc:  # the job could not be set up here: say so, for the learner
            _log.exception("The training could not be set up on this node.")
            return ("failed", f"The training could not be set up on the cluster ({exc}).")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def drain(self) -> tuple[list[tuple[str, Any]], int, float]:
        """(the progress events since the last call, in order; resident memory, bytes;
        processor time this process has used, seconds)."""
        with self._lock:
            events = self._events.copy()
            self._events.clear()  # the same list: the relay appends to it
        return events, process_rss_bytes(os.getpid()) or 0, time.process_time()

    def stop(self) -> float:
        """End the training at its next batch; its model is kept. Returns the processor
        time this process had used (seconds), from which ``StopClock`` counts."""
        self._stop.set()
        return time.process_time()

    def control(self, state: dict[str, Any]) -> None:
        """Pause, Step or a new learning rate (``TaskControl.state()`` of the server's)."""
        self._control.sync(state)


# --------------------------------------------------------------------------------------------
# The server's side
# --------------------------------------------------------------------------------------------


def _ended_unexpectedly() -> TaskProcessError:
    return TaskProcessError(
        "The training's process on the cluster ended unexpectedly (it ran out of memory, was "
        "killed or lost its node); nothing it learned could be kept. Try again, with a "
        "smaller batch size or fewer images."
    )


def _apply_drained(ray: Any, drain: Any, worker: Any, limit: int, peak: int) -> tuple[int, float]:
    """The events of one ``drain`` call applied to ``worker`` in order, the actor's memory
    checked: ``BudgetError`` above ``limit``. Returns (its peak memory so far, bytes, also
    in the progress; its processor time, seconds)."""
    try:
        events, rss, cpu_seconds = ray.get(drain)
    except ray.exceptions.RayError as exc:
        raise _ended_unexpectedly() from exc
    for kind, fields in events:
        apply_message(worker, kind, fields)
    peak = max(peak, rss)
    worker.update(process_peak_bytes=peak)
    if rss > limit:
        raise over_memory_error(limit, rss)
    return peak, cpu_seconds


class RayBackend:
    """Runs a worker as a ``TrainingActor`` on the cluster (see the module docstring)."""

    name = "ray"

    def __init__(self) -> None:
        self._actor_class: Any = None
        self._store = _ArrayStore()
        self._capacity_checked = False

    def _actor(self, ray: Any) -> Any:
        if self._actor_class is None:
            self._actor_class = ray.remote(max_restarts=0, max_concurrency=4)(TrainingActor)
        return self._actor_class

    def run(self, worker: Any, *, required: bool) -> bool:
        settings = RaySettings.from_env()
        limits = budgets()
        payload = portable_payload(worker, required=required, max_bytes=limits.ray_payload_bytes)
        if payload is None:
            return False
        ray = connect(settings)
        self._check_capacity(ray, settings)
        refs = self._store.refs(ray, payload.arrays)
        actor = (
            self._actor(ray)
            .options(
                num_cpus=settings.cpus_per_training,
                num_gpus=settings.gpus_per_training,
                memory=limits.training_process_bytes,
                resources={RESOURCE: 1},
            )
            .remote(payload.data, settings.threads, settings.gpus_per_training, *refs)
        )
        del payload, refs
        try:
            if self._started(ray, actor, worker):
                self._relay(ray, actor, worker, limits.training_process_bytes)
            return True
        finally:
            ray.kill(actor, no_restart=True)  # its process ends: TensorFlow's memory is freed

    def _check_capacity(self, ray: Any, settings: RaySettings) -> None:
        """Log once (for the operator) when the cluster has no node that could ever run a
        training: they then wait, queued on the cluster, until one joins."""
        if self._capacity_checked:
            return
        self._capacity_checked = True
        total = ray.cluster_resources()
        missing = [
            f"{name} {need:g} (the cluster has {total.get(name, 0):g})"
            for name, need in (
                (RESOURCE, 1),
                ("CPU", settings.cpus_per_training),
                ("GPU", settings.gpus_per_training),
            )
            if need and total.get(name, 0) < need
        ]
        if missing:
            _log.warning(
                "No Ray node can run a training now (each needs %s): trainings wait until one "
                "joins. Start nodes with --resources='{\"%s\": <trainings at once>}'.",
                ", ".join(missing),
                RESOURCE,
            )

    def _started(self, ray: Any, actor: Any, worker: Any) -> bool:
        """Wait until the actor runs (True), or until Stop while it waits (False)."""
        worker.restart_clock(running=False)  # waiting on the cluster is not training time
        worker.update(state="queued", queued_on_cluster=True, queue_position=None)
        ping = actor.ping.remote()
        while not ray.wait([ping], timeout=WAIT_SECONDS)[0]:
            if worker.stop_event.is_set():
                worker.update(queued_on_cluster=False)
                return False
        try:
            pid, node = ray.get(ping)
        except ray.exceptions.RayError as exc:
            raise _ended_unexpectedly() from exc
        worker.update(
            state="stopping" if worker.stop_event.is_set() else "running",
            queued_on_cluster=False,
            process_id=pid,
            node=node,
        )
        worker.restart_clock()
        return True

    def _relay(self, ray: Any, actor: Any, worker: Any, limit: int) -> None:
        """Pull the actor's events until its result is in ``worker`` (see the module doc).

        A ``drain`` call goes out every ``DRAIN_SECONDS`` and is applied as soon as it
        answers, so an event waits at most ``DRAIN_SECONDS`` plus one round trip. At most
        one is in flight: an actor busy in code that holds Python's lock (importing
        TensorFlow takes tens of seconds on a loaded node) answers it late, and meanwhile
        Stop is still forwarded (checked every ``WAIT_SECONDS``) and its wall-clock bound
        counted; its processor time is counted as the drains report it, from the actor's
        answer to ``stop()``."""
        result = actor.run.remote()
        peak = 0
        drain = None
        next_drain = 0.0
        stop_clock: StopClock | None = None
        stopped = None  # the actor's answer to stop(): its processor time then
        control_sent = -1
        while True:
            if worker.stop_event.is_set() and stop_clock is None:
                stop_clock = StopClock(None)
                stopped = actor.stop.remote()
            if stopped is not None and ray.wait([stopped], timeout=0)[0]:
                with contextlib.suppress(ray.exceptions.RayError):  # it ended: `result` says
                    stop_clock.start_cpu(ray.get(stopped))
                stopped = None
            if worker.control.version != control_sent and stop_clock is None:
                state = worker.control.state()
                control_sent = state["version"]
                actor.control.remote(state)
            if drain is None and time.monotonic() >= next_drain:
                drain = actor.drain.remote()
                next_drain = time.monotonic() + DRAIN_SECONDS
            waiting = [result] if drain is None else [result, drain]
            ray.wait(waiting, num_returns=1, timeout=WAIT_SECONDS)
            done = bool(ray.wait([result], timeout=0)[0])
            drained: float | None = None
            if drain is not None and (done or ray.wait([drain], timeout=0)[0]):
                peak, drained = _apply_drained(ray, drain, worker, limit, peak)
                drain = None
            if done:  # every event of the run is in the actor now: one last pull
                _apply_drained(ray, actor.drain.remote(), worker, limit, peak)
                try:
                    kind, fields = ray.get(result)
                except ray.exceptions.RayError as exc:
                    raise _ended_unexpectedly() from exc
                if kind == "failed":
                    raise TaskProcessError(fields)
                try:
                    worker.import_result(fields)
                except Exception as exc:
                    raise TaskProcessError(
                        "The training finished, but its model could not be loaded back into "
                        "the server. Try again."
                    ) from exc
                return
            overdue = stop_clock and stop_clock.overdue(drained)
            if overdue:
                raise not_stopped_error(overdue)
