"""Own images in a real browser, as a new learner meets it (issue 19's headline, measured the
way the issue measured it): ``streamlit run app.py``, Chromium opens "Train on your own
images", the learner chooses the headline zip (``own_images_bench.headline_zip``: 500
JPEGs of 256 × 256 in 5 classes), opens ② Train, sets the image size, keeps the page's
defaults (transfer learning from MobileNetV2, flip + rotation + zoom, one augmented copy, 5
epochs) and presses Start. Timed: choosing the file → the health check shown, and pressing
Start → "Finished", and the two together (the learner's own clicks between them are not
counted). MobileNetV2's weights: a local file saved from ``weights=None`` (the page says
they are unverified: timing only), given by ``$CNNLAB_MOBILENETV2_WEIGHTS``; a fresh
conversion cache, so the first training at a size converts the backbone. The page keeps a
spare training process warm while Start is enabled, as it does for any learner.

Runs ``--repeats`` trainings per size on one server, each by a new learner (a new browser
page) arriving once the machine is idle again (``wait_until_quiet``: the last run's work
and the spare process's warm-up done); prints each, and keeps the screenshot of the last. Targets as
``own_images_bench --headline``'s, on the median of the runs after the first: ≤ 12 s at
96 px, ≤ 25 s at 224 px (file → health check, plus Start → Finished).

    python benchmarks/own_images_browser.py [--repeats 3] [--sizes 96 224] [--shots DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.own_images_bench import (  # noqa: E402
    HEADLINE_LIMITS,
    fashion_train,
    headline_zip,
)
from benchmarks.targets import report_targets  # noqa: E402
from tests.e2e.harness import VIEWPORT, launch_chromium, streamlit_server, wait_idle  # noqa: E402

PAGE_TITLE = "Train on your own images"
SIZES = (32, 48, 64, 96, 128, 160, 224)  # the page's image-size slider, in order
WAIT_MS = 300_000


def wait_until_quiet(idle: float = 0.9, seconds: float = 1.0, limit: float = 90.0) -> float:
    """Wait until the machine's CPUs are at least ``idle`` idle over ``seconds`` (the server's
    spare training process warmed up, the last run's work done: a new learner arrives at an
    idle server, as ``own_images_bench --headline``'s runs start), at most ``limit`` s.
    Returns the seconds waited."""
    start = time.perf_counter()

    def times() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, all

    while time.perf_counter() - start < limit:
        idle0, all0 = times()
        time.sleep(seconds)
        idle1, all1 = times()
        if all1 > all0 and (idle1 - idle0) / (all1 - all0) >= idle:
            break
    return time.perf_counter() - start


def choose_size(page, side: int) -> None:
    """Move the page's image-size slider (default 64) to ``side`` with the keyboard."""
    slider = page.get_by_role("slider", name="Image size (pixels)")
    current = int(slider.get_attribute("aria-valuenow") or 64)
    steps = SIZES.index(side) - SIZES.index(current)
    slider.focus()
    for _ in range(abs(steps)):
        slider.press("ArrowRight" if steps > 0 else "ArrowLeft")
    wait_idle(page, timeout=WAIT_MS)


def one_training(page, zip_path: Path, side: int) -> tuple[float, float, str]:
    """(seconds from choosing the file to the health check, from Start to "Finished", the
    page's caption saying what computed the features)."""
    page.get_by_text("Upload a .zip", exact=True).click()
    wait_idle(page)
    t0 = time.perf_counter()
    page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(
        str(zip_path)
    )
    page.get_by_text("500 images in 5 classes").wait_for(timeout=WAIT_MS)
    wait_idle(page, timeout=WAIT_MS)
    checked = time.perf_counter() - t0
    page.get_by_role("tab", name="② Train").click()
    wait_idle(page)
    choose_size(page, side)
    start = page.get_by_role("button", name="Start training")
    start.wait_for(timeout=WAIT_MS)
    t1 = time.perf_counter()
    start.click()
    page.get_by_text("Features computed once in", exact=False).wait_for(timeout=WAIT_MS)
    page.get_by_text("Finished", exact=False).first.wait_for(timeout=WAIT_MS)
    trained = time.perf_counter() - t1
    caption = page.get_by_text("Features computed once in", exact=False).first.inner_text()
    caption = caption.strip().rstrip(".")
    wait_idle(page, timeout=WAIT_MS)
    return checked, trained, caption


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(HEADLINE_LIMITS))
    parser.add_argument("--shots", type=Path, help="where to keep the screenshots")
    args = parser.parse_args()
    import keras
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="cnnlab-own-browser-"))
    shots = args.shots or tmp
    shots.mkdir(parents=True, exist_ok=True)
    zip_path = tmp / "my_photos.zip"
    zip_path.write_bytes(headline_zip(*fashion_train()))
    print(f"{os.cpu_count()} CPUs; the machine is shared (timings are noisy)")
    targets = []
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        for side in args.sizes:
            weights = tmp / f"mobilenet_v2_{side}.weights.h5"
            keras.utils.set_random_seed(side)
            keras.applications.MobileNetV2(
                weights=None, include_top=False, input_shape=(side, side, 3)
            ).save_weights(weights)
            env = {
                "CNNLAB_MOBILENETV2_WEIGHTS": str(weights),
                "CNNLAB_ONNX_CACHE": str(tmp / f"onnx-cache-{side}"),  # a fresh server's
                "CNNLAB_SPARE_PROCESS": "1",
                "CNNLAB_FEATURE_RUNTIME": "auto",
            }
            with streamlit_server(log=tmp / f"server-{side}.log", env=env) as url:
                totals = []
                for k in range(args.repeats):
                    waited = wait_until_quiet()
                    page = browser.new_page(viewport=VIEWPORT)  # a new learner each run
                    page.goto(url)
                    wait_idle(page, timeout=WAIT_MS)
                    page.locator('[data-testid="stSidebar"]').get_by_text(PAGE_TITLE).click()
                    page.get_by_text("Bring a few folders").wait_for(timeout=WAIT_MS)
                    wait_idle(page, timeout=WAIT_MS)
                    checked, trained, caption = one_training(page, zip_path, side)
                    totals.append(checked + trained)
                    print(
                        f"  {side} px, run {k + 1}: file → health check {checked:.1f} s, Start → "
                        f"Finished {trained:.1f} s, together {checked + trained:.1f} s ({caption}; "
                        f"waited {waited:.0f} s for an idle machine first)"
                    )
                    shot = shots / f"own_images_browser_{side}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    page.close()
            later = totals[1:] or totals
            print(
                f"  {side} px: first run {totals[0]:.1f} s; later runs median "
                f"{statistics.median(later):.1f} s; screenshot {shot}"
            )
            targets.append(
                (
                    f"own_images_browser_seconds_{side}px",
                    statistics.median(later),
                    HEADLINE_LIMITS[side],
                )
            )
        browser.close()
    return report_targets(targets, digits=1)


if __name__ == "__main__":
    sys.exit(main())
