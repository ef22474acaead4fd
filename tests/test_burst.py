"""Webcam bursts ("hold to record"): ``cnnlib.uploads.burst`` parses the widget's untrusted
list of data URLs and decodes each frame in the decoding sandbox; every hostile burst of
``tests/hostile_bursts.py`` is refused whole or has its bad frames skipped, with a message."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from cnnlib.core.budgets import budgets
from cnnlib.core.errors import InvalidImageError
from cnnlib.uploads.burst import FRAME_PIXELS, decode_frames, parse_frames, parse_live_frame
from tests.hostile_bursts import BURST_TRICKS, LIVE_TRICKS, data_url, frame
from tests.hostile_corpus import REFUSED
from tests.uploads import encode, photo

#: Small caps, so the tricks stay small and quick.
LIMITS = dataclasses.replace(budgets(), burst_frames=12, burst_bytes=256 * 1024)


def _read(payload) -> tuple[list[Image.Image], list[str]]:
    frames = parse_frames(payload, max_frames=LIMITS.burst_frames, max_bytes=LIMITS.burst_bytes)
    decoded = decode_frames(frames, side=96, budgets=LIMITS)
    return list(decoded.images), list(decoded.problems)


@pytest.mark.parametrize("name", sorted(BURST_TRICKS))
def test_every_hostile_burst_is_refused_or_its_bad_frames_skipped(name):
    trick = BURST_TRICKS[name]
    payload = trick.make(LIMITS)
    if trick.expect.outcome == REFUSED:
        with pytest.raises(InvalidImageError) as err:
            _read(payload)
        message = str(err.value)
        assert any(w in message for w in trick.expect.words), message
        assert len(message) < 400 and "nothing was added" in message
        return
    images, problems = _read(payload)
    assert len(images) == trick.kept
    assert len(problems) == len(payload) - trick.kept
    for problem in problems:
        assert any(w in problem for w in trick.expect.words), problem
        assert "of the burst" in problem  # names the frame


def test_a_burst_comes_back_in_order_shrunk_to_the_side_and_equal_to_pillows_decoding():
    shots = [photo((160, 120)).rotate(10 * i) for i in range(5)]
    raws = [encode(s, "JPEG", quality=90) for s in shots]
    frames = parse_frames([data_url(r) for r in raws], max_frames=5, max_bytes=10**6)
    assert frames == raws
    decoded = decode_frames(frames, side=96, budgets=LIMITS)
    assert decoded.problems == ()
    assert [im.size for im in decoded.images] == [(96, 72)] * 5
    for raw, got in zip(raws, decoded.images, strict=True):
        import io

        want = Image.open(io.BytesIO(raw)).convert("RGB")
        want.thumbnail((96, 96), Image.Resampling.LANCZOS)
        assert np.abs(np.asarray(got, np.int16) - np.asarray(want, np.int16)).mean() < 2.0


def test_the_caps_are_exact():
    good = frame((8, 8))
    assert len(parse_frames([good] * 3, max_frames=3, max_bytes=10**6)) == 3
    with pytest.raises(InvalidImageError, match="4 photos"):
        parse_frames([good] * 4, max_frames=3, max_bytes=10**6)
    size = len(parse_frames([good], max_frames=1, max_bytes=10**6)[0])
    assert len(parse_frames([good] * 2, max_frames=9, max_bytes=2 * size)) == 2
    with pytest.raises(InvalidImageError, match="more than"):
        parse_frames([good] * 2, max_frames=9, max_bytes=2 * size - 1)
    # a frame at the pixel cap is decoded; one pixel row more is not
    side = int(FRAME_PIXELS**0.5)
    ok = decode_frames([encode(Image.new("RGB", (side, side)), "PNG")], side=32, budgets=LIMITS)
    assert len(ok.images) == 1
    over = encode(Image.new("RGB", (side, side + 1)), "PNG")
    assert "pixels" in decode_frames([over], side=32, budgets=LIMITS).problems[0]


@pytest.mark.parametrize("name", sorted(LIVE_TRICKS))
def test_every_hostile_live_frame_is_refused(name):
    payload, words = LIVE_TRICKS[name]
    with pytest.raises(InvalidImageError, match=words):
        parse_live_frame(payload, max_bytes=256 * 1024)


def test_a_live_frame_gives_its_number_and_bytes():
    raw = encode(photo(), "JPEG")
    assert parse_live_frame({"n": 7, "image": data_url(raw)}, max_bytes=10**6) == (7, raw)
