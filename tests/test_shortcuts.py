"""cnnlib.data.shortcuts: each cue changes exactly its pixels, deterministically, on the
chosen share of one class's images only."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlib.core.errors import InvalidArgumentError
from cnnlib.data.shortcuts import Cue, choose_stamped, cue_box, stamp, stamp_all, stamp_share

GREY = np.full((40, 60, 3), 100, np.uint8)


def test_corner_is_a_solid_square_at_the_top_left():
    out = stamp(GREY, Cue("corner", color=(0, 255, 0), size=0.25))  # 0.25 × 40 = 10 px
    assert np.all(out[:10, :10] == [0, 255, 0])
    mask = np.ones((40, 60), bool)
    mask[:10, :10] = False
    assert np.all(out[mask] == 100)
    assert np.all(GREY == 100)  # the input is untouched
    assert cue_box(Cue("corner", size=0.25), 40, 60) == (0, 0, 10, 10)


def test_border_is_a_frame_of_the_given_width():
    out = stamp(GREY, Cue("border", color=(255, 0, 0), size=0.1))  # 4 px
    frame = np.zeros((40, 60), bool)
    frame[:4], frame[-4:], frame[:, :4], frame[:, -4:] = True, True, True, True
    assert np.all(out[frame] == [255, 0, 0])
    assert np.all(out[~frame] == 100)


def test_watermark_is_text_at_the_bottom_right_and_deterministic():
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cue = Cue("watermark", color=(255, 255, 0), text="CNN")
    out = stamp(image, cue)
    np.testing.assert_array_equal(out, stamp(image, cue))
    top, left, bottom, right = cue_box(cue, 64, 64)
    assert top > 20 and left > 20 and (bottom, right) == (64, 64)
    changed = np.any(out != image, axis=-1)
    assert changed.sum() > 20  # the letters are there
    outside = changed.copy()
    outside[top:bottom, left:right] = False
    assert not outside.any()  # and nowhere else
    assert not np.array_equal(out, stamp(image, Cue("watermark", text="AI")))


def test_choose_stamped_is_the_share_of_one_class_and_seeded():
    labels = np.array([0] * 10 + [1] * 20 + [2] * 5)
    chosen = choose_stamped(labels, 1, 0.75, seed=3)
    assert len(chosen) == 15 and np.all(labels[chosen] == 1) and np.all(np.diff(chosen) > 0)
    np.testing.assert_array_equal(chosen, choose_stamped(labels, 1, 0.75, seed=3))
    assert not np.array_equal(chosen, choose_stamped(labels, 1, 0.75, seed=4))
    assert len(choose_stamped(labels, 2, 0.5)) == 2  # round(2.5) → 2 (banker's)
    assert len(choose_stamped(labels, 0, 1.0)) == 10 and len(choose_stamped(labels, 0, 0)) == 0


def test_stamp_share_changes_only_the_chosen_images():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    labels = np.array([0, 1] * 6)
    planted = stamp_share(images, labels, 1, 0.5, Cue("corner"), seed=0)
    assert len(planted.stamped) == 3 and np.all(labels[planted.stamped] == 1)
    for i in range(12):
        same = np.array_equal(planted.images[i], images[i])
        assert same == (i not in planted.stamped)
    assert np.all(planted.images[planted.stamped][:, :3, :3] == [255, 0, 0])
    everything = stamp_all(images, Cue("corner"))
    assert np.all(everything[:, :3, :3] == [255, 0, 0])


def test_bad_cues_and_inputs():
    with pytest.raises(InvalidArgumentError):
        Cue("sticker")
    with pytest.raises(InvalidArgumentError):
        Cue("corner", color=(300, 0, 0))
    with pytest.raises(InvalidArgumentError):
        Cue("watermark", text="x" * 40)
    with pytest.raises(InvalidArgumentError):
        Cue("watermark", text="\x1b[31m")
    with pytest.raises(InvalidArgumentError):
        stamp(GREY.astype(np.float32), Cue())
    with pytest.raises(InvalidArgumentError):
        choose_stamped(np.array([0, 0]), 1, 0.5)
    with pytest.raises(InvalidArgumentError):
        choose_stamped(np.array([0, 1]), 1, 1.5)
