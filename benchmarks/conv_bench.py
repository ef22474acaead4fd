"""Benchmark: cnnlib.conv.ops.conv2d against tf.nn.conv2d, and the Convolution lab's rerun time.

Run from the repository root: ``python benchmarks/conv_bench.py`` (about 1–2 minutes).

1. The same NumPy inputs go to ``cnnlib.conv.ops.conv2d`` and to ``tf.nn.conv2d`` (numpy in,
   numpy out for both; TensorFlow warmed up first): a 512×512×3 image with 8 3×3 filters
   ("same", stride 1; stride 2; dilation 2) and a 2048×2048 grayscale image with one 3×3 and
   one 7×7 filter. Ours and TensorFlow's runs alternate; each time is the minimum of N runs
   (the least disturbed one on a shared machine), the median is printed beside it.
2. The page: ``app_pages/convolution_lab.py`` under Streamlit's AppTest with the 512×512 RGB
   astronaut photo; each measurement is ``at.run()`` right after changing the stride widget,
   to a (padding, stride) pair not computed before (so nothing comes from the cache).

Targets: every conv2d/TensorFlow ratio ≤ 3; our stride 2 ≤ 0.4 × our stride 1; the median
page rerun ≤ 150 ms. Ends with one ``TARGET`` line per target; exits 1 if any fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.targets import report_targets  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cnnlib.conv import ops as conv  # noqa: E402

RATIO_LIMIT = 3.0
STRIDE_LIMIT = 0.4
RERUN_LIMIT_MS = 150.0


def _times(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def bench_stride(repeats: int) -> tuple[float, float, float]:
    """Our stride 2 vs our stride 1 on the 512×512×3, 8-filter case: (ratio, s1 ms, s2 ms).

    Timed apart from TensorFlow, whose worker threads keep spinning for a while after each
    call and would slow whichever of our runs follows; the two strides alternate.
    """
    rng = np.random.default_rng(0)
    rgb = rng.random((512, 512, 3), dtype=np.float32)
    bank = rng.standard_normal((3, 3, 3, 8)).astype(np.float32)
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeats):
        for s in (1, 2):
            times[s] += _times(lambda s=s: conv.conv2d(rgb, bank, padding="same", stride=s), 1)
    s1, s2 = min(times[1]) * 1e3, min(times[2]) * 1e3
    return s2 / s1, s1, s2


def conv_cases(rng: np.random.Generator):
    """(name, x, kernel for conv2d, kernel for TF (kh, kw, C, F), stride, dilation)."""
    rgb = rng.random((512, 512, 3), dtype=np.float32)
    bank = rng.standard_normal((3, 3, 3, 8)).astype(np.float32)
    gray = rng.random((2048, 2048), dtype=np.float32)
    k3 = rng.standard_normal((3, 3)).astype(np.float32)
    k7 = rng.standard_normal((7, 7)).astype(np.float32)
    return [
        ("512_rgb_s1", rgb, bank, bank, 1, 1),
        ("512_rgb_s2", rgb, bank, bank, 2, 1),
        ("512_rgb_d2", rgb, bank, bank, 1, 2),
        ("2048_gray_3x3", gray, k3, k3[:, :, None, None], 1, 1),
        ("2048_gray_7x7", gray, k7, k7[:, :, None, None], 1, 1),
    ]


def bench_conv(repeats: int) -> dict[str, dict[str, float]]:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    results: dict[str, dict[str, float]] = {}
    for name, x, k_ours, k_tf, stride, dilation in conv_cases(rng):
        x4 = (x if x.ndim == 3 else x[:, :, None])[None]

        def ours(x=x, k=k_ours, s=stride, d=dilation):
            return conv.conv2d(x, k, padding="same", stride=s, dilation=d)

        def theirs(x4=x4, k=k_tf, s=stride, d=dilation):
            return tf.nn.conv2d(x4, k, strides=s, padding="SAME", dilations=d).numpy()

        a, b = ours(), theirs()[0]  # warm-up, and a correctness check on the same inputs
        a = a if a.ndim == b.ndim else a[:, :, None]
        diff = float(np.max(np.abs(a - b)))
        t_ours, t_tf = [], []
        for _ in range(repeats):  # alternate, so both see the same machine load
            t_ours += _times(ours, 1)
            t_tf += _times(theirs, 1)
        results[name] = {
            "ours_min": min(t_ours) * 1e3,
            "ours_med": statistics.median(t_ours) * 1e3,
            "tf_min": min(t_tf) * 1e3,
            "tf_med": statistics.median(t_tf) * 1e3,
            "max_abs_diff": diff,
        }
    return results


def bench_page(rounds: int) -> list[tuple[str, float]]:
    """(change, ms) for each stride change on the 512×512 RGB astronaut photo."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app_pages" / "convolution_lab.py"), default_timeout=120)
    at.query_params.update({"lab_sample": "astronaut", "lab_gray": "false"})
    at.run(timeout=120)
    at.selectbox(key="lab_side").set_value(512)
    at.run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    assert any("512×512×3" in m.value for m in at.markdown), "expected the 512×512×3 image"
    measured: list[tuple[str, float]] = []
    stride = 1
    paddings = ["valid", "same", "full", ("explicit", 1), ("explicit", 2), ("explicit", 3)]
    for padding in paddings[:rounds]:
        mode, p = padding if isinstance(padding, tuple) else (padding, None)
        at.radio(key="lab_padding").set_value(mode)
        at.run(timeout=120)
        if p is not None:
            at.number_input(key="lab_p").set_value(p)
            at.run(timeout=120)
        for new in [s for s in (2, 3, 4, 1) if s != stride][:3]:
            at.radio(key="lab_stride").set_value(new)
            start = time.perf_counter()
            at.run(timeout=120)
            ms = (time.perf_counter() - start) * 1e3
            assert not at.exception, [e.value for e in at.exception]
            measured.append((f"{mode}{'' if p is None else p}: stride {stride}→{new}", ms))
            stride = new
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100, help="timed runs per conv case")
    parser.add_argument("--rounds", type=int, default=4, help="paddings in the page benchmark")
    args = parser.parse_args()

    print(f"CPU cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    page = bench_page(args.rounds)  # first: before TensorFlow is in this process
    stride = bench_stride(args.repeats)
    results = bench_conv(args.repeats)
    import tensorflow as tf

    print(f"\nconv2d vs tf.nn.conv2d {tf.__version__} (ms; min and median of {args.repeats})")
    print(
        f"{'case':<15}{'ours min':>10}{'ours med':>10}{'TF min':>9}{'TF med':>9}"
        f"{'ratio':>7}{'max|diff|':>11}"
    )
    for name, r in results.items():
        r["ratio"] = r["ours_min"] / r["tf_min"]
        print(
            f"{name:<15}{r['ours_min']:>10.1f}{r['ours_med']:>10.1f}{r['tf_min']:>9.1f}"
            f"{r['tf_med']:>9.1f}{r['ratio']:>7.2f}{r['max_abs_diff']:>11.1e}"
        )
    stride_ratio, s1_ms, s2_ms = stride
    print(
        f"\nour stride 2 / our stride 1 (512×512×3, 8 filters, same; alternated, without "
        f"TensorFlow's threads between runs): {s2_ms:.2f} / {s1_ms:.2f} ms = {stride_ratio:.3f}"
    )

    print("\nConvolution lab rerun after a stride change (512×512×3 astronaut, AppTest at.run())")
    for change, ms in page:
        print(f"  {change:<28}{ms:>8.0f} ms")
    rerun = statistics.median(ms for _, ms in page)
    print(f"  median of {len(page)}: {rerun:.0f} ms, max {max(ms for _, ms in page):.0f} ms")

    targets = [(f"conv_ratio_{name}", r["ratio"], RATIO_LIMIT) for name, r in results.items()] + [
        ("conv_stride2_over_stride1", stride_ratio, STRIDE_LIMIT),
        ("lab_rerun_after_stride_change_ms", rerun, RERUN_LIMIT_MS),
    ]
    return report_targets(targets)


if __name__ == "__main__":
    sys.exit(main())
