"""cnnlib.models.pretrained: where the weights come from, honesty about them, thread safety.

No network: weights files are made here from ``weights=None`` models and loaded through the
real code paths (the environment variables and Keras' cache).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import os
import threading
import time
import urllib.error
from pathlib import Path

import keras
import numpy as np
import pytest

from cnnlib.core.errors import WeightsUnavailableError
from cnnlib.models import pretrained
from cnnlib.models.pretrained import (
    RESNET50,
    VGG19,
    VGG19_NOTOP,
    file_md5,
    keras_cache_dir,
    load_resnet50,
    load_vgg19,
)
from tests.imagenet_weights import missing_weights_file, resnet50_reference


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No weights env vars, an empty Keras cache in a temp folder, no remembered failures."""
    for var in (RESNET50.env_var, VGG19.env_var):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    pretrained.forget_failures()
    yield tmp_path
    pretrained.forget_failures()


def _assert_same_weights(a, b) -> None:
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb, strict=True):
        np.testing.assert_array_equal(x, y)


def test_specs_are_keras_own_files():
    """File names and MD5s are the ones keras.applications downloads and checks."""
    from keras.src.applications import resnet, vgg19

    assert RESNET50.md5 == resnet.WEIGHTS_HASHES["resnet50"][0]
    assert RESNET50.origin == resnet.BASE_WEIGHTS_PATH + RESNET50.file_name
    source = inspect.getsource(vgg19)
    for spec in (VGG19, VGG19_NOTOP):
        assert spec.md5 in source and spec.file_name in source
        assert spec.origin.endswith(spec.file_name)
    assert spec.origin in (vgg19.WEIGHTS_PATH, vgg19.WEIGHTS_PATH_NO_TOP)


@pytest.mark.slow
def test_resnet50_from_env_file_is_loaded_and_not_called_imagenet(clean_env, monkeypatch):
    reference, path = resnet50_reference()
    monkeypatch.setenv(RESNET50.env_var, str(path))
    pm = load_resnet50()
    assert pm.input_shape == (None, 224, 224, 3)
    assert tuple(pm.model.output_shape) == (None, 1000)
    _assert_same_weights(pm.model, reference)
    assert pm.weights_path == path
    assert RESNET50.env_var in pm.weights_source and str(path) in pm.weights_source
    # Random weights in a file named like Keras' official one are still not ImageNet's.
    assert pm.imagenet_verified is False
    assert pm.load_seconds > 0


@pytest.mark.slow
def test_keras_cache_route_verifies_the_checksum(clean_env, monkeypatch):
    """A file in Keras' cache is used without downloading; 'verified' means the MD5 matches."""
    _, path = resnet50_reference()
    cache = keras_cache_dir()
    assert cache == clean_env / "keras-home" / "models"
    cache.mkdir(parents=True)
    (cache / RESNET50.file_name).symlink_to(path)

    def no_network(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", no_network)
    monkeypatch.setattr(pretrained, "_fetch", no_network)
    # Pretend this file were Keras' official one (its MD5 is the expected MD5).
    monkeypatch.setattr(pretrained, "RESNET50", dataclasses.replace(RESNET50, md5=file_md5(path)))
    pm = load_resnet50()
    assert pm.imagenet_verified is True
    assert "Keras' cache" in pm.weights_source


def test_missing_env_file_names_the_file_and_both_ways(clean_env, monkeypatch):
    monkeypatch.setenv(RESNET50.env_var, str(missing_weights_file()))
    with pytest.raises(WeightsUnavailableError) as info:
        load_resnet50()
    message = str(info.value)
    assert str(missing_weights_file()) in message
    assert RESNET50.file_name in message
    assert RESNET50.env_var in message
    assert str(keras_cache_dir()) in message
    assert RESNET50.origin in message


def test_failed_download_names_the_file_and_both_ways(clean_env, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(pretrained, "_fetch", offline)
    with pytest.raises(WeightsUnavailableError) as info:
        load_resnet50()
    message = str(info.value)
    assert "could not be downloaded" in message and "no network" in message
    assert RESNET50.file_name in message and RESNET50.env_var in message
    assert str(keras_cache_dir()) in message


@pytest.mark.slow
def test_a_file_that_is_not_weights_gives_a_clear_message(clean_env, monkeypatch, tmp_path):
    bogus = tmp_path / "weights.h5"
    bogus.write_text("this is not an HDF5 file")
    monkeypatch.setenv(VGG19.env_var, str(bogus))
    with pytest.raises(WeightsUnavailableError) as info:
        load_vgg19()
    assert "could not be loaded into VGG19" in str(info.value)
    assert VGG19_NOTOP.file_name in str(info.value)


@pytest.mark.slow
def test_vgg19_notop_from_keras3_weights_file(clean_env, monkeypatch, tmp_path):
    """VGG19 without top, from a Keras 3 ``.weights.h5`` file: Feature-maps' extractor."""
    reference = keras.applications.VGG19(weights=None, include_top=False, input_shape=(224, 224, 3))
    path = tmp_path / "vgg19_notop.weights.h5"
    reference.save_weights(path)
    monkeypatch.setenv(VGG19.env_var, str(path))
    pm = load_vgg19()
    assert pm.spec is VGG19_NOTOP
    assert tuple(pm.model.output_shape) == (None, 7, 7, 512)
    _assert_same_weights(pm.model, reference)
    assert pm.imagenet_verified is False
    x = np.random.default_rng(0).uniform(-120, 130, (1, 224, 224, 3)).astype(np.float32)
    np.testing.assert_allclose(pm.predict(x), reference(x).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_weights_none_is_random_and_says_so(clean_env):
    pm = load_vgg19(weights=None)
    assert pm.weights_path is None and pm.imagenet_verified is False
    assert "random" in pm.weights_source and "not ImageNet" in pm.weights_source


def test_cached_builds_once_across_threads():
    pm = pretrained.PretrainedModel(
        object(),
        RESNET50,
        weights_source="test",
        weights_path=None,
        imagenet_verified=False,
        load_seconds=0.0,
    )
    calls = []

    def build():
        calls.append(1)
        return object()

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(pm.cached("k", build))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(r) for r in results}) == 1


def test_keras_cache_dir_follows_keras_home(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_cache_dir() == tmp_path / "models"
    monkeypatch.delenv("KERAS_HOME")
    assert keras_cache_dir() == Path(os.path.expanduser("~")) / ".keras" / "models"


# --------------------------------------------------------------------------------------------
# Downloads: a local HTTP server on 127.0.0.1 stands for Keras' storage
# --------------------------------------------------------------------------------------------

WEIGHTS_BODY = bytes(range(256)) * 4096  # 1 MiB


class _Server:
    """Serves /good (WEIGHTS_BODY), /slow (the same, after 1.5 s), /big (3 MiB), else 404."""

    def __init__(self) -> None:
        import http.server

        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path == "/slow":
                    time.sleep(1.5)
                if self.path in ("/good", "/slow", "/big"):
                    body = WEIGHTS_BODY * (3 if self.path == "/big" else 1)
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    with contextlib.suppress(OSError):  # the client may give up (timeouts)
                        self.wfile.write(body)
                else:
                    self.send_error(404, "Not Found")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _spec(server: _Server, path: str, md5: str | None = None):
    return dataclasses.replace(
        RESNET50,
        file_name="test_weights.h5",
        origin=server.url(path),
        md5=md5 or hashlib.md5(WEIGHTS_BODY).hexdigest(),
        size_mb=1,
    )


def _leftovers() -> list[str]:
    return [p.name for p in keras_cache_dir().glob("*.part")]


def test_download_is_verified_and_written_atomically(clean_env, server, monkeypatch):
    spec = _spec(server, "/good")
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((Path(src), Path(dst)))
        assert Path(src).parent == Path(dst).parent and Path(src).name.endswith(".part")
        assert not Path(dst).exists()  # readers never see a partial file
        real_replace(src, dst)

    monkeypatch.setattr(pretrained.os, "replace", spy)
    path = pretrained._keras_download(spec)
    assert path == keras_cache_dir() / "test_weights.h5"
    assert path.read_bytes() == WEIGHTS_BODY
    assert len(renames) == 1 and _leftovers() == []
    # Cached and verified: no second request.
    assert pretrained._keras_download(spec) == path
    assert server.requests == ["/good"]


def test_bad_hash_is_refused_remembered_and_retried_later(clean_env, server, monkeypatch):
    spec = _spec(server, "/good", md5="0" * 32)
    with pytest.raises(WeightsUnavailableError, match="MD5") as first:
        pretrained._keras_download(spec)
    assert not (keras_cache_dir() / "test_weights.h5").exists() and _leftovers() == []
    # Remembered: the next rerun fails at once, without contacting the server.
    with pytest.raises(WeightsUnavailableError, match="tries again in about 5 min") as again:
        pretrained._keras_download(spec)
    assert str(first.value) in str(again.value)
    assert server.requests == ["/good"]
    # Once the memory has expired, it tries again.
    monkeypatch.setattr(pretrained, "FAILURE_MEMORY_SECONDS", 0.0)
    with pytest.raises(WeightsUnavailableError, match="MD5"):
        pretrained._keras_download(spec)
    assert server.requests == ["/good", "/good"]


def test_slow_server_times_out(clean_env, server, monkeypatch):
    monkeypatch.setattr(pretrained, "DOWNLOAD_TIMEOUT", 0.3)
    with pytest.raises(WeightsUnavailableError, match="timed out"):
        pretrained._keras_download(_spec(server, "/slow"))
    assert _leftovers() == []


def test_whole_download_deadline(clean_env, server, monkeypatch):
    monkeypatch.setattr(pretrained, "DOWNLOAD_SECONDS", -1)
    with pytest.raises(WeightsUnavailableError, match="took more than"):
        pretrained._keras_download(_spec(server, "/good"))
    assert _leftovers() == []


def test_missing_file_on_the_server(clean_env, server):
    with pytest.raises(WeightsUnavailableError, match="Not Found") as info:
        pretrained._keras_download(_spec(server, "/missing.h5"))
    assert "test_weights.h5" in str(info.value)


def test_corrupt_cached_file_is_replaced(clean_env, server):
    spec = _spec(server, "/good")
    path = keras_cache_dir() / spec.file_name
    path.parent.mkdir(parents=True)
    path.write_bytes(WEIGHTS_BODY[:1000])  # an interrupted earlier copy
    assert pretrained._keras_download(spec) == path
    assert path.read_bytes() == WEIGHTS_BODY
    assert server.requests == ["/good"]


def test_oversized_download_is_cut_off(clean_env, server):
    spec = _spec(server, "/big")  # 1 MB announced: at most 1.1 MB + 1 MiB accepted
    with pytest.raises(WeightsUnavailableError, match="sent more than 2,148,576 bytes"):
        pretrained._keras_download(spec)
    assert _leftovers() == []


# ---------------------------------------------------------------- one lock, a bounded wait


def _tiny_shared(name_spec=RESNET50) -> pretrained.PretrainedModel:
    """A shared-model wrapper around a tiny Keras classifier: (N, 8, 8, 3) → (N, 4)."""
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(2, 3, name="conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    return pretrained.PretrainedModel(
        model,
        name_spec,
        weights_source="test",
        weights_path=None,
        imagenet_verified=False,
        load_seconds=0.0,
    )


@contextlib.contextmanager
def _held_elsewhere(pm):
    """Another thread holds ``pm``'s lock until the block ends."""
    taken, release = threading.Event(), threading.Event()

    def hold():
        with pm.lock:
            taken.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    assert taken.wait(10)
    try:
        yield
    finally:
        release.set()
        t.join()


@pytest.mark.slow
def test_busy_model_raises_model_busy_error_after_the_wait(monkeypatch):
    from cnnlib.core.errors import CNNLabError, ModelBusyError

    monkeypatch.setenv("CNNLAB_MODEL_WAIT_SECONDS", "1")
    pm = _tiny_shared()
    x = np.zeros((1, 8, 8, 3), np.float32)
    with _held_elsewhere(pm):
        with pytest.raises(ModelBusyError) as info:
            pm.predict(x)
        with pytest.raises(ModelBusyError), pm.use(timeout=0.05):
            pass
    assert isinstance(info.value, CNNLabError)
    assert info.value.waited_seconds == 1.0
    message = str(info.value)
    assert message.startswith("ResNet50 is busy with other visitors' photos")
    assert "try again in a few seconds" in message
    # Free again: the same call works, and the lock is re-entrant within one thread.
    with pm.use(timeout=0.05):
        assert pm.predict(x).shape == (1, 4)


def test_a_waiting_call_runs_once_the_holder_lets_go():
    """The wait is bounded, not a refusal: a call made while busy runs when the lock frees."""
    pm = _tiny_shared()
    x = np.zeros((1, 8, 8, 3), np.float32)
    expected = pm.predict(x)
    results = []
    with _held_elsewhere(pm):
        waiter = threading.Thread(target=lambda: results.append(pm.predict(x)))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive() and not results  # still waiting for the lock
    waiter.join(30)
    np.testing.assert_allclose(results[0], expected)


@pytest.mark.slow
def test_saliency_features_and_grad_cam_use_the_same_lock():
    """Every caller of a shared model waits on its one lock: saliency, feature maps."""
    from cnnlib.core.errors import ModelBusyError
    from cnnlib.inspect import features, saliency

    pm = _tiny_shared(VGG19_NOTOP)
    x = np.zeros((8, 8, 3), np.float32)
    keras_model, guard = saliency.keras_model_and_lock(pm)
    assert keras_model is pm.model
    extractor, _ = features.open_model(pm.model, guard=pm.use(timeout=0.05))
    with _held_elsewhere(pm):
        with pytest.raises(ModelBusyError, match="VGG19"), guard:
            pass
        with pytest.raises(ModelBusyError, match="VGG19"):
            extractor.run(x)
        assert extractor.forward_passes == 0
    assert extractor.run(x).maps  # free again
    assert extractor.forward_passes == 1
