"""Upload benchmark: decoding in the sandbox vs decoding in the server's own process.

Both routes run the same code (``cnnlib.data.images.decode_image``, the archive tasks of
``cnnlib.uploads.zip_reader``): in-process is ``cnnlib.core.sandbox.in_process()``, the
reference for what the sandbox's process boundary, pipes and checks cost. Measured in one
run, the two routes alternating so that the machine's load falls on both alike.

Data: scikit-image's photos (astronaut, coffee, chelsea, rocket, …) upscaled with Lanczos to
1, 4 and 12 megapixels, saved as JPEG (quality 90) and PNG: real content, not noise.

(a) One photo — median wall time of ``read_image`` (what every page's upload does: decode,
    orientation, RGB, shrink to ``lab_pixels``) per size and format, ``--repeats`` times each
    after a warm-up (the decoders are warm, as in a running server).
    Target per photo: sandboxed ≤ 1.5 × in-process + 50 ms.
(b) A zip of 500 photos (800×600 JPEGs, 50 class folders' worth of two classes) —
    median wall time of ``open_archive`` (listing, every member decoded, thumbnails and the
    stored PNGs written). Target: sandboxed ÷ in-process ≤ 1.5 (the sandbox uses
    ``sandbox_workers`` decoders at once; in-process decodes one at a time). Printed
    besides: the CPU time of both routes (the server's, plus the decoders' own per-job
    counts), which other processes' load does not change: on a shared machine the decoders
    get no more CPU than the server's share (Linux shares CPU between sessions' process
    groups, "autogroup"), so their parallelism may not show in wall time.
(c) The server's memory while that zip is checked — in a fresh process standing in for the
    server: its peak resident memory (VmHWM) during ``open_archive``, beyond its level
    before (the upload's bytes are already in memory then). Target: ≤ 50 MB.

    python benchmarks/upload_bench.py [--repeats N] [--zip-repeats N]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from PIL import Image  # noqa: E402

from benchmarks.targets import report_targets  # noqa: E402
from cnnlib.core import sandbox  # noqa: E402
from cnnlib.core.budgets import budgets  # noqa: E402
from cnnlib.data import images  # noqa: E402
from cnnlib.uploads.folders import open_archive  # noqa: E402

PHOTO_RATIO, PHOTO_SLACK_MS = 1.5, 50.0
ZIP_RATIO = 1.5
SERVER_GROWTH_MB = 50
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def skimage_photo(name: str) -> Image.Image:
    import skimage.data

    arr = getattr(skimage.data, name)()
    return Image.fromarray(arr).convert("RGB")


def upscaled(img: Image.Image, megapixels: float) -> Image.Image:
    scale = (megapixels * 1e6 / (img.width * img.height)) ** 0.5
    return img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)


def encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {"compress_level": 6}))
    return buf.getvalue()


#: CPU-seconds of each decoder job since the last clear (the decoders' own counts).
jobs: list[float] = []
_answer = sandbox._answer_to_result


def _counting(name, answer, limits):
    result = _answer(name, answer, limits)
    jobs.append(result.cpu_seconds)
    return result


sandbox._answer_to_result = _counting


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(work, repeats: int) -> tuple[float, float]:
    """Median seconds of ``work()`` sandboxed and in-process, alternating which goes first."""
    sand, here = [], []
    for i in range(repeats):
        for route in ("sandbox", "here") if i % 2 == 0 else ("here", "sandbox"):
            if route == "sandbox":
                sand.append(timed(work))
            else:
                with sandbox.in_process():
                    here.append(timed(work))
    return statistics.median(sand), statistics.median(here)


def photo_zip(n: int = 500, size=(800, 600)) -> bytes:
    """``n`` JPEG photos in two class folders, cut from upscaled scikit-image photos."""
    sources = [upscaled(skimage_photo(p), 3.0) for p in PHOTOS]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n):
            src = sources[i % len(sources)]
            x = (i * 37) % max(1, src.width - size[0])
            y = (i * 53) % max(1, src.height - size[1])
            crop = src.crop((x, y, x + size[0], y + size[1]))
            zf.writestr(f"{('sky', 'ground')[i % 2]}/{i}.jpg", encoded(crop, "JPEG"))
    return buf.getvalue()


SERVER_SCRIPT = r"""
import json, sys, time
from pathlib import Path
from cnnlib.core.heap import free_memory
from cnnlib.data import images
from cnnlib.uploads.folders import open_archive

def status(field):
    return int(Path("/proc/self/status").read_text().split(field + ":")[1].split()[0]) * 1024

data = Path(sys.argv[1]).read_bytes()
images.load_image(open(sys.argv[2], "rb").read())  # warm decoders, as in a running server
free_memory()
Path("/proc/self/clear_refs").write_text("5")  # the peak counter restarts here
before = status("VmRSS")
start = time.perf_counter()
with open_archive(data) as folders:
    n = len(folders)
seconds = time.perf_counter() - start
print(json.dumps({"before": before, "peak": status("VmHWM"), "images": n, "seconds": seconds}))
"""


def server_memory(zip_bytes: bytes, photo: bytes) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "upload.zip").write_bytes(zip_bytes)
        (Path(tmp) / "photo.jpg").write_bytes(photo)
        done = subprocess.run(
            [sys.executable, "-c", SERVER_SCRIPT, f"{tmp}/upload.zip", f"{tmp}/photo.jpg"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--zip-repeats", type=int, default=3)
    args = parser.parse_args()
    b = budgets()
    print(
        f"decoders: {b.sandbox_workers}, {b.sandbox_memory_bytes / 2**30:g} GiB, "
        f"{b.sandbox_cpu_seconds} CPU-s; images handed back at ≤ {b.lab_pixels:,} pixels; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    targets = []
    base = skimage_photo("astronaut")
    images.load_image(encoded(base, "JPEG"))  # start the decoders
    print(f"\n{'photo':<18}{'file':>10}{'sandboxed':>12}{'in-process':>12}{'limit':>10}")
    for mpx in (1, 4, 12):
        img = upscaled(base, mpx)
        for fmt in ("JPEG", "PNG"):
            data = encoded(img, fmt)
            images.read_image(data)  # warm-up (both routes' imports, caches)
            with sandbox.in_process():
                images.read_image(data)
            sand, here = alternate(lambda d=data: images.read_image(d), args.repeats)
            limit = PHOTO_RATIO * here + PHOTO_SLACK_MS / 1000
            name = f"photo_{fmt.lower()}_{mpx}mpx_ms"
            print(
                f"{fmt} {mpx:>2} Mpx {img.width}×{img.height}".ljust(18)
                + f"{len(data) / 1e6:>8.1f}MB{sand * 1000:>10.0f}ms{here * 1000:>10.0f}ms"
                + f"{limit * 1000:>8.0f}ms"
            )
            targets.append((name, sand * 1000, round(limit * 1000, 1)))

    zip_bytes = photo_zip()
    cpu = {"sandbox": [], "here": []}
    with tempfile.TemporaryDirectory() as tmp:

        def check_zip() -> None:
            route = "here" if sandbox._local.__dict__.get("in_process") else "sandbox"
            jobs.clear()
            start = time.process_time()
            with open_archive(zip_bytes, workdir=tmp) as folders:
                assert len(folders) == 500, folders.health().skipped[:3]
            cpu[route].append(time.process_time() - start + sum(jobs))

        sand, here = alternate(check_zip, args.zip_repeats)
    sand_cpu, here_cpu = (statistics.median(cpu[k]) for k in ("sandbox", "here"))
    print(
        f"\nzip of 500 photos (800×600 JPEG, {len(zip_bytes) / 1e6:.0f} MB): "
        f"sandboxed {sand:.2f} s, in-process {here:.2f} s, ratio {sand / here:.2f}\n"
        f"CPU time (server + its decoders' jobs; robust to other processes' load): "
        f"sandboxed {sand_cpu:.2f} s, in-process {here_cpu:.2f} s, "
        f"ratio {sand_cpu / here_cpu:.2f}"
    )
    targets.append(("zip_500_photos_sandboxed_over_in_process", sand / here, ZIP_RATIO))

    mem = server_memory(zip_bytes, encoded(base, "JPEG"))
    growth = (mem["peak"] - mem["before"]) / 2**20
    print(
        f"server process checking the zip: {mem['before'] / 2**20:.0f} MiB before, peak "
        f"{mem['peak'] / 2**20:.0f} MiB (+{growth:.0f} MiB), {mem['images']} images in "
        f"{mem['seconds']:.1f} s"
    )
    targets.append(("zip_server_peak_growth_mib", growth, SERVER_GROWTH_MB))
    return report_targets(targets)


if __name__ == "__main__":
    sys.exit(main())
