"""The hostile .keras corpus (tests/hostile_keras.py) through the upload's real route: each
file gets a learner's message or is accepted on purpose, Keras' settings never change, and
the server's own cost per upload stays small.

Cost is measured in this process (the server's side of ``load_keras_file``: sending the
file to a decoder, checking its answer, building an accepted model): CPU-seconds from
``getrusage`` and the growth of the peak resident memory (``VmHWM``, reset before each
upload) over the resident memory before it. An accepted model is the result the server
keeps; its weights are a few kB here.
"""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pytest

from cnnlib.core.budgets import Budgets
from cnnlib.core.errors import InvalidModelError
from cnnlib.uploads.model_files import keras_settings, load_keras_file
from tests.hostile_keras import ACCEPT, corpus, genuine

BUDGETS = Budgets()
#: The server's cost per upload (issue 16): resident memory growth and CPU-seconds.
MAX_RSS_GROWTH = 50 * 1024 * 1024
MAX_CPU_SECONDS = 0.5

CORPUS = corpus()


def _status(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(text.split(f"{key}:")[1].split()[0]) * 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _upload(data: bytes):
    """(model or refusal message, server CPU-seconds, peak RSS growth in bytes)."""
    Path("/proc/self/clear_refs").write_text("5")  # restart VmHWM at the current RSS
    rss, cpu = _status("VmRSS"), _cpu()
    try:
        outcome = load_keras_file(data, budgets=BUDGETS, name="the upload")
    except InvalidModelError as err:
        outcome = str(err)
    return outcome, _cpu() - cpu, _status("VmHWM") - rss


@pytest.fixture(scope="module", autouse=True)
def warm():
    """One genuine upload first: the decoders start and Keras builds its first layers."""
    load_keras_file(genuine(), budgets=BUDGETS)


def test_the_corpus_covers_the_issue():
    names = {h.name for h in CORPUS}
    for trick in (
        "build_config.keras",
        "batch_input_shape.keras",
        "lora_rank.keras",
        "shared_object_id.keras",
        "activation_numpy.keras",
        "activation_set_floatx.keras",
        "fill_value_bomb.keras",
        "gzip_bomb.keras",
        "lambda.keras",
        "custom_class.keras",
        "huge_input.keras",
        "deep_nesting.keras",
        "extra_member.keras",
        "corrupt_deflate.keras",
        "deflate64.keras",
        "lzma.keras",
        "external_storage.keras",
        "virtual_dataset.keras",
        "external_link.keras",
    ):
        assert trick in names, trick


@pytest.mark.parametrize("item", CORPUS, ids=[h.name for h in CORPUS])
def test_each_hostile_file_gets_a_message_or_is_accepted_on_purpose(item):
    before = keras_settings()
    outcome, cpu, growth = _upload(item.data)
    if item.expect == ACCEPT:
        assert not isinstance(outcome, str), outcome
        x = np.zeros((1, *outcome.input_shape[1:]), np.float32)
        assert np.isfinite(np.asarray(outcome(x))).all()  # the first forward pass
    else:
        assert isinstance(outcome, str), f"{item.name} was accepted: {item.why}"
        assert item.expect in outcome, outcome
        assert outcome.startswith("This model file cannot be used: ")
        assert "Traceback" not in outcome and "Error" not in outcome
    assert keras_settings() == before
    assert growth <= MAX_RSS_GROWTH, f"{item.name}: server RSS grew {growth / 1e6:.0f} MB"
    assert cpu <= MAX_CPU_SECONDS, f"{item.name}: {cpu:.2f} CPU-seconds in the server"
