"""cnnlib.uploads.folders: hostile archives refused before extraction, health report, tf.data split.

Every refusal is checked for its message and for leaving nothing behind: the session folder
(``workdir``) and Python's temporary folder (redirected to an empty folder) are listed
before and after.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from cnnlib.core.budgets import budgets
from cnnlib.core.errors import ArchiveError, CNNLabError, SandboxError
from cnnlib.core.sandbox import SandboxResult
from cnnlib.data.images import decode_options, decoded_image, load_image
from cnnlib.training.transfer import OwnImagesRecipe
from cnnlib.uploads import folders as folders_module
from cnnlib.uploads.folders import (
    SAMPLE_SIDE,
    SAMPLES_PER_CLASS,
    FolderData,
    example_archive,
    open_archive,
    open_files,
    train_from_archive,
)


def png(color=(200, 30, 30), size=(20, 20), mode="RGB", noise_seed=None) -> bytes:
    """PNG bytes of a plain (or noisy, when ``noise_seed`` is given) image."""
    if noise_seed is not None:
        rng = np.random.default_rng(noise_seed)
        img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    else:
        img = Image.new("RGB", size, color)
    if mode != "RGB":
        img = img.convert(mode)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def make_zip(entries: dict[str, bytes], *, compression=zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, raw in entries.items():
            zf.writestr(name, raw)
    return out.getvalue()


def two_classes(n=6, prefix="") -> dict[str, bytes]:
    files = {f"{prefix}red/{i}.png": png((200, 10 * i, 0), noise_seed=i) for i in range(n)}
    files |= {f"{prefix}blue/{i}.png": png((0, 10 * i, 200), noise_seed=100 + i) for i in range(n)}
    return files


@pytest.fixture
def session(tmp_path, monkeypatch):
    """(session folder passed as workdir, redirected system temp folder); both start empty."""
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(systmp))
    return tmp_path / "session", systmp


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def symlink_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, raw in two_classes().items():
            zf.writestr(name, raw)
        info = zipfile.ZipInfo("red/link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    return out.getvalue()


def bomb_zip() -> bytes:
    entries = two_classes() | {"red/big.png": b"\0" * (8 * 1024 * 1024)}
    return make_zip(entries, compression=zipfile.ZIP_DEFLATED)


REFUSED = {
    "not a zip": (b"hello, this is text", "not a zip archive"),
    "empty file": (b"", "empty"),
    "empty zip": (make_zip({}), "zip archive is empty"),
    "absolute path": (make_zip(two_classes() | {"/etc/evil.png": png()}), "absolute path"),
    "dot-dot": (make_zip(two_classes() | {"red/../../evil.png": png()}), "`..`"),
    "windows drive": (make_zip(two_classes() | {"C:/evil.png": png()}), "absolute path"),
    "symlink": (symlink_zip(), "symbolic link"),
    "nested archive": (make_zip(two_classes() | {"red/more.zip": make_zip({})}), "inside"),
    "zip bomb": (bomb_zip(), "zip bomb"),
    "single class": (make_zip({f"cats/{i}.png": png(noise_seed=i) for i in range(6)}), "one class"),
    "text only": (make_zip({"notes/a.txt": b"hi", "more/b.txt": b"ho"}), "no usable images"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_with_its_message_and_nothing_left(case, session):
    data, words = REFUSED[case]
    workdir, systmp = session
    before = listing(workdir.parent)
    with pytest.raises(ArchiveError, match=re.escape(words)) as err:
        open_archive(data, workdir=workdir)
    assert isinstance(err.value, ValueError) and isinstance(err.value, CNNLabError)
    assert listing(workdir) == [] and listing(systmp) == []
    assert listing(workdir.parent) in (before, sorted([*before, "session"]))


@pytest.mark.parametrize(
    ("env", "value", "words"),
    [
        ("CNNLAB_MAX_ARCHIVE_MEMBERS", "5", "lists 12 files"),
        ("CNNLAB_MAX_UNCOMPRESSED_BYTES", "1000", "unpacks to"),
        ("CNNLAB_MAX_ARCHIVE_BYTES", "1000", "over the limit"),
    ],
)
def test_caps_follow_their_environment_variables(env, value, words, session, monkeypatch):
    monkeypatch.setenv(env, value)
    workdir, systmp = session
    with pytest.raises(ArchiveError, match=words):
        open_archive(make_zip(two_classes()), workdir=workdir)
    assert listing(workdir) == [] and listing(systmp) == []


def test_images_are_stored_only_in_the_session_folder_and_cleaned_up(session):
    workdir, systmp = session
    entries = two_classes(prefix="photos/") | {
        "photos/red/broken.png": b"\x89PNG\r\n\x1a\n" + b"x" * 50,
        "photos/blue/readme.txt": b"not an image",
        "__MACOSX/photos/red/._0.png": b"junk",
        "photos/.DS_Store": b"junk",
        "photos/README.txt": b"my photos",
    }
    folders = open_archive(make_zip(entries), workdir=workdir)
    assert folders.class_names == ("blue", "red")  # wrapping folder dropped, sorted
    assert folders.counts() == {"blue": 6, "red": 6}
    skipped = {s.path: s.reason for s in folders.skipped}
    assert set(skipped) == {"photos/red/broken.png", "photos/blue/readme.txt", "photos/README.txt"}
    assert "not inside a class folder" in skipped["photos/README.txt"]
    assert "`photos/blue/readme.txt` is not an image" in skipped["photos/blue/readme.txt"]
    assert folders.root.parent == workdir and listing(systmp) == []
    stored = [p for p in folders.root.rglob("*") if p.is_file()]
    assert len(stored) == 12 and all(p.suffix == ".png" for p in stored)
    folders.cleanup()
    assert listing(workdir) == []


def test_top_level_files_are_skipped_with_a_reason(session):
    workdir, _ = session
    with open_archive(make_zip(two_classes() | {"loose.png": png()}), workdir=workdir) as f:
        assert [s.path for s in f.skipped] == ["loose.png"]
        assert "not inside a class folder" in f.skipped[0].reason


def test_folder_upload_same_rules(session):
    workdir, systmp = session
    files = list(two_classes(prefix="mine/").items())
    with open_files(files, workdir=workdir) as folders:
        assert folders.class_names == ("blue", "red")
    with pytest.raises(ArchiveError, match=re.escape("`..`")):
        open_files([*files, ("mine/../x.png", png())], workdir=workdir)
    with pytest.raises(ArchiveError, match="another archive"):
        open_files([*files, ("mine/red/x.zip", b"PK")], workdir=workdir)
    assert listing(workdir) == [] and listing(systmp) == []


@pytest.mark.slow
def test_health_reports_duplicates_tiny_imbalance_and_few_images(session):
    workdir, _ = session
    entries = {f"a/{i}.png": png(noise_seed=i) for i in range(16)}
    entries |= {f"b/{i}.png": png(noise_seed=50 + i) for i in range(3)}
    entries["b/copy.png"] = entries["a/0.png"]  # byte-identical, other class
    entries["b/tiny.png"] = png(size=(5, 9), noise_seed=99)
    with open_archive(make_zip(entries), workdir=workdir) as folders:
        report = folders.health()
    assert report.counts == {"a": 16, "b": 5}
    assert report.duplicates == [("a/0.png", "b/copy.png")]
    assert report.tiny == [("b/tiny.png", (5, 9))]
    assert report.ok
    assert any("imbalanced" in w for w in report.warnings)
    assert {k: len(v) for k, v in report.samples.items()} == {"a": 6, "b": 5}
    assert all(max(img.size) <= 96 for v in report.samples.values() for img in v)


def test_too_few_images_per_class_blocks_training(session, monkeypatch):
    workdir, _ = session
    monkeypatch.setenv("CNNLAB_MIN_IMAGES_PER_CLASS", "8")
    with open_archive(make_zip(two_classes(6)), workdir=workdir) as folders:
        report = folders.health()
    assert not report.ok and "`blue` (6), `red` (6)" in report.issues[0]
    with pytest.raises(ArchiveError, match="at least 8 images"):
        report.raise_for_issues()


def split_of(n_per_class=(10, 20, 7), seed=0, workdir=None) -> tuple[FolderData, object]:
    entries = {
        f"c{c}/{i}.png": png(noise_seed=1000 * c + i, size=(12, 12))
        for c, n in enumerate(n_per_class)
        for i in range(n)
    }
    folders = open_archive(make_zip(entries), workdir=workdir)
    return folders.split(12, validation_fraction=0.2, seed=seed), folders


@pytest.mark.slow
def test_split_is_stratified_seeded_and_disjoint(session):
    workdir, _ = session
    data, folders = split_of(workdir=workdir)
    with folders:
        assert data.counts("validation") == {"c0": 2, "c1": 4, "c2": 1}
        assert data.counts("train") == {"c0": 8, "c1": 16, "c2": 6}
        assert data.size("test") == 0 and data.counts("test") == {"c0": 0, "c1": 0, "c2": 0}
        train, val = set(data.files("train")[0]), set(data.files("validation")[0])
        assert not train & val and len(train | val) == 37
        again = folders.split(12, seed=0)
        other = folders.split(12, seed=1)
        assert again.files("validation")[0] == data.files("validation")[0]
        assert other.files("validation")[0] != data.files("validation")[0]
        three = folders.split(12, validation_fraction=0.2, test_fraction=0.2, seed=0)
        assert three.counts("test") == {"c0": 2, "c1": 4, "c2": 1}


def order(ds) -> list[int]:
    return [int(v) for v in np.concatenate([x.numpy().reshape(len(x), -1)[:, 0] for x, _ in ds])]


@pytest.mark.slow
def test_batches_protocol_pixels_and_per_epoch_orders(session):
    workdir, _ = session
    data, folders = split_of((9, 9), workdir=workdir)
    with folders:
        assert data.input_shape == (12, 12, 3) and data.class_names == ("c0", "c1")
        paths, labels = data.files("validation")
        x, y = next(iter(data.batches("validation", 64)))
        assert x.dtype.name == "float32" and y.dtype.name == "int32"
        assert x.shape == (len(paths), 12, 12, 3)
        reference = np.stack([np.asarray(load_image(Path(p).read_bytes())) for p in paths])
        np.testing.assert_array_equal(x.numpy(), reference.astype(np.float32))
        np.testing.assert_array_equal(y.numpy(), labels)

        first = order(data.batches("train", 5, epochs=3, seed=7))
        n = data.size("train")
        epochs = [first[i * n : (i + 1) * n] for i in range(3)]
        assert len(first) == 3 * n and all(sorted(e) == sorted(epochs[0]) for e in epochs)
        assert epochs[0] != epochs[1] != epochs[2]
        assert order(data.batches("train", 5, epochs=3, seed=7)) == first
        assert order(data.batches("train", 4, epochs=2, seed=7)) == first[: 2 * n]
        assert order(data.batches("train", 5, epochs=1, seed=8)) != epochs[0]
        assert len(list(data.batches("train", 5, epochs=2))) == 2 * -(-n // 5)


def test_file_cache_when_over_budget_gives_the_same_batches(session, monkeypatch):
    workdir, _ = session
    data, folders = split_of((6, 6), workdir=workdir)
    with folders:
        in_memory = [x.numpy() for x, _ in data.batches("train", 4, epochs=2, seed=3)]
        monkeypatch.setenv("CNNLAB_FOLDER_CACHE_BYTES", str(12 * 12 * 3))  # one image
        on_disk = [x.numpy() for x, _ in data.batches("validation", 4)]
        assert list((folders.root / "cache").iterdir())  # the cache file lives in the temp dir
        np.testing.assert_array_equal(
            np.concatenate(on_disk), np.concatenate([x for x, _ in data.batches("validation", 9)])
        )
        assert sum(len(x) for x in in_memory) == 2 * data.size("train")


def test_odd_formats_are_re_encoded_to_what_load_image_gives(session):
    workdir, _ = session
    rgba = Image.new("RGBA", (12, 12), (255, 0, 0, 0))  # fully transparent: white
    out = io.BytesIO()
    rgba.save(out, format="PNG")
    gray16 = Image.fromarray(np.full((12, 12), 40000, np.uint16))
    out16 = io.BytesIO()
    gray16.save(out16, format="PNG")
    entries = {"a/rgba.png": out.getvalue(), "a/g16.png": out16.getvalue()}
    entries |= {f"b/{i}.png": png(noise_seed=i, size=(12, 12)) for i in range(2)}
    with open_archive(make_zip(entries), workdir=workdir) as folders:
        data = folders.split(12, validation_fraction=0.0)
        x = np.concatenate([b.numpy() for b, _ in data.batches("train", 8, shuffle=False)])
        paths = data.files("train")[0]
        for path, image in zip(paths, x, strict=True):
            np.testing.assert_array_equal(image, np.asarray(load_image(Path(path).read_bytes())))
    assert (x[0] == 255).all() or (x[1] == 255).all()  # the transparent image became white


def test_example_archive_is_real_fashion_mnist(fashion_dir, session):
    workdir, _ = session
    with open_archive(example_archive(12, classes=(1, 8)), workdir=workdir) as folders:
        assert folders.class_names == ("Bag", "Trouser")
        assert folders.counts() == {"Bag": 12, "Trouser": 12}
        assert folders.health().ok
    from cnnlib.data.mnist import read_idx

    images = read_idx(fashion_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(fashion_dir / "t10k-labels-idx1-ubyte.gz")
    with zipfile.ZipFile(io.BytesIO(example_archive(3, classes=(1, 8)))) as zf:
        first_trouser = np.asarray(Image.open(io.BytesIO(zf.read("Trouser/0.png"))))
    np.testing.assert_array_equal(first_trouser, 255 - images[np.flatnonzero(labels == 1)[0]])


def as_jpegs(archive: bytes, quality: int = 90) -> bytes:
    """``archive``'s images saved again as JPEG photos (``<name>.jpg``), in the same folders."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            jpeg = io.BytesIO()
            Image.open(io.BytesIO(src.read(info))).convert("RGB").save(
                jpeg, "JPEG", quality=quality
            )
            dst.writestr(info.filename.rsplit(".", 1)[0] + ".jpg", jpeg.getvalue())
    return out.getvalue()


@pytest.mark.slow
def test_scratch_recipe_learns_real_fashion_mnist(fashion_dir, session):
    """3 classes × 100 real images at 32×32 saved as JPEG photos (stored as the decoder's
    JPEGs), 3 epochs, through the page's own job: measured 0.82 validation accuracy (0.90
    from the PNGs themselves)."""
    workdir, systmp = session
    seen = []
    recipe = OwnImagesRecipe("scratch", image_size=32, epochs=3, seed=0)
    result = train_from_archive(
        as_jpegs(example_archive(100, classes=(1, 5, 8))),
        recipe,
        workdir=workdir,
        progress=seen.append,
    )
    assert result.class_names == ("Bag", "Sandal", "Trouser") and result.recipe is recipe
    assert result.val_accuracy >= 0.7  # chance is 0.33
    p = result.progress
    assert p.state == "finished" and p.stage == "scratch" and len(p.val_accuracy) == 3
    assert result.val_accuracy == max(p.val_accuracy)
    assert p.process_id != os.getpid()  # the job's own process, as on the page
    assert seen and all(s.state in ("queued", "running", "finished") for s in seen)
    assert result.model.input_shape == (None, 32, 32, 3)
    assert listing(workdir) == [] and listing(systmp) == []


def test_every_stored_file_is_one_the_decoder_made_and_reads_as_load_image(session):
    """JPEGs (EXIF-rotated or not) are decoded once, in the sandbox, and stored as the JPEG it
    wrote (quality 95, no chroma subsampling), which TensorFlow reads exactly as Pillow does:
    within 2.5 grey levels on average of what load_image gives for this sharp-edged image
    (the source was lossy already); PNGs are stored as the PNG it wrote, read back exactly.
    TensorFlow only ever reads files CNN Lab made."""
    workdir, _ = session
    rng = np.random.default_rng(3)
    smooth = np.kron(rng.integers(0, 256, (4, 6, 3)), np.ones((4, 4, 1))).astype(np.uint8)
    plain, rotated = io.BytesIO(), io.BytesIO()
    Image.fromarray(smooth).save(plain, format="JPEG", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    Image.fromarray(smooth).save(rotated, format="JPEG", quality=95, exif=exif)
    entries = {"a/plain.jpg": plain.getvalue(), "a/rotated.jpg": rotated.getvalue()}
    entries |= {f"b/{i}.png": png(noise_seed=i, size=(16, 24)) for i in range(2)}
    with open_archive(make_zip(entries), workdir=workdir) as folders:
        jpegs = [p for p, label in folders.files if label == 0]
        pngs = [p for p, label in folders.files if label == 1]
        assert [folders.source(p) for p in jpegs + pngs] == list(entries)
        assert all(p.suffix == ".jpg" and p.read_bytes()[:3] == b"\xff\xd8\xff" for p in jpegs)
        assert all(p.suffix == ".png" and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
        for path in jpegs:
            with Image.open(path) as stored:  # as saved: 4:4:4 (no chroma subsampling)
                assert stored.format == "JPEG" and stored.layers == 3
                assert JpegImagePlugin.get_sampling(stored) == 0
        for path, raw in zip(jpegs + pngs, entries.values(), strict=True):
            expected = np.asarray(load_image(raw), dtype=np.float32)
            data = folders.split(expected.shape[:2], validation_fraction=0.0)
            got = next(x.numpy() for x, _ in data.batches("train", 8, shuffle=False))
            index = data.files("train")[0].index(str(path))
            if path.suffix == ".png":
                np.testing.assert_array_equal(got[index], expected)  # exact: a lossless copy
            else:
                with Image.open(path) as stored:  # TF decodes as Pillow: no fast-DCT error
                    np.testing.assert_array_equal(got[index], np.asarray(stored.convert("RGB")))
                difference = np.abs(got[index] - expected)
                assert difference.mean() <= 2.5 and difference.max() <= 24, difference.mean()
        assert folders._sizes[jpegs[1]] == (16, 24)  # the rotated one, as displayed


def test_a_jpeg_stored_as_png_would_be_refused_by_the_server():
    """The server checks that a decoder's stored copy starts with the signature of the
    format it names (a decoder taken over by a crafted file cannot pass off other bytes)."""
    options = decode_options(budgets(), store_side=64, with_image=False)
    raw = png(size=(20, 20))
    meta = {"width": 20, "height": 20, "format": "PNG", "mode": "RGB", "sha1": "0" * 40}
    meta |= {"file_bytes": len(raw)}
    stored = np.frombuffer(raw, np.uint8)
    ok = SandboxResult("x", meta | {"stored_format": "PNG"}, {"stored": stored})
    assert decoded_image(ok, options).stored_suffix == ".png"
    lying = SandboxResult("x", meta | {"stored_format": "JPEG"}, {"stored": stored})
    with pytest.raises(SandboxError, match="sent back something"):
        decoded_image(lying, options)
    unknown = SandboxResult("x", meta | {"stored_format": "GIF"}, {"stored": stored})
    with pytest.raises(SandboxError, match="sent back something"):
        decoded_image(unknown, options)


def _spy_jobs(monkeypatch) -> list[tuple[str, dict]]:
    """Every (name, options) the upload readers send to the sandbox, in order."""
    original, sent = folders_module.run_many, []

    def spy(jobs):
        def recorded():
            for job in jobs:
                sent.append((job.name.strip("`"), job.options))
                yield job

        return original(recorded())

    monkeypatch.setattr(folders_module, "run_many", spy)
    return sent


def test_thumbnails_are_asked_for_the_first_images_of_each_class_only(session, monkeypatch):
    """Only the first SAMPLES_PER_CLASS images of each class folder (in the upload's order,
    classes interleaved) are asked for a thumbnail: the others are decoded and stored
    without one; the health grid gets exactly those."""
    workdir, _ = session
    sent = _spy_jobs(monkeypatch)
    entries = {}
    for i in range(9):  # a/0, b/0, a/1, b/1, ... : the classes interleaved
        entries[f"a/{i}.png"] = png(noise_seed=i)
        if i < 8:
            entries[f"b/{i}.png"] = png(noise_seed=100 + i)
    with open_archive(make_zip(entries), workdir=workdir) as folders:
        report = folders.health()
    asked = {name: opts["thumbnail_side"] for name, opts in sent}
    first = {f"{c}/{i}.png" for c in "ab" for i in range(SAMPLES_PER_CLASS)}
    assert len(sent) == len(entries)  # one job each: no second pass
    assert {n for n, side in asked.items() if side} == first
    assert all(asked[n] == SAMPLE_SIDE for n in first)
    assert {k: len(v) for k, v in report.samples.items()} == {"a": 6, "b": 6}
    expected = [load_image(entries[f"a/{i}.png"]) for i in range(SAMPLES_PER_CLASS)]
    for thumb, image in zip(report.samples["a"], expected, strict=True):
        assert thumb.size == image.size  # 20 × 20: within SAMPLE_SIDE, kept as it is
        np.testing.assert_array_equal(np.asarray(thumb), np.asarray(image))


def test_thumbnails_of_refused_images_are_replaced_by_the_next_ones(session, monkeypatch):
    """When some of a class's first images are refused, the next stored ones are asked for
    their thumbnail afterwards (only those), so the grid still shows SAMPLES_PER_CLASS."""
    workdir, _ = session
    sent = _spy_jobs(monkeypatch)
    entries = {f"a/{i}.png": png(noise_seed=i) for i in range(9)}
    entries["a/1.png"] = entries["a/4.png"] = b"\x89PNG\r\n\x1a\n" + b"x" * 50  # refused
    entries |= {f"b/{i}.png": png(noise_seed=100 + i) for i in range(3)}
    with open_archive(make_zip(entries), workdir=workdir) as folders:
        report = folders.health()
        assert folders.counts() == {"a": 7, "b": 3}
    again = [name for name, opts in sent[len(entries) :]]
    assert again == ["a/6.png", "a/7.png"]  # the 5th and 6th stored images of a
    assert all(opts["store_side"] == 0 and opts["thumbnail_side"] for _, opts in sent[12:])
    assert {k: len(v) for k, v in report.samples.items()} == {"a": 6, "b": 3}
    shown = [0, 2, 3, 5, 6, 7]
    for thumb, i in zip(report.samples["a"], shown, strict=True):
        expected = np.asarray(load_image(entries[f"a/{i}.png"]))
        np.testing.assert_array_equal(np.asarray(thumb), expected)


def test_relabel_and_exclude_change_the_next_split_and_arrays_match_the_batches(tmp_path):
    folders = open_archive(make_zip(two_classes(6)), workdir=tmp_path)
    assert folders.class_names == ("blue", "red")
    path, label = folders.files[0]
    assert label == 0
    assert folders.source(path).startswith("blue/")
    folders.relabel(path, 1)
    folders.exclude(folders.files[1][0])
    assert folders.counts() == {"blue": 4, "red": 7}
    assert folders.health().counts == {"blue": 4, "red": 7}
    with pytest.raises(CNNLabError, match="not one of the classes"):
        folders.relabel(path, 2)
    with pytest.raises(CNNLabError, match="no longer"):
        folders.exclude(tmp_path / "elsewhere.png")
    data = folders.split(24, validation_fraction=0.3, seed=1)
    x, y, paths = data.arrays("validation")
    batches = list(data.batches("validation", 4))
    expected = np.concatenate([b.numpy() for b, _ in batches]).astype(np.uint8)
    assert x.dtype == np.uint8 and x.shape == (len(y), 24, 24, 3)
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, np.concatenate([lab.numpy() for _, lab in batches]))
    assert paths == [str(p) for p in data.files("validation")[0]]
    stored = dict((str(p), lab) for p, lab in folders.files)
    assert [stored[p] for p in paths] == y.tolist()
    folders.cleanup()
