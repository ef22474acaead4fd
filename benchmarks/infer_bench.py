"""Benchmark: the Classify page's ResNet50 path against the tutorials' ``model.predict`` path.

Run from the repository root: ``python benchmarks/infer_bench.py`` (about 1–2 minutes).

ResNet50 is built with random weights (``weights=None``: this machine cannot download
ImageNet's; speed and memory do not depend on the weights' values), written to a temporary
file in the legacy HDF5 layout of Keras' official weights file, and loaded through the app's
real loader (``cnnlib.models.load_resnet50``). Measured in one run, on the same JPEG bytes
(the scikit-image cat photo, 451×300):

1. App path: ``cnnlib.data.images.load_image`` → ``cnnlib.inspect.imagenet.prepare`` → the shared
   model's ``tf.function`` forward pass (``PretrainedModel.predict``) → offline ``decode``.
2. Tutorials' path: ``keras.utils.load_img(target_size=(224, 224))`` → ``img_to_array`` →
   ``np.expand_dims`` → ``resnet50.preprocess_input`` → ``model.predict`` →
   ``resnet50.decode_predictions`` (given the class index offline).
3. Grad-CAM (``cnnlib.inspect.imagenet.grad_cam`` on a prepared batch) against the plain forward
   pass on the same batch.
4. Build + weight-loading time of ``load_resnet50`` from the local file (includes the MD5
   check), in this process and in a fresh one.
5. Peak memory (peak resident set size, VmHWM) of a fresh Python process that loads ResNet50 with
   the app's loader, classifies the photo and computes its Grad-CAM — no Streamlit, so this
   is the model's share of a deployed app's memory.

The paths alternate, each repeated N times after a warm-up (the first calls trace the
``tf.function``s, and are reported separately); the median is compared, the minimum shown.
Targets (issue 4): app path ≤ 0.5 × tutorials' path; Grad-CAM ≤ 3 × plain inference; peak
memory ≤ 1,500 MB. Ends with one ``TARGET`` line per target; exits 1 if any fails.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.targets import report_targets  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

APP_RATIO_LIMIT = 0.5
GRAD_CAM_RATIO_LIMIT = 3.0
MEMORY_LIMIT_MB = 1500.0
REPEATS = 20

# Run in a fresh interpreter: load with the app's loader, classify, Grad-CAM, report peak RSS.
MEMORY_PROBE = """
import sys, time
sys.path.insert(0, {root!r})
start = time.perf_counter()
import keras
imported = time.perf_counter() - start
from cnnlib.inspect import imagenet
from cnnlib.data import samples
from cnnlib.models import load_resnet50
pm = load_resnet50({weights!r})
img = samples.load_sample("cat (chelsea)")
preds = imagenet.classify(pm, img)
imagenet.grad_cam(pm, img, preds[0].class_id)
# VmHWM: this process's peak resident set (ru_maxrss would include the parent's, kept
# across exec on Linux).
peak_kib = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(peak_kib, imported, pm.load_seconds)
"""


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _write_random_resnet50(path: Path):
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    model = keras.applications.ResNet50(weights=None)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return model


def main() -> int:
    import keras
    import tensorflow as tf
    from keras.applications import resnet50
    from keras.src.applications import imagenet_utils

    from cnnlib.data import samples
    from cnnlib.data.images import load_image
    from cnnlib.inspect import imagenet
    from cnnlib.models import load_resnet50
    from cnnlib.models.pretrained import RESNET50

    folder = Path(tempfile.mkdtemp(prefix="cnnlab-infer-bench-"))
    weights = folder / RESNET50.file_name
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU cores")
    start = time.perf_counter()
    tutorial_model = _write_random_resnet50(weights)
    print(
        f"Built ResNet50 (weights=None) and wrote {weights.stat().st_size / 1e6:.0f} MB "
        f"of weights in {time.perf_counter() - start:.1f} s"
    )

    pm = load_resnet50(weights)
    # Keras' decode_predictions, given the same class index offline (no download here).
    imagenet_utils.CLASS_INDEX = json.loads(imagenet.CLASS_INDEX_PATH.read_text())

    photo = io.BytesIO()
    samples.load_sample("cat (chelsea)").save(photo, "JPEG", quality=92)
    jpeg = photo.getvalue()

    def app_path():
        image = load_image(jpeg, name="cat.jpg")
        return imagenet.decode(pm.predict(imagenet.prepare(image))[0], top=5)

    def tutorial_path():
        img = keras.utils.load_img(io.BytesIO(jpeg), target_size=(224, 224))
        x = keras.utils.img_to_array(img)
        x = np.expand_dims(x, axis=0)
        x = resnet50.preprocess_input(x)
        preds = tutorial_model.predict(x, verbose=0)
        return resnet50.decode_predictions(preds, top=5)[0]

    batch = imagenet.prepare(samples.load_sample("cat (chelsea)"))
    first = {
        "app path, first call (traces the tf.function)": _time(app_path),
        "tutorials' path, first call": _time(tutorial_path),
    }
    top_class = app_path()[0].class_id
    first["Grad-CAM, first call (builds and traces)"] = _time(
        lambda: imagenet.grad_cam(pm, batch, top_class)
    )
    # Same answer both ways (same weights, same preprocessing up to float rounding).
    ours, theirs = app_path(), tutorial_path()
    assert [p.name for p in ours] == [name for _, name, _ in theirs], (ours, theirs)

    runs: dict[str, list[float]] = {k: [] for k in ("app", "tutorial", "forward", "gradcam")}
    for _ in range(REPEATS):
        runs["app"].append(_time(app_path))
        runs["tutorial"].append(_time(tutorial_path))
        runs["forward"].append(_time(lambda: pm.predict(batch)))
        runs["gradcam"].append(_time(lambda: imagenet.grad_cam(pm, batch, top_class)))
    med = {k: statistics.median(v) for k, v in runs.items()}
    low = {k: min(v) for k, v in runs.items()}

    load_here = [load_resnet50(weights).load_seconds for _ in range(2)]
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE.format(root=str(ROOT), weights=str(weights))],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    peak_kib, fresh_import_s, fresh_load_s = probe.stdout.split()[-3:]
    peak_mb = int(peak_kib) * 1024 / 1e6

    app_ratio = med["app"] / med["tutorial"]
    cam_ratio = med["gradcam"] / med["forward"]
    rows = [
        ("app path: load_image + prepare + tf.function + decode", med["app"], low["app"]),
        (
            "tutorials: load_img … preprocess_input + predict + decode",
            med["tutorial"],
            low["tutorial"],
        ),
        ("plain forward pass (tf.function), prepared batch", med["forward"], low["forward"]),
        ("Grad-CAM (forward + gradient), prepared batch", med["gradcam"], low["gradcam"]),
    ]
    print(f"\nSingle photo, median and minimum of {REPEATS} alternating runs:")
    print(f"{'measurement':60s} {'median ms':>10s} {'min ms':>8s}")
    for name, m, lo in rows:
        print(f"{name:60s} {m * 1000:10.1f} {lo * 1000:8.1f}")
    print("\nOnce:")
    for name, seconds in first.items():
        print(f"{name:60s} {seconds:9.2f} s")
    print(
        f"{'load_resnet50 from the local file (build + load + MD5)':60s} "
        f"{statistics.median(load_here):9.2f} s"
    )
    print(f"{'same, fresh process (after importing Keras/TF)':60s} {float(fresh_load_s):9.2f} s")
    print(f"{'importing Keras/TensorFlow, fresh process':60s} {float(fresh_import_s):9.2f} s")
    print(f"{'peak RSS, fresh process: load + classify + Grad-CAM':60s} {peak_mb:9.0f} MB")

    return report_targets(
        [
            ("app_path_vs_model_predict", app_ratio, APP_RATIO_LIMIT),
            ("grad_cam_vs_inference", cam_ratio, GRAD_CAM_RATIO_LIMIT),
            ("peak_memory_mb", peak_mb, MEMORY_LIMIT_MB),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
