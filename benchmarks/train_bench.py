"""Training benchmark: the app's default recipe vs the tutorials' script on Fashion-MNIST.

In one process, on the full Fashion-MNIST training set (60,000 images, Debian's
``dataset-fashion-mnist``):

1. Reference — the tutorials' script as written: the tutorial convnet, rmsprop, batch 64,
   5 epochs, plain ``model.fit`` (``verbose=0``: no progress bar, the fastest form of the
   script), then ``model.evaluate`` on the 10,000 test images. Timed: data preparation,
   build, compile and fit.
2. Fast recipe — ``build_fast_convnet`` trained through ``cnnlib.training.trainer.TrainingJob``
   with the live-progress callback and a poller reading ``snapshot()`` twice a second, as
   the page does. The test set is evaluated after every epoch (time excluded); the result
   is the time until the first epoch whose test accuracy reaches the reference's.
3. Overhead — the same recipe (same model, seed, optimizer, schedule, batch size, epochs,
   training/validation split) with a plain ``model.fit`` on arrays, alternated with the
   job (no per-epoch test evaluation) ``--repeats`` times; the fastest of each is kept. The
   job's overhead (callback, input pipeline, thread, polling) is its fit time over the bare
   one.

Targets: time-to-reference-accuracy ratio ≤ 0.5; overhead ≤ 5%, both as the job's fit time
over the bare one and as the time spent inside the callback over the fit time (measured by
the callback itself, so free of the machine's noise). Peak memory (maxrss) is reported.
``--quick`` runs a reduced version (12,000 images, 2 reference epochs) to check the script,
not the targets. Exit status 1 when a target fails.

    python benchmarks/train_bench.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np

from benchmarks.targets import report_targets
from cnnlib.data.mnist import load_dataset
from cnnlib.data.training_data import ArrayData
from cnnlib.models import DEFAULT_PRESET, PRESET_TRAINING, build_fast_convnet
from cnnlib.training.trainer import TrainConfig, TrainingJob, TrainingSlots

RATIO_LIMIT = 0.5
#: Width of the table's first column.
W = 72
OVERHEAD_LIMIT = 0.05


def cpu_name() -> str:
    """The CPU's model name (Linux), or the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def peak_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def warm_up() -> None:
    """One tiny fit, so that neither contender pays TensorFlow's first-use costs."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(4, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.zeros((256, 28, 28, 1), np.float32)
    model.fit(x, np.zeros(256, np.int32), batch_size=64, epochs=1, verbose=0)


def reference(train, test, epochs: int) -> dict:
    """The tutorials' script, as written (inline, not through cnnlib)."""
    import keras
    from keras import layers

    (train_images, train_labels), (test_images, test_labels) = train, test
    t0 = time.perf_counter()
    train_images = train_images.reshape((len(train_images), 28, 28, 1)).astype("float32") / 255
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train_images, train_labels, epochs=epochs, batch_size=64, verbose=0)
    seconds = time.perf_counter() - t0
    test_images = test_images.reshape((len(test_images), 28, 28, 1)).astype("float32") / 255
    _, test_acc = model.evaluate(test_images, test_labels, verbose=0)
    return {"seconds": seconds, "accuracy": float(test_acc), "params": model.count_params()}


def run_job(train, test, config: TrainConfig, *, eval_each_epoch: bool) -> dict:
    """The default recipe through TrainingJob, polled twice a second as the page does.

    With ``eval_each_epoch`` the test set is evaluated after every epoch (time excluded) and
    the times at which each epoch ended (since ``start()``) are returned with the accuracies.
    """
    import keras

    x_test = test[0][..., None]  # raw pixels: the model owns its rescaling
    y_test = test[1]
    epochs_seen: list[tuple[int, float, float]] = []
    clock = {"start": 0.0, "eval": 0.0}

    class EvalEachEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            reached = time.perf_counter() - clock["start"] - clock["eval"]
            t = time.perf_counter()
            _, acc = self.model.evaluate(x_test, y_test, batch_size=1024, verbose=0)
            clock["eval"] += time.perf_counter() - t
            epochs_seen.append((epoch + 1, reached, float(acc)))

    job = TrainingJob(
        build_fast_convnet,
        (train, test),
        config,
        slots=TrainingSlots(1),
        callbacks=[EvalEachEpoch()] if eval_each_epoch else [],
    )
    polls = 0
    clock["start"] = time.perf_counter()
    job.start()
    while not job.done:  # the page's fragment polls like this
        job.snapshot()
        polls += 1
        time.sleep(0.5)
    progress = job.wait()
    if progress.state != "finished":
        raise SystemExit(f"The fast recipe did not finish: {progress.state} {progress.error}")
    return {
        "epochs": epochs_seen,
        "fit_seconds": progress.train_seconds - clock["eval"],
        "callback_seconds": progress.callback_seconds,
        "test_accuracy": progress.test_accuracy,
        "params": job.model.count_params(),
        "polls": polls,
        "points": len(progress.batch_loss),
        "device": progress.device,
        "tf_version": progress.tf_version,
    }


def bare_fit(train, test, config: TrainConfig) -> float:
    """The same recipe with a plain model.fit on arrays: seconds in fit."""
    import keras

    data = ArrayData.from_tuple(
        (train, test),
        validation_split=config.validation_split,
        train_size=config.train_size,
        seed=config.seed,
    )
    x, y = data.arrays["train"]  # the job's own split, raw pixels
    validation = data.arrays.get("validation")
    model = build_fast_convnet(seed=config.seed)
    steps = -(-len(x) // config.batch_size) * config.epochs
    lr = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps)
    if config.lr_schedule != "cosine":
        lr = config.learning_rate
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    t0 = time.perf_counter()
    model.fit(
        x,
        y,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=validation,
        validation_batch_size=max(config.batch_size, 256),
        verbose=0,
    )
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced run to check the script")
    parser.add_argument(
        "--repeats", type=int, default=3, help="bare-fit/job pairs for the overhead (default 3)"
    )
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = load_dataset("fashion_mnist", allow_download=False)
    ref_epochs = 5
    if args.quick:
        x_train, y_train, ref_epochs = x_train[:12000], y_train[:12000], 2
    train, test = (x_train, y_train), (x_test, y_test)
    config = TrainConfig(**PRESET_TRAINING[DEFAULT_PRESET])
    if config.optimizer != "adam":
        raise SystemExit("bare_fit() mirrors an adam recipe; update it with the recipe.")

    import tensorflow as tf

    warm_up()
    mem = {"after warm-up": peak_mib()}
    ref = reference(train, test, ref_epochs)
    mem["after reference"] = peak_mib()
    fast = run_job(train, test, config, eval_each_epoch=True)
    mem["after fast recipe"] = peak_mib()
    # Overhead: alternate bare fits and jobs (no per-epoch test evaluation), keep the fastest
    # of each, the usual estimate of a duration on a machine with other work on it.
    bare_runs, job_runs, callback_shares = [], [], []
    for _ in range(args.repeats):
        bare_runs.append(bare_fit(train, test, config))
        job = run_job(train, test, config, eval_each_epoch=False)
        job_runs.append(job["fit_seconds"])
        callback_shares.append(job["callback_seconds"] / job["fit_seconds"])
    mem["after overhead runs"] = peak_mib()
    bare, job_fit = min(bare_runs), min(job_runs)

    reached = [(e, t, a) for e, t, a in fast["epochs"] if a >= ref["accuracy"]]
    time_to_target = reached[0][1] if reached else float("inf")
    ratio = time_to_target / ref["seconds"]
    overhead = job_fit / bare - 1.0
    callback_share = max(callback_shares)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"Fashion-MNIST, {len(x_train):,} training / {len(x_test):,} test images"
        f"{' (QUICK: reduced run, not the benchmark)' if args.quick else ''}"
    )
    print(
        f"Machine: {cpu_name()}, {cores} cores, {fast['device']}, TensorFlow "
        f"{fast['tf_version']}, Python {platform.python_version()}"
    )
    print(f"Fast recipe: {DEFAULT_PRESET}, {config}")
    print()

    def row(label: str, accuracy: float | None, seconds: float) -> None:
        acc = f"{accuracy:8.4f}" if accuracy is not None else " " * 8
        print(f"| {label:<{W}} | {acc} | {seconds:8.1f} |")

    print(f"| {'run':<{W}} | {'test acc':>8} | {'seconds':>8} |")
    print(f"|{'-' * (W + 2)}|{'-' * 10}|{'-' * 10}|")
    row(
        f"reference: tutorial convnet ({ref['params']:,} params), rmsprop, batch 64, "
        f"{ref_epochs} epochs",
        ref["accuracy"],
        ref["seconds"],
    )
    for epoch, t, acc in fast["epochs"]:
        row(f"fast recipe ({fast['params']:,} params) via TrainingJob, epoch {epoch}", acc, t)
    runs = ", ".join(f"{t:.1f}" for t in bare_runs)
    row(f"same recipe, bare model.fit on arrays (fastest of {runs} s)", None, bare)
    runs = ", ".join(f"{t:.1f}" for t in job_runs)
    row(f"same recipe via TrainingJob, fit phase (fastest of {runs} s)", None, job_fit)
    print()
    print(
        f"Time to the reference's test accuracy ({ref['accuracy']:.4f}): "
        + (f"{time_to_target:.1f} s (epoch {reached[0][0]})" if reached else "never reached")
        + f" vs {ref['seconds']:.1f} s: ratio {ratio:.3f}"
    )
    print(
        f"Live-progress overhead: {job_fit:.1f} s vs bare fit {bare:.1f} s "
        f"({overhead:+.1%}); the poller read {fast['polls']} snapshots, the curve holds "
        f"{fast['points']} points"
    )
    print(
        "Time inside the live-progress callback: "
        + ", ".join(f"{share:.2%}" for share in callback_shares)
        + " of the fit time"
    )
    print("Peak memory (maxrss): " + ", ".join(f"{k} {v:,.0f} MiB" for k, v in mem.items()))
    del tf
    return report_targets(
        [
            ("time_to_reference_accuracy_ratio", ratio, RATIO_LIMIT),
            ("live_progress_overhead", overhead, OVERHEAD_LIMIT),
            ("callback_share_of_fit_time", callback_share, OVERHEAD_LIMIT),
        ],
        digits=3,
    )


if __name__ == "__main__":
    sys.exit(main())
