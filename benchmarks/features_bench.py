"""Benchmark: the Feature-maps page's reruns on ResNet50's widest layers, after the first pass.

Run from the repository root: ``python benchmarks/features_bench.py`` (about 1–2 minutes).

ResNet50 is built with random weights (``weights=None``: this machine cannot download
ImageNet's), saved to a temporary file and loaded by the page through
``CNNLAB_RESNET50_WEIGHTS`` — the app's real loading path; speed does not depend on the
weights' values. Under Streamlit's AppTest, ``app_pages/feature_maps.py`` runs the sample cat photo
through every layer once (the reference: one forward pass of the multi-output extractor,
timed alone too), then each measured rerun changes one display option only — the page of
channels, the colour scale, the order, the maps per page, the layer — and must do no
TensorFlow work. Measured on the layer with the most channels (``conv5_block3_out``,
7×7×2048) and on a stage output with the most values (``conv2_block3_out``, 56×56×256).

Target (issue 5): every such rerun ≤ 1.0 s on a 2-core CPU (the slowest one counts).
Ends with one ``TARGET`` line per target; exits 1 if any fails.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.targets import report_targets  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RERUN_LIMIT_S = 1.0
RESNET = "ResNet50 (ImageNet)"


def _timed_run(target) -> float:
    start = time.perf_counter()
    at = target.run(timeout=300)
    elapsed = time.perf_counter() - start
    root = at if hasattr(at, "exception") else target
    if root.exception:
        raise SystemExit(f"The page raised: {[e.value for e in root.exception]}")
    return elapsed


def main() -> int:
    import keras
    from streamlit.testing.v1 import AppTest

    from cnnlib.data.samples import load_sample
    from cnnlib.inspect import features as F
    from cnnlib.inspect.imagenet import prepare
    from cnnlib.models.pretrained import RESNET50

    folder = Path(tempfile.mkdtemp(prefix="cnnlab-features-bench-"))
    weights = folder / "resnet50_random.weights.h5"
    keras.applications.ResNet50(weights=None).save_weights(weights)
    os.environ[RESNET50.env_var] = str(weights)

    # Reference: the one forward pass through all 176 layers, timed alone.
    model = keras.applications.ResNet50(weights=None)
    extractor = F.FeatureExtractor(model)
    batch = prepare(load_sample("cat (chelsea)"))
    extractor.run(batch)  # warm-up
    passes = []
    for _ in range(3):
        start = time.perf_counter()
        extractor.run(batch)
        passes.append(time.perf_counter() - start)
    forward = min(passes)
    del model, extractor

    at = AppTest.from_file(str(ROOT / "app_pages" / "feature_maps.py"), default_timeout=300)
    _timed_run(at)
    first = _timed_run(at.radio(key="fm_model_source").set_value(RESNET))  # load + first pass

    def layer_box():
        return next(s for s in at.selectbox if s.label.startswith("Layer ("))

    rows: list[tuple[str, str, float]] = []
    for layer in ("conv5_block3_out", "conv2_block3_out"):
        rows.append((layer, "switch to this layer", _timed_run(layer_box().set_value(layer))))
        pager = at.get("pagination")[0] if at.get("pagination") else None
        if pager is not None:
            for page in (2, 3, pager.num_pages):
                pager = at.get("pagination")[0]
                rows.append((layer, f"page {page} of channels", _timed_run(pager.set_value(page))))
        changes = [
            *(
                (f"colour scale: {v}", "radio", "fm_scale", v)
                for v in ("One range for the whole layer", "Each map its own range")
            ),
            *(
                (f"order: {v}", "radio", "fm_order", v)
                for v in ("Channel number", "Mean activation, highest first")
            ),
            *((f"{v} maps per page", "selectbox", "fm_per_page", v) for v in (128, 256, 64)),
        ]
        for what, kind, key, value in changes:
            widget = getattr(at, kind)(key=key)  # looked up in the current element tree
            rows.append((layer, what, _timed_run(widget.set_value(value))))

    acts = at.session_state["features_activations"][1]
    grid_times = []
    act = acts["conv5_block3_out"]
    stats = acts.stats("conv5_block3_out")
    for _ in range(5):
        start = time.perf_counter()
        F.to_png(F.activation_grid(act, np.arange(256), stats=stats, columns=16, tile_px=64))
        grid_times.append(time.perf_counter() - start)

    print(f"ResNet50 forward pass through all 176 layers (one image, alone): {forward:.3f} s")
    print(f"Page: choose ResNet50 (load weights + first pass + render):      {first:.3f} s")
    print(
        f"Compose + PNG-encode 256 maps of conv5_block3_out (min of 5):     {min(grid_times):.3f} s"
    )
    print()
    print(f"{'layer':<18} {'rerun after changing':<44} {'seconds':>8} {'× forward':>10}")
    for layer, change, seconds in rows:
        print(f"{layer:<18} {change:<44} {seconds:8.3f} {seconds / forward:10.2f}")
    reruns = [s for _, _, s in rows]
    slowest = max(reruns)
    print(f"\nreruns: median {statistics.median(reruns):.3f} s, slowest {slowest:.3f} s")

    return report_targets([("resnet50_widest_layer_rerun_s", slowest, RERUN_LIMIT_S)], digits=3)


if __name__ == "__main__":
    sys.exit(main())
