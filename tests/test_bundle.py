"""cnnlib.uploads.bundle: a project saved and read back is the same project (classes,
images, relabels, exclusions, settings, history, model), and every hostile bundle is refused
with a message, leaving no temporary folder behind."""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np
import pytest
from PIL import Image

from cnnlib.core.errors import ArchiveError, InvalidArgumentError
from cnnlib.uploads.bundle import (
    Project,
    ProjectImage,
    parse_manifest,
    project_model,
    read_bundle,
    write_bundle,
)
from tests.hostile_bundles import hostile_bundles
from tests.test_hostile_uploads import uploads_never_parsed_here  # noqa: F401 (a fixture)

CLASSES = ("cat", "dog", "fox")
SETTINGS = {"recipe": "transfer", "epochs": 5, "learning_rate": 1e-3, "augment": True, "x": None}
HISTORY = {"loss": [1.2, 0.8, math.nan], "val_accuracy": [0.5, 0.75, 0.8]}


def picture(seed: int, size=(40, 30)) -> np.ndarray:
    """(H, W, 3) uint8 noise: every pixel matters, so a lossy round trip would show."""
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def sample_project(model: bytes | None = None) -> Project:
    images = tuple(
        ProjectImage(f"{i}.png", label, picture(10 * label + i))
        for label in range(3)
        for i in range(6)
    )
    return Project(
        class_names=CLASSES,
        images=images,
        relabels={"cat/1.png": 1, "fox/0.png": 0},
        exclusions=("dog/5.png",),
        settings=SETTINGS,
        history=HISTORY,
        model=model,
    )


@pytest.fixture(scope="module")
def saved() -> bytes:
    return write_bundle(sample_project(), image_format="PNG")


def stored_pixels(opened, key: str) -> np.ndarray:
    prefix = "cnnlab-project/"
    folders = opened.folders
    for path, _ in folders.files:
        if folders.source(path) == prefix + key:
            return np.asarray(Image.open(path).convert("RGB"))
    return np.asarray(Image.open(opened.excluded[key]).convert("RGB"))


def test_round_trip_keeps_everything(saved):
    opened = read_bundle(saved)
    try:
        folders = opened.folders
        assert folders.class_names == CLASSES
        # 6 per class; cat/1 moved to dog, fox/0 moved to cat, dog/5 left out
        assert folders.counts() == {"cat": 6, "dog": 6, "fox": 5}
        assert len(folders) == 17 and set(opened.excluded) == {"dog/5.png"}
        labels = {folders.source(p).split("/", 1)[1]: lab for p, lab in folders.files}
        assert labels["cat/1.png"] == 1 and labels["fox/0.png"] == 0 and labels["dog/0.png"] == 1
        for key, seed in (("cat/0.png", 0), ("fox/3.png", 23), ("dog/5.png", 15)):
            np.testing.assert_array_equal(stored_pixels(opened, key), picture(seed))  # lossless
        manifest = opened.manifest
        assert manifest.settings == SETTINGS
        assert manifest.history["val_accuracy"] == (0.5, 0.75, 0.8)
        assert math.isnan(manifest.history["loss"][2])
        assert opened.model_bytes is None and project_model(opened) is None
        assert folders.skipped == [] and folders.health().ok
    finally:
        opened.folders.cleanup()
    assert not opened.folders.root.exists()


def test_photos_are_resized_and_stored_as_jpeg():
    big = Project(
        class_names=("a", "b"),
        images=tuple(
            ProjectImage(f"{i}.jpg", i % 2, np.full((300, 600, 3), 40 + 100 * (i % 2), np.uint8))
            for i in range(10)
        ),
    )
    data = write_bundle(big, image_side=128)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = [n for n in zf.namelist() if n.endswith(".jpg")]
        assert len(names) == 10
        with Image.open(io.BytesIO(zf.read(names[0]))) as img:
            assert img.format == "JPEG" and img.size == (128, 64)
    opened = read_bundle(data)
    try:
        assert opened.folders.counts() == {"a": 5, "b": 5}
        first = np.asarray(Image.open(opened.folders.files[0][0]))
        assert np.abs(first.astype(int) - 40).max() <= 2  # JPEG quality 95 of a flat grey
    finally:
        opened.folders.cleanup()


@pytest.mark.slow
def test_the_model_goes_through_the_keras_upload_path():
    import keras

    from cnnlib.training.trainer import save_model_bytes

    model = keras.Sequential(
        [
            keras.Input((30, 40, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    opened = read_bundle(write_bundle(sample_project(save_model_bytes(model))))
    try:
        restored = project_model(opened)
        x = np.stack([picture(i) for i in range(4)]).astype(np.float32)
        np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    finally:
        opened.folders.cleanup()


def test_the_writer_refuses_what_cannot_be_saved():
    project = sample_project()
    bad = {
        "a slash in a class": Project(("a/b", "c"), project.images[:2]),
        "unsorted classes": Project(("dog", "cat"), project.images[:2]),
        "one class": Project(("cat",), project.images[:1]),
        "an image name with a folder": Project(CLASSES, (ProjectImage("x/1.png", 0, picture(0)),)),
        "a relabel of nothing": Project(CLASSES, project.images, relabels={"cat/99.png": 1}),
        "an exclusion of nothing": Project(CLASSES, project.images, exclusions=("owl/1.png",)),
        "two images, one name": Project(
            CLASSES, (ProjectImage("1.png", 0, picture(0)), ProjectImage("1.jpg", 0, picture(1)))
        ),
        "a setting that is a list": Project(CLASSES, project.images, settings={"layers": [1, 2]}),
        "an infinite setting": Project(CLASSES, project.images, settings={"lr": math.inf}),
    }
    for name, item in bad.items():
        with pytest.raises(InvalidArgumentError):
            write_bundle(item, image_format="PNG")
        assert name  # (for the failure report)


def test_every_hostile_bundle_is_refused_with_a_message(saved, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))  # ImageFolders' folders land here
    for name, (data, words) in hostile_bundles(saved).items():
        with pytest.raises(ArchiveError) as refusal:
            read_bundle(data)
        assert words.lower() in str(refusal.value).lower(), (name, str(refusal.value))
        assert "Traceback" not in str(refusal.value)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_parse_manifest_is_strict():
    good = json.loads(
        zipfile.ZipFile(io.BytesIO(write_bundle(sample_project(), image_format="PNG"))).read(
            "cnnlab-project/project.json"
        )
    )
    manifest = parse_manifest(good)
    assert manifest.classes == CLASSES and manifest.images == 18 and not manifest.has_model
    assert manifest.relabels == {"cat/1.png": "dog", "fox/0.png": "cat"}
    for change in (
        {"images": True},
        {"images": 0},
        {"classes": ["cat", "cat"]},
        {"exclusions": ["cat/1.png/x"]},
        {"model": "../model.keras"},
        {"settings": {"not an identifier": 1}},
    ):
        with pytest.raises(ArchiveError):
            parse_manifest({**good, **change})


def test_the_server_never_parses_the_bundle(uploads_never_parsed_here):  # noqa: F811
    forbid = uploads_never_parsed_here
    data = forbid(write_bundle(sample_project(model=b"PK\x05\x06" + bytes(18))))
    opened = read_bundle(data)  # listing, manifest, model bytes and images: all in decoders
    try:
        assert opened.folders.class_names == CLASSES and len(opened.folders) == 17
        assert opened.model_bytes == b"PK\x05\x06" + bytes(18)
    finally:
        opened.folders.cleanup()
