"""Benchmark: saliency maps on ResNet50 against one forward pass, and one filter maximised on
an MNIST model ("Look deeper", issue 11).

Run from the repository root: ``python benchmarks/saliency_bench.py`` (a few minutes).

ResNet50 is built with random weights (``weights=None``: this machine cannot download
ImageNet's; speed does not depend on the weights' values), written to a temporary file and
loaded through the app's loader, as in ``infer_bench.py``. The input is the scikit-image cat,
prepared as the Classify page does (224 × 224). In the same run, alternating, each repeated
``REPEATS`` times after one warm-up call (the first call builds the sub-models and traces the
``tf.function``s; reported separately). The targets compare the fastest run of each (this
2-core machine is shared, and other processes only ever add time); medians are shown too:

1. the plain forward pass (``PretrainedModel.predict``, a ``tf.function``);
2. ``saliency_map(method="gradients")``, ``"gradcam++"`` and ``"smoothgrad"`` with 16 samples
   (batched: ``BATCH_ELEMENTS`` allows 8 images per pass, so 2 passes).

The filter target uses the "Tutorial convnet" preset with random initial weights (seed 0; the
weights' values do not change the cost): ``maximize_activation`` of channel 0 of its last
convolution with the default 40 steps, in a fresh model (so the time includes building the
sub-model and tracing), the cache off.

Targets (issue 11): gradients ≤ 3 × forward, Grad-CAM++ ≤ 3 × forward, SmoothGrad (16
samples) ≤ 20 × forward (ratios of the fastest runs); one MNIST filter ≤ 5 s. The remaining
methods are timed once for information, and SmoothGrad with 1, 4 and 16 images per pass. Ends
with one ``TARGET`` line per target; exits 1 if any fails.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.infer_bench import _write_random_resnet50  # noqa: E402
from benchmarks.targets import report_targets  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GRADIENTS_LIMIT = 3.0
GRADCAM_PP_LIMIT = 3.0
SMOOTHGRAD_LIMIT = 20.0
FILTER_SECONDS_LIMIT = 5.0
SMOOTHGRAD_SAMPLES = 16
REPEATS = 7


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    import keras
    import tensorflow as tf

    from cnnlib.data import samples
    from cnnlib.inspect import imagenet, saliency, visualize
    from cnnlib.models import build_tutorial_convnet, load_resnet50
    from cnnlib.models.pretrained import RESNET50

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU cores")
    folder = Path(tempfile.mkdtemp(prefix="cnnlab-saliency-bench-"))
    weights = folder / RESNET50.file_name
    _write_random_resnet50(weights)
    pm = load_resnet50(weights)
    batch = imagenet.prepare(samples.load_sample("cat (chelsea)"))
    x = batch[0]
    cls = int(pm.predict(batch)[0].argmax())

    timed = {
        "forward": lambda: pm.predict(batch),
        "gradients": lambda: saliency.saliency_map(pm, x, cls, method="gradients"),
        "gradcam++": lambda: saliency.saliency_map(pm, x, cls, method="gradcam++"),
        "smoothgrad": lambda: saliency.saliency_map(
            pm, x, cls, method="smoothgrad", samples=SMOOTHGRAD_SAMPLES
        ),
    }
    first = {name: _time(fn) for name, fn in timed.items()}
    runs: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(REPEATS):
        for name, fn in timed.items():
            runs[name].append(_time(fn))
    med = {k: statistics.median(v) for k, v in runs.items()}
    low = {k: min(v) for k, v in runs.items()}

    # For information: SmoothGrad's cost with other batch sizes per pass (the library's
    # default is BATCH_ELEMENTS, 8 images of 224 × 224 × 3).
    default_elements, per_pass = saliency.BATCH_ELEMENTS, {}
    for images in (1, 4, 16):
        saliency.BATCH_ELEMENTS = images * x.size
        per_pass[images] = min(_time(timed["smoothgrad"]) for _ in range(3))
    saliency.BATCH_ELEMENTS = default_elements

    others = saliency.saliency_maps(
        pm, x, cls, methods=["gradcam", "integrated_gradients", "occlusion"]
    )

    visualize.clear_cache()
    mnist = build_tutorial_convnet(seed=0)
    layer = [lyr.name for lyr in mnist.layers if isinstance(lyr, keras.layers.Conv2D)][-1]
    filter_first = _time(lambda: visualize.maximize_activation(mnist, layer, 0, cache=False))
    filter_warm = statistics.median(
        _time(lambda c=c: visualize.maximize_activation(mnist, layer, c, cache=False))
        for c in (1, 2, 3)
    )

    print(f"\nResNet50, 224 × 224, median and minimum of {REPEATS} alternating runs:")
    print(
        f"{'measurement':44s} {'median ms':>10s} {'min ms':>8s} {'× (min)':>8s} "
        f"{'× (median)':>10s} {'first s':>8s}"
    )
    for name in timed:
        print(
            f"{name:44s} {med[name] * 1000:10.1f} {low[name] * 1000:8.1f} "
            f"{low[name] / low['forward']:8.2f} {med[name] / med['forward']:10.2f} "
            f"{first[name]:8.2f}"
        )
    print(f"\nSmoothGrad ({SMOOTHGRAD_SAMPLES} samples) with other batch sizes, fastest of 3:")
    for images, seconds in per_pass.items():
        print(
            f"{f'{images} image(s) per pass':44s} {seconds * 1000:10.1f} ms "
            f"{seconds / low['forward']:8.1f} × forward (min)"
        )
    print("\nOnce (first call for the method, includes tracing), for information:")
    for r in others:
        print(
            f"{r.label:44s} {r.seconds * 1000:10.1f} ms "
            f"{r.seconds / low['forward']:8.1f} × forward (min)"
        )
    print(f"\nMNIST tutorial convnet (random init), layer {layer}, 40 steps:")
    print(f"{'one filter, fresh model (builds + traces)':44s} {filter_first:10.2f} s")
    print(f"{'one filter, traced (median of 3 channels)':44s} {filter_warm:10.2f} s")

    return report_targets(
        [
            ("saliency_gradients_vs_forward", low["gradients"] / low["forward"], GRADIENTS_LIMIT),
            ("saliency_gradcam_pp_vs_forward", low["gradcam++"] / low["forward"], GRADCAM_PP_LIMIT),
            (
                "saliency_smoothgrad16_vs_forward",
                low["smoothgrad"] / low["forward"],
                SMOOTHGRAD_LIMIT,
            ),
            ("mnist_filter_seconds", filter_first, FILTER_SECONDS_LIMIT),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
