"""Device check: what TensorFlow sees, and a short training run on each pipeline.

Prints the TensorFlow/Keras versions and the visible GPUs, then trains briefly and reports
images/s (second epoch, after tracing and caching):

1. the own-images pipeline (``cnnlib.uploads.folders``): ``example_archive`` (real Fashion-MNIST as
   PNG class folders) when Debian's Fashion-MNIST is installed, else generated noisy class
   folders; the scratch recipe at 64×64;
2. the MNIST recipe: ``cnnlib.models.build_fast_convnet`` on MNIST from ``$CNNLAB_DATA_DIR``
   or the shared MNIST test set beside the checkout (``../shared/data``), else
   Fashion-MNIST, whichever exists (skipped when neither does).

Works on a CPU too (a couple of minutes at most on 2 cores). No targets: it is a check.

    python benchmarks/gpu_check.py [--epochs N]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np
from PIL import Image

from benchmarks.epoch_times import epoch_timer
from cnnlib.core.errors import DataUnavailableError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def device_report() -> str:
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    lines = [
        f"TensorFlow {tf.__version__}, Keras {keras.__version__} ({keras.backend.backend()})",
        f"Built with CUDA: {tf.test.is_built_with_cuda()}; CPUs: {os.cpu_count()}",
        f"GPUs: {len(gpus)}" + "".join(f"\n  {g.name}" for g in gpus),
    ]
    for g in gpus:
        details = tf.config.experimental.get_device_details(g)
        lines.append(f"  {details.get('device_name', '?')} {details}")
    return "\n".join(lines)


def synthetic_archive(n_per_class: int = 100, side: int = 64) -> bytes:
    """Noisy class folders (one brightness per class) when no real data is installed."""
    rng = np.random.default_rng(0)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for c in range(4):
            for i in range(n_per_class):
                arr = np.clip(40 + 50 * c + rng.normal(0, 25, (side, side, 3)), 0, 255)
                png = io.BytesIO()
                Image.fromarray(arr.astype(np.uint8)).save(png, format="PNG")
                zf.writestr(f"class{c}/{i}.png", png.getvalue())
    return out.getvalue()


def own_images(epochs: int) -> None:
    import keras

    from cnnlib.training.transfer import build_scratch_model
    from cnnlib.uploads.folders import example_archive, open_archive

    try:
        data, source = example_archive(250, classes=(1, 5, 7, 8), size=64), "Fashion-MNIST"
    except DataUnavailableError:
        data, source = synthetic_archive(), "generated noisy images"
    with open_archive(data) as folders:
        split = folders.split(64, seed=0)
        model = build_scratch_model(split.input_shape, len(split.class_names))
        times = epoch_timer()
        n = split.size("train")
        history = model.fit(
            split.batches("train", 32, epochs=epochs),
            steps_per_epoch=-(-n // 32),
            epochs=epochs,
            validation_data=split.batches("validation", 32),
            shuffle=False,
            callbacks=[times, keras.callbacks.TerminateOnNaN()],
            verbose=0,
        )
    steady = times.times[1:] or times.times
    print(f"\nOwn-images pipeline ({source}, {n} training images, 64×64, scratch recipe)")
    print(f"  epoch seconds: {', '.join(f'{t:.2f}' for t in times.times)}")
    print(
        f"  {n * len(steady) / sum(steady):,.0f} images/s after the first epoch; "
        f"val accuracy {history.history['val_accuracy'][-1]:.3f}"
    )


def mnist_recipe(epochs: int) -> None:
    from cnnlib.data.mnist import load_test_split, to_model_input
    from cnnlib.models import build_fast_convnet

    if not os.environ.get("CNNLAB_DATA_DIR") and (SHARED_DATA / "mnist").is_dir():
        os.environ["CNNLAB_DATA_DIR"] = str(SHARED_DATA)
    for name in ("mnist", "fashion_mnist"):
        try:
            (x, y), (xt, yt) = load_test_split(name, seed=0)
            break
        except DataUnavailableError:
            continue
    else:
        print("\nMNIST recipe: skipped (neither MNIST nor Fashion-MNIST found)")
        return
    model = build_fast_convnet(seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    times = epoch_timer()
    model.fit(to_model_input(x), y, batch_size=128, epochs=epochs, callbacks=[times], verbose=0)
    _, acc = model.evaluate(to_model_input(xt), yt, verbose=0)
    steady = times.times[1:] or times.times
    print(f"\nMNIST recipe (build_fast_convnet on {name}, {len(x)} images, batch 128)")
    print(f"  epoch seconds: {', '.join(f'{t:.2f}' for t in times.times)}")
    print(
        f"  {len(x) * len(steady) / sum(steady):,.0f} images/s after the first epoch; "
        f"test accuracy {acc:.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    print(device_report())
    own_images(max(2, args.epochs))
    mnist_recipe(max(2, args.epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
