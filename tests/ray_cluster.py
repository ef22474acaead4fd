"""A private Ray cluster for the tests (one per test session, ``tests/conftest.py``'s
``ray_cluster`` fixture) and what the tests read from it.

Ray's public state API (``ray.util.state``) needs the dashboard, which ``requirements-ray.txt``
leaves out (``ray`` without ``[default]``); the actors are read from the GCS actor table
instead (``ray._private.state.actors()``, the table ``ray list actors`` is built on)."""

from __future__ import annotations

import os
import time
from pathlib import Path

#: Training slots the test cluster advertises (the ``cnnlab_training`` resource).
TEST_SLOTS = 2


def start(**overrides):
    """``ray.init`` of a small private cluster: 2 CPUs, no GPU, no dashboard, a 256 MiB
    object store, ``TEST_SLOTS`` training slots. Returns (ray, seconds to start, bytes of
    resident memory of the processes it started)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"  # no implicit ray.init() after shutdown
    import ray

    from cnnlib.training.ray_backend import NAMESPACE, RESOURCE

    t0 = time.perf_counter()
    for attempt in (1, 2):  # a raylet whose agents start slowly dies at start (ray#65983)
        try:
            ray.init(
                address="local",  # a new cluster, never one found in /tmp/ray
                num_cpus=2,
                num_gpus=0,
                include_dashboard=False,
                object_store_memory=256 * 2**20,
                resources={RESOURCE: TEST_SLOTS},
                log_to_driver=False,
                namespace=NAMESPACE,
                **overrides,
            )
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    seconds = time.perf_counter() - t0
    return ray, seconds, descendants_rss(os.getpid())


def descendants_rss(pid: int) -> int:
    """Resident memory of every process below ``pid`` (children, grandchildren…), bytes."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        todo += parents.get(child, [])
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def training_actors(ray, states=("DEPENDENCIES_UNREADY", "PENDING_CREATION", "ALIVE")) -> list:
    """The cluster's ``TrainingActor``s in one of ``states`` (default: not dead), as rows of
    the GCS actor table (dicts with "ActorID", "State", "Address", "Pid"…)."""
    from ray._private import state

    return [
        row
        for row in state.actors().values()
        if row["ActorClassName"] == "TrainingActor" and row["State"] in states
    ]
