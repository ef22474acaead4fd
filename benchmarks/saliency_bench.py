"""Benchmark: saliency maps on ResNet50 against one forward pass, and one filter maximised on
an MNIST model ("Look deeper", issue 11; Score-CAM, LayerCAM and SmoothGrad's batching,
issue 20).

Run from the repository root: ``python benchmarks/saliency_bench.py`` (5–20 minutes,
depending on the machine's load).

ResNet50 is built with random weights (``weights=None``: this machine cannot download
ImageNet's; speed does not depend on the weights' values), written to a temporary file and
loaded through the app's loader, as in ``infer_bench.py``. The input is the scikit-image cat,
prepared as the Classify page does (224 × 224). In the same run, alternating, each repeated
``REPEATS`` times after one warm-up call (the first call builds the sub-models and traces the
``tf.function``s; reported separately):

1. the plain forward pass (``PretrainedModel.predict``, a ``tf.function``);
2. ``saliency_map(method="gradients")``, ``"gradcam++"`` and ``"smoothgrad"`` with 16 samples
   (batched: ``BATCH_ELEMENTS`` allows 8 images per pass, so 2 passes), and 16 gradient maps
   in a row (the reference for SmoothGrad's batching: 16 × the gradients method's time,
   measured as one block, like SmoothGrad, so that the fastest of a few short runs is not
   compared with the fastest of a few long ones);
3. ``"scorecam"`` with its default number of maps (``OPTIONS["scorecam"]["maps"]``: one
   forward pass for the feature maps, then the masked copies and the baseline in batches) and
   ``"layercam"`` (one forward and backward pass).

Each call is timed twice: wall-clock and the process's CPU time (every thread's). Without a
GPU the targets compare CPU time: on this shared 2-core machine, with 15–25 processes
waiting to run, a long call gets a far smaller share of the cores than a short one (measured:
a batch of 8 forward passes got 20 % of its wall time on a core, a single forward pass 60 %),
so wall-clock ratios of a long and a short call measure the scheduler, not the work. With a
GPU the work is not on the CPU: the targets compare wall-clock time. Both are printed; the
targets compare the fastest run of each (other processes only ever add time); medians are
shown too.

The filter target uses the "Tutorial convnet" preset with random initial weights (seed 0; the
weights' values do not change the cost): ``maximize_activation`` of channel 0 of its last
convolution with the default 40 steps, in a fresh model (so the time includes building the
sub-model and tracing), the cache off: wall-clock seconds.

Targets: gradients ≤ 3 × forward, Grad-CAM++ ≤ 3 × forward and one MNIST filter ≤ 5 s
(issue 11); SmoothGrad (16 samples) ≤ 1.1 × 16 × gradients (batching must not make it worse
than 16 separate gradient maps), Score-CAM with the default number of maps ≤ 40 × forward,
LayerCAM ≤ 3 × forward (issue 20). SmoothGrad ÷ forward is printed without a target on a CPU:
its old target (≤ 20 ×) cannot hold on 2 CPU cores, where each noisy copy costs its own
forward and backward pass; it is a TARGET when the run has a GPU. The remaining methods are
timed once for information, SmoothGrad with 1, 4 and 16 images per pass, and Score-CAM with
other numbers of maps. Ends with one ``TARGET`` line per target; exits 1 if any fails.
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
#: SmoothGrad(16) ÷ (16 × gradients).
SMOOTHGRAD_BATCHING_LIMIT = 1.1
SCORECAM_LIMIT = 40.0
LAYERCAM_LIMIT = 3.0
#: The old target SmoothGrad(16) ÷ forward: a TARGET only when this run has a GPU.
SMOOTHGRAD_GPU_LIMIT = 20.0
FILTER_SECONDS_LIMIT = 5.0
SMOOTHGRAD_SAMPLES = 16
REPEATS = 7


def _time(fn) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of the whole process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _fastest(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The fastest wall-clock and the fastest CPU time of several runs (each on its own)."""
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main() -> int:
    import keras
    import tensorflow as tf

    from cnnlib.data import samples
    from cnnlib.inspect import imagenet, saliency, visualize
    from cnnlib.models import build_tutorial_convnet, load_resnet50
    from cnnlib.models.pretrained import RESNET50

    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    clock = 0 if on_gpu else 1  # index into (wall, cpu): what the targets compare
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU cores")
    print(
        "Targets compare "
        + ("wall-clock time (a GPU)." if on_gpu else "CPU time (no GPU: see the docstring).")
    )
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
        "gradients × 16": lambda: [
            saliency.saliency_map(pm, x, cls, method="gradients") for _ in range(SMOOTHGRAD_SAMPLES)
        ],
        "scorecam": lambda: saliency.saliency_map(pm, x, cls, method="scorecam"),
        "layercam": lambda: saliency.saliency_map(pm, x, cls, method="layercam"),
    }
    first = {name: _time(fn)[0] for name, fn in timed.items()}
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in timed}
    for _ in range(REPEATS):
        for name, fn in timed.items():
            runs[name].append(_time(fn))
    low = {k: _fastest(v) for k, v in runs.items()}
    med = {k: tuple(statistics.median(r[i] for r in v) for i in (0, 1)) for k, v in runs.items()}

    def ratio(name: str, to: str = "forward", which: int = clock) -> float:
        return low[name][which] / low[to][which]

    # For information: SmoothGrad's cost with other batch sizes per pass (the library's
    # default is BATCH_ELEMENTS, 8 images of 224 × 224 × 3).
    default_elements, per_pass = saliency.BATCH_ELEMENTS, {}
    for images in (1, 4, 16):
        saliency.BATCH_ELEMENTS = images * x.size
        per_pass[images] = _fastest([_time(timed["smoothgrad"]) for _ in range(2)])
    saliency.BATCH_ELEMENTS = default_elements

    # For information: Score-CAM's cost with other numbers of maps.
    default_maps, maps_cost = saliency.OPTIONS["scorecam"]["maps"], {}
    for maps in (8, 16, 64):
        maps_cost[maps] = _time(
            lambda m=maps: saliency.saliency_map(pm, x, cls, method="scorecam", maps=m)
        )

    others = []
    for method in ("gradcam", "integrated_gradients", "occlusion"):
        seconds = _time(lambda m=method: saliency.saliency_map(pm, x, cls, method=m))
        others.append((saliency.METHOD_LABELS[method], seconds))

    visualize.clear_cache()
    mnist = build_tutorial_convnet(seed=0)
    layer = [lyr.name for lyr in mnist.layers if isinstance(lyr, keras.layers.Conv2D)][-1]
    filter_first = _time(lambda: visualize.maximize_activation(mnist, layer, 0, cache=False))[0]
    filter_warm = statistics.median(
        _time(lambda c=c: visualize.maximize_activation(mnist, layer, c, cache=False))[0]
        for c in (1, 2, 3)
    )

    print(f"\nResNet50, 224 × 224, {REPEATS} alternating runs (× = ÷ forward, fastest runs):")
    print(
        f"{'measurement':24s} {'wall med ms':>11s} {'wall min ms':>11s} {'CPU min ms':>10s} "
        f"{'× wall':>7s} {'× CPU':>7s} {'first s':>8s}"
    )
    for name in timed:
        print(
            f"{name:24s} {med[name][0] * 1000:11.1f} {low[name][0] * 1000:11.1f} "
            f"{low[name][1] * 1000:10.1f} {ratio(name, which=0):7.2f} "
            f"{ratio(name, which=1):7.2f} {first[name]:8.2f}"
        )

    def line(label: str, t: tuple[float, float]) -> None:
        print(
            f"{label:24s} wall {t[0] * 1000:9.1f} ms ({t[0] / low['forward'][0]:6.1f} ×), "
            f"CPU {t[1] * 1000:9.1f} ms ({t[1] / low['forward'][1]:6.1f} ×)"
        )

    print(f"\nSmoothGrad ({SMOOTHGRAD_SAMPLES} samples) with other batch sizes, fastest of 2:")
    for images, t in per_pass.items():
        line(f"{images} image(s) per pass", t)
    print(f"\nScore-CAM with other numbers of maps (default {default_maps}), once each:")
    for maps, t in maps_cost.items():
        line(f"{maps} maps", t)
    print("\nOnce (after the runs above), for information:")
    for label, t in others:
        line(label, t)
    batching = ratio("smoothgrad", "gradients × 16")
    print(
        f"\nSmoothGrad ({SMOOTHGRAD_SAMPLES}) ÷ forward: wall {ratio('smoothgrad', which=0):.1f}, "
        f"CPU {ratio('smoothgrad', which=1):.1f} (the old target ≤ {SMOOTHGRAD_GPU_LIMIT:g} "
        + ("is a TARGET below: this run has a GPU)" if on_gpu else "is recorded only on a GPU)")
    )
    print(f"\nMNIST tutorial convnet (random init), layer {layer}, 40 steps, wall-clock:")
    print(f"{'one filter, fresh model (builds + traces)':44s} {filter_first:10.2f} s")
    print(f"{'one filter, traced (median of 3 channels)':44s} {filter_warm:10.2f} s")

    gpu_only = [("saliency_smoothgrad16_vs_forward_gpu", ratio("smoothgrad"), SMOOTHGRAD_GPU_LIMIT)]
    return report_targets(
        [
            ("saliency_gradients_vs_forward", ratio("gradients"), GRADIENTS_LIMIT),
            ("saliency_gradcam_pp_vs_forward", ratio("gradcam++"), GRADCAM_PP_LIMIT),
            ("saliency_smoothgrad16_vs_16_gradients", batching, SMOOTHGRAD_BATCHING_LIMIT),
            ("saliency_scorecam_vs_forward", ratio("scorecam"), SCORECAM_LIMIT),
            ("saliency_layercam_vs_forward", ratio("layercam"), LAYERCAM_LIMIT),
            ("mnist_filter_seconds", filter_first, FILTER_SECONDS_LIMIT),
            *(gpu_only if on_gpu else []),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
