"""Peak memory of the pages' paths on a 40-megapixel photo, each in a fresh process.

The lab's child (no TensorFlow, checked) loads the photo through ``read_image`` (decoded
in the sandbox's own process, handed back at ``Budgets.lab_pixels``: what is measured here
is the server's side), downscales it to the lab's largest compute size (the same), and runs
the lab's computations: a 4-kernel filter bank, ReLU, both poolings and the drawing reduction. Its
peak resident memory must stay within 1.2 GB. The ResNet50 child loads ResNet50 (random
weights from a local file, through the app's loader), then takes the photo through what
Classify does (the step-by-step preprocessing, the top-5, Grad-CAM and its overlay on the
model's input, as the page does) and what Feature maps does at its largest setting (every
layer's activations at once), then MNIST's digit preprocessing of the photo (the MNIST page's
photo of a digit); its peak must stay within 1.5 GB.

The peak is the child's ``VmHWM`` (Linux): ``resource``'s ``ru_maxrss`` of a child started
from a big pytest process includes the parent's pages, recorded by the kernel when the
child replaces itself with the new Python.
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
LIMIT_TENSORFLOW_BYTES = 1_500_000_000

PEAK = r"""
def peak_bytes():
    # This process's own peak: VmHWM. ru_maxrss would also count the parent's pages (Linux
    # records the pre-exec memory of a forked/vforked child, i.e. pytest's RSS).
    try:
        status = open("/proc/self/status").read()
        return int(status.split("VmHWM:")[1].split()[0]) * 1024
    except (OSError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB
"""

CHILD = (
    PEAK
    + r"""
import json, resource, sys
from cnnlib.conv import ops as conv
from cnnlib.data import images
from cnnlib.conv import kernels
from cnnlib.conv import lab
from cnnlib.core.budgets import budgets

limits = budgets()
data = open(sys.argv[1], "rb").read()
decoded = images.read_image(data, name="the photo")  # in the sandbox: back at <= lab_pixels
img, loaded = decoded.image, decoded.original_size
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
peak = peak_bytes()
print(json.dumps({
    "loaded": loaded, "computed": small.size, "pixels": small.width * small.height,
    "maps": maps.shape, "peak": peak, "tensorflow": "tensorflow" in sys.modules,
}))
"""
)

RESNET_CHILD = (
    PEAK
    + r"""
import json, resource, sys
from cnnlib.data import digits
from cnnlib.inspect import features
from cnnlib.data import images
from cnnlib.inspect import imagenet
from cnnlib.models import load_resnet50

pm = load_resnet50(sys.argv[2])
after_model = peak_bytes()
decoded = images.read_image(open(sys.argv[1], "rb").read(), name="the photo")
img, loaded = decoded.image, decoded.original_size
# Classify: the pipeline's steps, the top-5, Grad-CAM and its overlay, as the page draws it
# (on the 224 x 224 image the model saw).
result = imagenet.run_classification(pm, img)
cam = imagenet.grad_cam(pm, result.steps.batch, result.predictions[0].class_id)
shown = imagenet.overlay(result.steps.resized, cam)
# Feature maps at its largest setting: every viewable layer's activations in one pass.
extractor, fields = features.open_model(pm.model, guard=pm.use())
acts = extractor.run(imagenet.prepare(img))
# The MNIST page's (and Feature maps') photo of a digit: MNIST-style 28 x 28.
digit = digits.preprocess_digit(img)
print(json.dumps({
    "loaded": loaded, "top": len(result.predictions), "cam": cam.shape, "shown": shown.size,
    "layers": len(extractor.layer_names), "maps": len(acts.maps), "digit": digit.shape,
    "after_model": after_model, "peak": peak_bytes(),
}))
"""
)


def _run(code: str, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


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
    report = _run(CHILD, str(path))
    assert report["loaded"] == [8000, 5000]
    assert report["pixels"] <= 4_000_000 and max(report["computed"]) > 2000
    assert report["maps"][2] == 4
    assert report["tensorflow"] is False
    print(f"peak RSS {report['peak'] / 1e6:.0f} MB for {report}")
    assert report["peak"] <= LIMIT_BYTES


@pytest.mark.slow
def test_40_megapixel_photo_through_classify_and_feature_maps_stays_within_1_5_gb(tmp_path):
    pytest.importorskip("keras")
    from tests.imagenet_weights import resnet50_weights_file

    path = tmp_path / "big.jpg"
    _photo_40_megapixels(path)
    report = _run(RESNET_CHILD, str(path), str(resnet50_weights_file()))
    assert report["loaded"] == [8000, 5000] and report["shown"] == [224, 224]
    assert report["top"] == 5 and report["cam"] == [7, 7]
    assert report["maps"] == report["layers"] > 100  # ResNet50's viewable layers
    assert report["digit"] == [28, 28]
    print(
        f"peak RSS {report['peak'] / 1e6:.0f} MB "
        f"({report['after_model'] / 1e6:.0f} MB with ResNet50 loaded)"
    )
    assert report["peak"] <= LIMIT_TENSORFLOW_BYTES
