"""Where trainings run: the default child processes against a local Ray cluster, in one run.

N small MNIST trainings (a 2-layer convnet, ``--train-size`` real digits, ``--epochs``
epochs) are submitted at once through the real queue (``TrainingSlots`` with
``budgets().max_trainings`` at once, N waiting, as ``default_slots()``), first on the
"process" backend, then on "ray" (``CNNLAB_RAY_ADDRESS=local``: a private cluster with as
many training slots; started once, its start time and memory reported apart), for each N
of ``--n``. Then ``--stops`` trainings of many epochs are stopped after a few batches, on
each backend. Measured:

- makespan (first submit to last result) and trainings per minute;
- submit → first batch (queue included) and slot → first batch (from the moment the
  training left the server's queue: process start, or actor placement and start, plus
  TensorFlow's import and the model's build), from a timestamp the training writes at each
  batch end where it runs;
- progress latency p50/p95: from that timestamp to the moment the server applied the
  batch's progress (the relay's own hook, no polling);
- Stop → stopped: from ``stop()`` to the task's end, with the model back (saved as
  ``.keras`` where it trained and loaded in the server: that round trip, timed here, is
  part of it on every backend); the child or the actor is then killed;
- this server process's resident memory before and after each backend's trainings (after a
  garbage collection and ``malloc_trim``), and the Ray processes' memory;
- the load average before and after each round: the backends run one after the other, so
  on a shared machine other work can favour either; compare rounds of similar load.

TARGET lines: Ray throughput ≥ 0.85 × process (as process ÷ Ray ≤ 1/0.85) at each N; Ray's
extra slot → first batch ≤ 2 s; progress p95 ≤ 0.5 s; Stop p95 ≤ 2 s + one batch; the
server's RSS growth over the Ray runs ≤ 10 %.

``--two-nodes`` runs the second experiment instead: a cluster of two raylets on this
machine, the head without the training resource and this process its driver (on the
head's node); N trainings must all finish on the worker node. The cluster is started here
(``ray.cluster_utils.Cluster``), or with ``--address`` is one started by hand: ``ray start
--head --num-cpus=1`` and ``ray start --address=<head> --num-cpus=2
--resources='{"cnnlab_training": 2}'``, run from the repository root.

On a GPU machine: ``CNNLAB_MAX_TRAININGS=8 CNNLAB_RAY_GPUS_PER_TRAINING=0.125 python
benchmarks/backend_bench.py`` (or 1.0 with as many trainings as GPUs); trainings per
minute per GPU are printed. Run from anywhere (it works in the repository root); needs
``requirements-ray.txt`` and the MNIST test set (``$CNNLAB_DATA_DIR``, by default the shared
one).

    python benchmarks/backend_bench.py [--n 8 16] [--train-size 2000] [--epochs 2] [--quick]
    python benchmarks/backend_bench.py --two-nodes [--n 4] [--address 127.0.0.1:6379]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import keras
import numpy as np

from benchmarks.targets import report_targets
from cnnlib.core.budgets import budgets
from cnnlib.core.heap import free_memory
from cnnlib.data.mnist import read_idx
from cnnlib.models import LayerSpec, build_from_stack
from cnnlib.training import ray_backend, task_process
from cnnlib.training.task_process import process_rss_bytes
from cnnlib.training.trainer import TrainConfig, TrainingJob, TrainingSlots

ROOT = Path(__file__).resolve().parents[1]
THROUGHPUT_RATIO = 0.85
EXTRA_START_LIMIT = 2.0
PROGRESS_P95_LIMIT = 0.5
STOP_LIMIT = 2.0  # + one batch
RSS_GROWTH_LIMIT = 0.10

STACK = [
    LayerSpec.conv2d(16, 3, strides=2, padding="same", activation="relu"),
    LayerSpec.conv2d(32, 3, strides=2, padding="same", activation="relu"),
    LayerSpec.flatten(),
    LayerSpec.dense(10, activation="softmax"),
]


def small_convnet(seed=None):
    """The benchmark's model (module-level: it is pickled to where the training runs)."""
    return build_from_stack(STACK, seed=seed)


class BatchStamps(keras.callbacks.Callback):
    """Appends "epoch step time" to ``path`` at every batch end, where the training runs."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        with open(self.path, "a") as f:
            f.write(f"{self.epoch} {batch + 1} {time.time():.6f}\n")


# --------------------------------------------------------------------------------------------
# Instrumentation on the server's side
# --------------------------------------------------------------------------------------------


class TimedSlots(TrainingSlots):
    """The real queue, recording when each training leaves it (time.time())."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.left: dict[int, float] = {}

    def acquire(self, ticket, cancelled):
        got = super().acquire(ticket, cancelled)
        if got:
            self.left[id(ticket)] = time.time()
        return got


RECEIVED: dict[tuple[int, int, int], float] = {}
_RECEIVED_LOCK = threading.Lock()


def _recording(apply):
    """``apply_message`` that also records when each batch's progress reached the server."""

    def apply_message(worker, kind, fields):
        apply(worker, kind, fields)
        if kind == "update" and "step" in fields:
            key = (id(worker), worker.progress.epoch, fields["step"])
            with _RECEIVED_LOCK:
                RECEIVED.setdefault(key, time.time())

    return apply_message


def install_hooks() -> None:
    """Record every batch's arrival on the server, on both backends' relays."""
    task_process.apply_message = _recording(task_process.apply_message)
    ray_backend.apply_message = _recording(ray_backend.apply_message)


def rss() -> int:
    free_memory()
    return process_rss_bytes(os.getpid()) or 0


def descendants_rss(pid: int) -> int:
    """Resident memory of every process below ``pid``, bytes (Ray's processes)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        todo += parents.get(child, [])
        total += process_rss_bytes(child) or 0
    return total


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# --------------------------------------------------------------------------------------------
# One round
# --------------------------------------------------------------------------------------------


def _stamps(path: Path) -> list[tuple[int, int, float]]:
    if not path.exists():
        return []
    return [
        (int(e), int(s), float(t))
        for e, s, t in (line.split() for line in path.read_text().splitlines() if line)
    ]


def run_round(backend: str, n: int, data, args, folder: Path, *, stop_after: int = 0) -> dict:
    """N trainings at once through the queue on ``backend``; with ``stop_after``, each is
    stopped once it has done that many batches. Returns the measurements."""
    if backend == "ray":
        os.environ["CNNLAB_RAY_ADDRESS"] = os.environ.get("BENCH_RAY_ADDRESS", "local")
    else:
        os.environ.pop("CNNLAB_RAY_ADDRESS", None)
    slots = TimedSlots(budgets().max_trainings, n)
    epochs = 100 if stop_after else args.epochs
    config = TrainConfig(
        batch_size=args.batch_size,
        epochs=epochs,
        train_size=args.train_size,
        validation_split=0.1,
        seed=0,
    )
    load_before = os.getloadavg()[0]
    jobs, submitted, paths = [], [], []
    for i in range(n):
        path = folder / f"{backend}-{n}-{stop_after}-{i}.stamps"
        path.unlink(missing_ok=True)
        stamps = BatchStamps(str(path))
        job = TrainingJob(small_convnet, data, config, slots=slots, callbacks=[stamps])
        jobs.append(job)
        paths.append(path)
    t0 = time.time()
    for job in jobs:
        submitted.append(time.time())
        job.start()
    stop_asked: dict[int, float] = {}
    ended: dict[int, float] = {}  # when each training's end was seen (polled every 10 ms)
    while len(ended) < n:
        for i, job in enumerate(jobs):
            if i in ended:
                continue
            if job.done:
                ended[i] = time.time()
                if stop_after and i not in stop_asked:
                    raise SystemExit(f"training {i} ended before its Stop: {job.snapshot()}")
            elif stop_after and i not in stop_asked and job.snapshot().step >= stop_after:
                stop_asked[i] = time.time()
                job.stop()
        if time.time() - t0 > 3600:
            raise SystemExit(f"{backend}: trainings still running after an hour")
        time.sleep(0.01)
    for job in jobs:
        p = job.snapshot()
        if p.state not in ("finished", "stopped") or job.model is None:
            raise SystemExit(f"{backend}: a training ended {p.state}: {p.error}")
    makespan = max(ended.values()) - t0
    first_batch, slot_first, latencies, batch_seconds, nodes, devices = [], [], [], [], set(), set()
    for i, (job, path) in enumerate(zip(jobs, paths, strict=True)):
        stamps = _stamps(path)
        worker = job._worker
        first_batch.append(stamps[0][2] - submitted[i])
        slot_first.append(stamps[0][2] - slots.left[id(worker)])
        for epoch, step, t in stamps:
            got = RECEIVED.get((id(worker), epoch, step))
            if got is not None:
                latencies.append(got - t)
        times = [t for _, _, t in stamps]
        batch_seconds += list(np.diff(times)) if len(times) > 1 else []
        p = job.snapshot()
        nodes.add(p.node or "this machine")
        devices.add(p.device)
    stop_seconds = [ended[i] - stop_asked[i] for i in stop_asked]
    return {
        "backend": backend,
        "n": n,
        "makespan": makespan,
        "per_minute": n / makespan * 60,
        "first_batch": first_batch,
        "slot_first": slot_first,
        "latencies": latencies,
        "batch": statistics.median(batch_seconds) if batch_seconds else float("nan"),
        "stop": stop_seconds,
        "nodes": nodes,
        "devices": devices,
        "load": (load_before, os.getloadavg()[0]),
    }


def describe(r: dict) -> None:
    line = (
        f"{r['backend']:>7} N={r['n']:<3} makespan {r['makespan']:7.1f} s  "
        f"{r['per_minute']:6.2f} trainings/min  submit→1st batch p50 "
        f"{pct(r['first_batch'], 50):5.1f} s max {max(r['first_batch']):5.1f} s  "
        f"slot→1st batch mean {statistics.mean(r['slot_first']):5.2f} s  "
        f"progress p50 {pct(r['latencies'], 50):.3f} s p95 {pct(r['latencies'], 95):.3f} s "
        f"({len(r['latencies'])} batches)  batch {r['batch'] * 1000:.0f} ms"
    )
    if r["stop"]:
        line += f"  Stop→stopped p50 {pct(r['stop'], 50):.2f} s p95 {pct(r['stop'], 95):.2f} s"
    print(line, flush=True)
    print(
        f"        devices {sorted(r['devices'])}  nodes {len(r['nodes'])}  load average "
        f"{r['load'][0]:.1f} → {r['load'][1]:.1f} (other work on this machine counts too)",
        flush=True,
    )


# --------------------------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------------------------


def digits(args):
    folder = Path(os.environ["CNNLAB_DATA_DIR"])
    x = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    y = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    return (x[:8000], y[:8000]), (x[8000:], y[8000:])


def warm_up(data, folder: Path) -> None:
    """TensorFlow imported here and one model loaded back (what a replica holds anyway)."""
    os.environ["CNNLAB_TRAINING_PROCESS"] = "0"
    config = TrainConfig(epochs=1, train_size=500)
    job = TrainingJob(small_convnet, data, config, slots=TrainingSlots(1))
    job.start().wait(600)
    from cnnlib.training.trainer import load_model_bytes, save_model_bytes

    load_model_bytes(save_model_bytes(job.model))
    trips = []
    for _ in range(3):
        t0 = time.perf_counter()
        load_model_bytes(save_model_bytes(job.model))
        trips.append(time.perf_counter() - t0)
    print(
        f"the model's way back (save as .keras + load here), part of every Stop→stopped: "
        f"median {statistics.median(trips):.2f} s",
        flush=True,
    )
    del os.environ["CNNLAB_TRAINING_PROCESS"]


def gpu_count() -> int:
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def main_compare(args) -> int:
    data = digits(args)
    folder = Path(tempfile.mkdtemp(prefix="cnnlab-bench-"))
    warm_up(data, folder)
    limits = budgets()
    settings = ray_backend.RaySettings.from_env({**os.environ, "CNNLAB_RAY_ADDRESS": "local"})
    gpus = gpu_count()
    print(
        f"{args.train_size} digits × {args.epochs} epochs, batch {args.batch_size}; "
        f"{limits.max_trainings} trainings at once on each backend; {os.cpu_count()} CPUs, "
        f"{gpus} GPUs; Ray: {settings.cpus_per_training:g} CPU and "
        f"{settings.gpus_per_training:g} GPU per training",
        flush=True,
    )
    results: dict[tuple[str, int], dict] = {}
    stops: dict[str, dict] = {}
    memory: dict[str, tuple[int, int]] = {}
    for backend in ("process", "ray"):
        if backend == "ray":
            unjoined = rss()
            t0 = time.perf_counter()
            ray = ray_backend.connect(settings)
            started = time.perf_counter() - t0
            print(
                f"ray local: started in {started:.1f} s; this server's RSS "
                f"{unjoined / 1e6:.0f} MB → {rss() / 1e6:.0f} MB for importing Ray and joining; "
                f"the cluster's processes use "
                f"{descendants_rss(os.getpid()) / 1e6:.0f} MB; resources "
                f"{ {k: v for k, v in ray.cluster_resources().items() if 'node' not in k} }",
                flush=True,
            )
        before = rss()
        for n in args.n:
            results[backend, n] = r = run_round(backend, n, data, args, folder)
            describe(r)
        if args.stops:
            stops[backend] = r = run_round(
                backend, args.stops, data, args, folder, stop_after=args.stop_after
            )
            describe(r)
        memory[backend] = (before, rss())
        print(
            f"{backend:>7} server RSS {memory[backend][0] / 1e6:.0f} MB before, "
            f"{memory[backend][1] / 1e6:.0f} MB after",
            flush=True,
        )
    targets = []
    for n in args.n:
        p, r = results["process", n], results["ray", n]
        if gpus:
            print(f"N={n}: Ray {r['per_minute'] / gpus:.2f} trainings/min per GPU")
        ratio = p["per_minute"] / r["per_minute"]
        targets.append((f"throughput_process_over_ray_N{n}", ratio, 1 / THROUGHPUT_RATIO))
    extra = statistics.mean(
        statistics.mean(results["ray", n]["slot_first"])
        - statistics.mean(results["process", n]["slot_first"])
        for n in args.n
    )
    targets.append(("ray_extra_start_seconds", extra, EXTRA_START_LIMIT))
    ray_latencies = [x for n in args.n for x in results["ray", n]["latencies"]]
    targets.append(("ray_progress_p95_seconds", pct(ray_latencies, 95), PROGRESS_P95_LIMIT))
    if args.stops:
        s = stops["ray"]
        targets.append(("ray_stop_p95_seconds", pct(s["stop"], 95), STOP_LIMIT + s["batch"]))
    before, after = memory["ray"]
    targets.append(("ray_server_rss_growth", after / before - 1, RSS_GROWTH_LIMIT))
    return report_targets(targets, digits=3)


def _join(address: str):
    import ray

    ray.init(address=address, namespace=ray_backend.NAMESPACE, log_to_driver=False)
    return ray


def main_two_nodes(args) -> int:
    """Two raylets on this machine; the head (this driver's node) trains nothing. With
    ``--address``, the cluster is one started by hand (``ray start --head`` and ``ray start
    --address``); else ``ray.cluster_utils.Cluster`` starts both here."""
    data = digits(args)
    folder = Path(tempfile.mkdtemp(prefix="cnnlab-bench-"))
    cluster = None
    if args.address:
        address = args.address
    else:
        from ray.cluster_utils import Cluster

        cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "include_dashboard": False},
        )
        cluster.add_node(num_cpus=2, resources={ray_backend.RESOURCE: 2})
        cluster.wait_for_nodes()
        address = cluster.address
    try:
        ray = _join(address)
        head = ray.get_runtime_context().get_node_id()
        nodes = [n for n in ray.nodes() if n["Alive"]]
        trainers = {n["NodeID"] for n in nodes if n["Resources"].get(ray_backend.RESOURCE)}
        for n in nodes:
            print(
                f"node {n['NodeID'][:12]} {n['NodeManagerAddress']}:{n['NodeManagerPort']} "
                f"{'(this driver) ' if n['NodeID'] == head else ''}resources "
                f"{ {k: v for k, v in n['Resources'].items() if not k.startswith('node')} }",
                flush=True,
            )
        if len(nodes) < 2 or head in trainers or not trainers:
            raise SystemExit("needs two live nodes, the driver's without cnnlab_training")
        os.environ["BENCH_RAY_ADDRESS"] = address
        n = args.n[0]
        r = run_round("ray", n, data, args, folder)
        describe(r)
        on_workers = r["nodes"] <= trainers
        print(
            f"{n} trainings finished on node(s) {sorted(x[:12] for x in r['nodes'])}; "
            f"all on the worker node: {on_workers}; none on the head: {head not in r['nodes']}",
            flush=True,
        )
        return report_targets([("trainings_not_on_the_worker_node", float(not on_workers), 0)])
    finally:
        import ray

        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--stops", type=int, default=4, help="trainings stopped, per backend")
    parser.add_argument("--stop-after", type=int, default=5, help="batches before Stop")
    parser.add_argument("--two-nodes", action="store_true")
    parser.add_argument("--address", help="--two-nodes on this running cluster (host:port)")
    parser.add_argument("--quick", action="store_true", help="N=2 and 500 digits: a check")
    args = parser.parse_args()
    os.chdir(ROOT)  # Ray's workers import the project from the driver's working directory
    os.environ.setdefault("CNNLAB_DATA_DIR", str(ROOT.parent / "shared" / "data" / "mnist"))
    install_hooks()
    if args.quick:
        args.n, args.train_size, args.epochs, args.stops = [2], 500, 1, 2
    return main_two_nodes(args) if args.two_nodes else main_compare(args)


if __name__ == "__main__":
    # The model builder and the callback must be importable where trainings run: as
    # benchmarks.backend_bench, not __main__.
    from benchmarks import backend_bench

    sys.exit(backend_bench.main())
