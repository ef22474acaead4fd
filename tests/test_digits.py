"""cnnlib.data.digits: real MNIST digits re-drawn dark-on-light on a bigger page come back as MNIST.

The round trip: take a real test digit, invert it to dark ink on light paper, enlarge it 2–6×,
paste it at a random place on a larger light canvas, preprocess → the result must match the
original digit, and a small convnet trained on other real digits must read it correctly.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnlib.core.errors import InvalidImageError
from cnnlib.data.digits import BOX_SIZE, FIELD_SIZE, prepare_digit, preprocess_digit

#: Digits 0..N-1 of the test file are re-rendered; the tiny model trains on others.
RENDERED = 200


@pytest.fixture(scope="module")
def mnist(mnist_test_set):
    return mnist_test_set


def render_on_paper(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """An MNIST digit as dark ink on light paper, enlarged 2–6×, somewhere on a bigger page."""
    scale = rng.uniform(2.0, 6.0)
    side = round(FIELD_SIZE * scale)
    ink = Image.fromarray(255 - digit).resize((side, side), Image.Resampling.BICUBIC)
    page = Image.new("L", (320, 260), 235)  # off-white paper
    page.paste(ink, (int(rng.integers(0, 320 - side)), int(rng.integers(0, 260 - side))))
    return page


def best_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of ``a`` with ``b`` moved by at most one pixel (centring rounds to pixels)."""
    best = -1.0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            moved = np.roll(np.roll(b, dy, axis=0), dx, axis=1)
            best = max(best, float(np.corrcoef(a.ravel(), moved.ravel())[0, 1]))
    return best


@pytest.fixture(scope="module")
def rendered(mnist):
    x, y = mnist
    rng = np.random.default_rng(7)
    pages = [render_on_paper(x[i], rng) for i in range(RENDERED)]
    return pages, np.stack([prepare_digit(p).pixels for p in pages]), y[:RENDERED]


@pytest.fixture(scope="module")
def tiny_model(mnist):
    """A small convnet trained on 3,000 other real test digits (Keras directly, ~seconds);
    like the app's models it owns its rescaling: it reads raw pixels 0…255."""
    keras = pytest.importorskip("keras")
    x, y = mnist
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    train = slice(2000, 5000)
    model.fit(x[train, :, :, None], y[train], epochs=4, batch_size=64, verbose=0)
    return model


@pytest.mark.slow
def test_output_is_a_28x28_field_of_raw_pixels(rendered):
    pages, digits, _ = rendered
    assert digits.shape == (RENDERED, 28, 28) and digits.dtype == np.float32
    assert digits.min() >= 0.0 and digits.max() == pytest.approx(255.0)  # as MNIST's uint8
    prepared = prepare_digit(pages[0])  # ``digit`` is the same field in [0, 1] for display
    np.testing.assert_allclose(prepared.digit * 255.0, prepared.pixels, rtol=1e-6)
    assert preprocess_digit(pages[0]).max() == pytest.approx(1.0)
    for d in digits:
        rows = np.flatnonzero(d.max(axis=1) > 0)
        cols = np.flatnonzero(d.max(axis=0) > 0)
        height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        # Scaled to fit 20×20 with the longer side at 20 (±1 for resampling edges).
        assert max(height, width) in (BOX_SIZE - 1, BOX_SIZE, BOX_SIZE + 1)
        assert min(height, width) <= BOX_SIZE + 1


def test_centre_of_mass_lands_on_mnist_centre(rendered):
    _, digits, _ = rendered
    rows, cols = np.indices((28, 28))
    for d in digits:
        com = ((rows * d).sum() / d.sum(), (cols * d).sum() / d.sum())
        assert abs(com[0] - 14.0) <= 0.5 + 1e-6 and abs(com[1] - 14.0) <= 0.5 + 1e-6


def test_rendered_digits_are_recovered(mnist, rendered):
    x, _ = mnist
    _, digits, _ = rendered
    correlations = np.array([best_correlation(digits[i], x[i] / 255.0) for i in range(RENDERED)])
    # Measured: mean 0.977, every digit ≥ 0.86.
    assert correlations.mean() >= 0.95
    assert np.mean(correlations >= 0.85) >= 0.97


@pytest.mark.slow
def test_a_model_trained_on_mnist_reads_the_recovered_digits(mnist, rendered, tiny_model):
    x, _ = mnist
    _, digits, labels = rendered
    original = tiny_model.predict(x[:RENDERED, :, :, None], verbose=0).argmax(axis=1)
    recovered = tiny_model.predict(digits[:, :, :, None], verbose=0).argmax(axis=1)
    original_accuracy = float(np.mean(original == labels))
    recovered_accuracy = float(np.mean(recovered == labels))
    # Measured: 94 % on the originals, 95.5 % on the recovered digits.
    assert original_accuracy >= 0.88  # the model itself is a real reader
    assert recovered_accuracy >= 0.90
    assert recovered_accuracy >= original_accuracy - 0.04


def test_polarity_is_detected(mnist):
    x, _ = mnist
    digit = x[0]
    light_on_dark = np.zeros((200, 200), dtype=np.uint8)
    light_on_dark[40:152, 60:172] = np.asarray(Image.fromarray(digit).resize((112, 112)))
    dark_on_light = 255 - light_on_dark
    a, b = prepare_digit(light_on_dark), prepare_digit(dark_on_light)
    assert not a.inverted and b.inverted
    np.testing.assert_allclose(a.digit, b.digit, atol=0.02)


def test_canvas_rgba_with_transparent_background_and_black_strokes():
    """A drawing canvas without background colour: black strokes, transparent elsewhere."""
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[60:220, 130:150] = (0, 0, 0, 255)  # a vertical stroke: a "1"
    digit = preprocess_digit(rgba)
    assert digit.max() == pytest.approx(1.0)
    rows = np.flatnonzero(digit.max(axis=1) > 0)
    cols = np.flatnonzero(digit.max(axis=0) > 0)
    assert rows[-1] - rows[0] + 1 == BOX_SIZE  # tall: the height is scaled to 20
    assert cols[-1] - cols[0] + 1 <= 4  # 20/160 of 20 pixels wide ≈ 2.5
    assert 13 <= cols.mean() <= 15


def test_canvas_rgba_white_strokes_on_black_and_pil_input_agree():
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[100:120, 40:240, :3] = 255  # a horizontal bar: aspect kept, width scaled to 20
    from_array = preprocess_digit(rgba)
    from_pil = preprocess_digit(Image.fromarray(rgba, mode="RGBA"))
    np.testing.assert_allclose(from_array, from_pil, atol=1e-6)
    rows = np.flatnonzero(from_array.max(axis=1) > 0)
    cols = np.flatnonzero(from_array.max(axis=0) > 0)
    assert cols[-1] - cols[0] + 1 == BOX_SIZE and rows[-1] - rows[0] + 1 <= 3


def test_noisy_grey_photo_of_a_digit(mnist):
    """Uneven grey paper with noise, a real digit in dark ink, as an RGB photo."""
    x, _ = mnist
    rng = np.random.default_rng(1)
    paper = 170 + 30 * np.linspace(0, 1, 400)[None, :] + rng.normal(0, 6, (300, 400))
    ink = np.asarray(Image.fromarray(x[3]).resize((140, 140), Image.Resampling.BICUBIC)) / 255.0
    photo = paper.copy()
    photo[80:220, 150:290] = photo[80:220, 150:290] * (1 - 0.8 * ink)
    rgb = np.repeat(np.clip(photo, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    digit = preprocess_digit(Image.fromarray(rgb))
    assert best_correlation(digit, x[3] / 255.0) >= 0.85


@pytest.mark.parametrize(
    "blank",
    [
        np.full((280, 280), 255, dtype=np.uint8),  # white page
        np.zeros((280, 280), dtype=np.uint8),  # black canvas, nothing drawn
        np.zeros((280, 280, 4), dtype=np.uint8),  # transparent canvas
        np.full((100, 120, 3), 128, dtype=np.uint8),  # flat grey photo
    ],
    ids=["white", "black", "transparent", "grey"],
)
def test_an_empty_canvas_asks_for_a_digit(blank):
    with pytest.raises(InvalidImageError, match="draw a digit first"):
        preprocess_digit(blank)


def test_nonsense_arrays_are_refused_with_a_message():
    with pytest.raises(InvalidImageError, match="shape"):
        preprocess_digit(np.zeros((4, 4, 7)))
    with pytest.raises(InvalidImageError):
        preprocess_digit(np.array([["a"]]))
