"""Peak memory of the Convolution lab's path on a 40-megapixel photo, in a fresh process.

The child process (no TensorFlow, checked) loads the photo through ``load_image``,
downscales it to the lab's largest compute size (``Budgets.lab_pixels``), and runs the lab's
computations: a 4-kernel filter bank, ReLU, both poolings and the drawing reduction. Its
peak resident memory must stay within 1.2 GB. The peak is the child's ``VmHWM`` (Linux):
``resource``'s ``ru_maxrss`` of a child started from a big pytest process includes the
parent's pages, recorded by the kernel when the child replaces itself with the new Python.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
LIMIT_BYTES = 1_200_000_000

CHILD = r"""
import json, resource, sys
from cnnlib import conv, images, kernels, lab
from cnnlib.budgets import budgets

limits = budgets()
data = open(sys.argv[1], "rb").read()
img = images.load_image(data, name="the photo")
loaded = img.size
# The largest compute size the lab allows: at most lab_pixels, aspect kept.
small = images.downscale(img, images.side_for_pixels(img.size, limits.lab_pixels))
del img
x = images.to_array(small)  # (H, W, 3) float32 in [0, 1]
names = ["vertical edges", "horizontal edges", "laplacian", "box blur"]
bank = lab.filter_bank([kernels.preset(n) for n in names], 3)  # (3, 3, 3, 4)
maps = conv.conv2d(x, bank, padding="same")
single = conv.conv2d(x, kernels.preset("vertical edges"), padding="same", dilation=3)
act = conv.relu(maps)
pools = conv.max_pool2d(act), conv.avg_pool2d(act)
view, f = lab.display_map(single, 512)
# Peak RSS of this process's own memory: VmHWM. ru_maxrss would also count the parent's
# pages (Linux records the pre-exec memory of a forked/vforked child, i.e. pytest's RSS).
try:
    status = open("/proc/self/status").read()
    peak = int(status.split("VmHWM:")[1].split()[0]) * 1024
except (OSError, IndexError):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB
print(json.dumps({
    "loaded": loaded, "computed": small.size, "pixels": small.width * small.height,
    "maps": maps.shape, "peak": peak, "tensorflow": "tensorflow" in sys.modules,
}))
"""


def _photo_40_megapixels(path: Path) -> None:
    """An 8000×5000 JPEG with smooth colour gradients (a few MB, under the upload limit)."""
    red = Image.linear_gradient("L").resize((8000, 5000))
    green = Image.radial_gradient("L").resize((8000, 5000))
    blue = red.transpose(Image.Transpose.ROTATE_180)
    Image.merge("RGB", (red, green, blue)).save(path, format="JPEG", quality=90)


@pytest.mark.slow
def test_40_megapixel_photo_through_the_lab_stays_within_1_2_gb(tmp_path):
    path = tmp_path / "big.jpg"
    _photo_40_megapixels(path)
    assert path.stat().st_size < 20 * 1024 * 1024
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded"] == [8000, 5000]
    assert report["pixels"] <= 4_000_000 and max(report["computed"]) > 2000
    assert report["maps"][2] == 4
    assert report["tensorflow"] is False
    print(f"peak RSS {report['peak'] / 1e6:.0f} MB for {report}")
    assert report["peak"] <= LIMIT_BYTES
