"""Project bundles that must be refused, built in memory from a valid one: each changes one
thing a hostile or damaged file could (cnnlib.uploads.bundle's reader must refuse every one
with a message, leaving nothing behind)."""

from __future__ import annotations

import io
import json
import zipfile

from PIL import Image

from tests.uploads import encode, png_declaring

ROOT = "cnnlab-project/"


def _members(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def _with_manifest(bundle: bytes, change) -> bytes:
    members = _members(bundle)
    manifest = json.loads(members[ROOT + "project.json"])
    change(manifest)
    members[ROOT + "project.json"] = json.dumps(manifest).encode()
    return _zip(members)


def hostile_bundles(valid: bytes) -> dict[str, tuple[bytes, str]]:
    """name → (bundle bytes, words the refusal must contain), from a valid bundle with the
    classes "cat" and "dog" (and maybe more, none after "zebra") and an image "cat/0.png"."""
    members = _members(valid)
    without_manifest = {k: v for k, v in members.items() if not k.endswith("project.json")}
    one_image_less = dict(members)
    del one_image_less[next(k for k in members if k.startswith(ROOT + "dog/"))]
    bomb = dict(members)
    bomb[ROOT + "cat/bomb.png"] = png_declaring(30000, 30000)
    traversal = dict(members)
    traversal["cnnlab-project/../../etc/evil.png"] = encode(Image.new("RGB", (4, 4)))
    nested = dict(members)
    nested[ROOT + "cat/inner.zip"] = _zip({"x.png": b"x"})
    deep_json = dict(members)
    deep_json[ROOT + "project.json"] = b"[" * 100_000 + b"]" * 100_000

    def set_key(key, value):
        return lambda m: m.__setitem__(key, value)

    return {
        "not a zip": (b"PK\x03\x04 not really a zip", "not a zip archive"),
        "images without a manifest": (_zip(without_manifest), "not a CNN Lab project"),
        "another format": (_with_manifest(valid, set_key("format", "teachable")), "not a CNN Lab"),
        "a future version": (_with_manifest(valid, set_key("version", 2)), "version"),
        "an extra key": (_with_manifest(valid, set_key("script", "rm -rf /")), "unexpected"),
        "a class with a slash": (
            _with_manifest(valid, set_key("classes", ["../cat", "dog"])),
            "cannot be a name",
        ),
        "classes not matching the folders": (
            _with_manifest(valid, lambda m: m["classes"].append("zebra")),
            "do not match",
        ),
        "a relabel to an unknown class": (
            _with_manifest(valid, set_key("relabels", {"cat/0.png": "wolf"})),
            "not in the project",
        ),
        "an exclusion of a missing image": (
            _with_manifest(valid, set_key("exclusions", ["cat/999.png"])),
            "does not hold",
        ),
        "a setting that is an object": (
            _with_manifest(valid, set_key("settings", {"epochs": {"$eval": "x"}})),
            "must be a number",
        ),
        "a history that is not numbers": (
            _with_manifest(valid, set_key("history", {"loss": ["a"]})),
            "at most",
        ),
        "an image count that lies": (_zip(one_image_less), "images but"),
        "a listed model that is missing": (
            _with_manifest(valid, set_key("model", "model.keras"))
            if ROOT + "model.keras" not in members
            else _zip({k: v for k, v in members.items() if not k.endswith("model.keras")}),
            "model",
        ),
        "a decompression bomb image": (_zip(bomb), "images but"),
        "a path leaving the folder": (_zip(traversal), "leaves its folder"),
        "an archive inside": (_zip(nested), "another archive"),
        "deeply nested JSON": (_zip(deep_json), "not valid JSON"),
        "a manifest that is not UTF-8": (
            _zip({**members, ROOT + "project.json": b"\xff\xfe{}"}),
            "not valid JSON",
        ),
    }
