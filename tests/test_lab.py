"""cnnlib.conv.lab: URL settings, output-size explanations, one cell by hand, the small grid,
the filter bank and drawing helpers — checked against cnnlib.conv.ops and TensorFlow."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cnnlib.conv import kernels, lab
from cnnlib.conv import ops as conv
from cnnlib.conv.ops import ConvGeometry
from cnnlib.core.errors import InvalidArgumentError
from cnnlib.data import samples
from tests.hostile_kernel_cells import HOSTILE_CELLS
from tests.markdown import outside_code_spans

IMAGES = samples.sample_names()


# ------------------------------------------------------------------------------ settings


def test_default_settings_round_trip():
    # Streamlit leaves a bound widget's default value out of the URL.
    assert lab.settings_to_query(lab.DEFAULTS) == {}
    settings, notices = lab.settings_from_query({}, IMAGES)
    assert settings == lab.DEFAULTS and notices == []


def test_query_holds_streamlit_widget_values():
    settings = lab.LabSettings(
        image="moon", grayscale=False, geometry=ConvGeometry(padding=3, stride=2, dilation=3)
    )
    assert lab.settings_to_query(settings) == {
        "lab_sample": "moon",
        "lab_gray": "false",
        "lab_padding": "explicit",
        "lab_p": "3",
        "lab_stride": "2",
        "lab_dilation": "3",
    }


@pytest.mark.parametrize(
    "settings",
    [
        lab.LabSettings(
            image="moon", grayscale=False, kernel_name="sobel y", geometry=ConvGeometry("same")
        ),
        lab.LabSettings(geometry=ConvGeometry(3, 4, 3), kernel_name="gaussian blur"),
        lab.LabSettings(geometry=ConvGeometry(0), kernel_name="box blur"),
        lab.LabSettings(
            kernel_name=lab.CUSTOM,
            kernel=lab.kernel_tuple(np.array([[0.1, -2.5], [1 / 3, 7]], np.float32)),
            geometry=ConvGeometry("full", stride=2),
        ),
    ],
)
def test_settings_round_trip_through_the_url(settings):
    params = lab.settings_to_query(settings)
    back, notices = lab.settings_from_query(params, IMAGES)
    assert notices == []
    assert back == settings
    np.testing.assert_array_equal(back.kernel_array, settings.kernel_array)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"lab_stride": "9"}, "lab_stride"),
        ({"lab_stride": "two"}, "lab_stride"),
        ({"lab_stride": " 2"}, "lab_stride"),  # Streamlit would drop it: so do we
        ({"lab_dilation": "0"}, "lab_dilation"),
        ({"lab_padding": "half"}, "lab_padding"),
        ({"lab_padding": "3"}, "lab_padding"),
        ({"lab_padding": "explicit", "lab_p": "-1"}, "lab_p"),
        ({"lab_padding": "explicit", "lab_p": "11"}, "lab_p"),
        ({"lab_gray": "maybe"}, "lab_gray"),
        ({"lab_gray": "0"}, "lab_gray"),
        ({"lab_sample": "no such photo"}, "lab_sample"),
        ({"lab_preset": "blurry"}, "lab_preset"),
        ({"lab_preset": "custom"}, "lab_preset"),
        ({"lab_preset": "custom", "lab_k": "1,2;3"}, "lab_k"),
        ({"lab_preset": "custom", "lab_k": "1,x;3,4"}, "lab_k"),
        ({"lab_preset": "custom", "lab_k": "nan,1;1,1"}, "lab_k"),
        ({"lab_preset": "custom", "lab_k": ";".join([",".join(["1"] * 8)] * 8)}, "lab_k"),
        ({"lab_preset": "custom", "lab_k": "1e9"}, "lab_k"),
    ],
)
def test_bad_url_values_fall_back_with_a_notice_naming_them(params, name):
    settings, notices = lab.settings_from_query(params, IMAGES)
    assert len(notices) == 1
    assert f"**{name}**" in notices[0] and "default" in notices[0]
    if name == "lab_p":  # explicit padding stays, with the default p
        assert settings.geometry == ConvGeometry(lab.DEFAULT_P)
    else:
        assert settings == lab.DEFAULTS


def test_hostile_url_values_are_shown_inert_and_short():
    link = "[click me](https://evil.example) <script>alert(1)</script>"
    _, notices = lab.settings_from_query({"lab_sample": link, "lab_preset": "x" * 5000}, IMAGES)
    assert len(notices) == 2
    # Shown verbatim in a code span (cut to 60 characters): nothing of it is markdown.
    assert "`[click me](https://evil.example) <script>alert(1)</script>`" in notices[0]
    bare = outside_code_spans(notices[0])
    assert "](" not in bare and "<script>" not in bare and "evil" not in bare
    assert len(notices[1]) < 400 and "…" in notices[1]


def test_a_long_kernel_text_is_refused_by_its_length_before_it_is_parsed():
    # Parsed, "1" * 1001 would be one number too big to be finite: the length speaks first.
    with pytest.raises(InvalidArgumentError, match="1,001 characters long"):
        lab.kernel_from_text("1" * 1001)
    _, notices = lab.settings_from_query(
        {"lab_preset": lab.CUSTOM, "lab_k": "0," * 500_000}, IMAGES
    )
    assert len(notices) == 1 and "1,000,000 characters long" in notices[0]
    widest = ";".join([",".join(["-1.2345678e-38"] * 7)] * 7)  # the longest 7×7 kernel text
    assert len(widest) <= lab.MAX_KERNEL_TEXT and lab.kernel_from_text(widest).shape == (7, 7)


def test_good_values_survive_beside_bad_ones():
    settings, notices = lab.settings_from_query(
        {
            "lab_stride": "3",
            "lab_dilation": "7",
            "lab_preset": "emboss",
            "extra": "ignored",
            "lab_gray": ["false"],
        },
        IMAGES,
    )
    g = settings.geometry
    assert (g.stride, g.dilation, settings.kernel_name) == (3, 1, "emboss")
    assert settings.grayscale is False
    assert len(notices) == 1 and "**lab_dilation**" in notices[0] and "`7`" in notices[0]


def test_link_kernel_name():
    assert lab.link_kernel_name("laplacian", kernels.preset("laplacian")) == "laplacian"
    edited = kernels.preset("laplacian").copy()
    edited[0, 0] = 5.0
    assert lab.link_kernel_name("laplacian", edited) == lab.CUSTOM
    assert lab.link_kernel_name(lab.CUSTOM, kernels.preset("emboss")) == lab.CUSTOM


def test_kernel_text():
    k = np.array([[1 / 9, -2.0, 0.0], [3.5, 1e-3, -0.25]], np.float32)
    assert lab.kernel_to_text(np.array([[1, 0], [-2, 0.5]])) == "1,0;-2,0.5"
    np.testing.assert_array_equal(lab.kernel_from_text(lab.kernel_to_text(k)), k)
    with pytest.raises(InvalidArgumentError, match="same number"):
        lab.kernel_from_text("1,2;3")
    with pytest.raises(InvalidArgumentError, match="1 to 7"):
        lab.check_kernel(np.ones((1, 8)))
    assert lab.matching_preset(kernels.preset("laplacian")) == "laplacian"
    assert lab.matching_preset(np.ones((2, 2))) is None


# --------------------------------------------------------------------------- output size


@pytest.mark.parametrize(
    ("n", "k", "padding", "stride", "dilation"),
    list(
        itertools.product((5, 8, 28), (1, 2, 3, 5), ("valid", "same", "full", 2), (1, 2, 3), (1, 2))
    ),
)
def test_axis_size_agrees_with_conv(n, k, padding, stride, dilation):
    try:
        out = conv.output_size(n, k, padding=padding, stride=stride, dilation=dilation)
    except InvalidArgumentError:
        with pytest.raises(InvalidArgumentError):
            lab.axis_size("height", n, k, ConvGeometry(padding, stride, dilation))
        return
    size = lab.axis_size("height", n, k, ConvGeometry(padding, stride, dilation))
    assert size.out == out
    assert size.numerator // stride + 1 == out
    assert (size.before, size.after) == conv.pad_amounts(
        n, k, padding=padding, stride=stride, dilation=dilation
    )
    assert size.formula_latex().endswith(rf"\mathbf{{{out}}} \end{{aligned}}")
    # Dropped cells: exactly the padded cells after the last kernel position.
    assert size.dropped == size.padded - ((out - 1) * stride + size.k_eff)
    dropped_image = size.dropped_image_cells()
    assert len(dropped_image) <= size.dropped
    assert all(0 <= i < n for i in dropped_image)
    assert (size.dropped_text() is None) == (size.dropped == 0)
    assert (size.same_rule_latex() is None) == (padding != "same")


def test_formula_and_dropped_text_show_the_numbers():
    h, w = lab.output_sizes((7, 28), (3, 3), ConvGeometry("valid", 2))
    assert (h.out, w.out) == (3, 13)
    assert r"\left\lfloor \frac{7 + 0 + 0 - 1\cdot(3-1) - 1}{2} \right\rfloor + 1" in (
        h.formula_latex()
    )
    assert h.dropped == 0
    assert w.dropped == 1
    text = w.dropped_text()
    assert "image column 27" in text and "never read" in text
    same = lab.axis_size("width", 6, 4, ConvGeometry("same"))
    assert (same.before, same.after) == (1, 2)
    assert r"\lceil \frac{6}{1}" in same.same_rule_latex().replace(r"\left", "")


# -------------------------------------------------------------------------- one cell


@pytest.mark.parametrize(
    ("padding", "stride", "dilation", "channels", "ksize"),
    [
        ("valid", 1, 1, 1, (3, 3)),
        ("same", 2, 1, 3, (3, 3)),
        ("full", 1, 2, 1, (2, 4)),
        (2, 3, 2, 3, (5, 5)),
        ("same", 2, 3, 1, (4, 3)),
    ],
)
def test_explain_cell_adds_up_to_conv2d(padding, stride, dilation, channels, ksize):
    rng = np.random.default_rng(5)
    x = rng.random((11, 13, channels), dtype=np.float32)
    x = x[:, :, 0] if channels == 1 else x
    k = rng.standard_normal(ksize).astype(np.float32)
    y = conv.conv2d(x, k, padding=padding, stride=stride, dilation=dilation)
    for row, col in itertools.product(range(y.shape[0]), range(y.shape[1])):
        e = lab.explain_cell(x, k, ConvGeometry(padding, stride, dilation), row=row, col=col)
        assert e.products.shape == (*ksize, channels)
        assert e.total == pytest.approx(float(y[row, col]), rel=1e-4, abs=1e-5)
        assert np.all(e.patch[~e.inside] == 0)
        assert e.channel_sums.sum() == pytest.approx(e.total)


def test_explain_cell_rejects_positions_outside():
    with pytest.raises(InvalidArgumentError, match="outside"):
        lab.explain_cell(np.ones((5, 5)), np.ones((3, 3)), ConvGeometry(), row=3, col=0)


# --------------------------------------------------------------------------- small grid


@pytest.mark.parametrize(
    ("n", "k", "padding", "stride", "dilation"),
    [
        (5, 3, "valid", 1, 1),
        (5, 3, "same", 2, 1),
        (5, 3, 1, 1, 2),
        (6, 2, "full", 3, 1),
        (7, 3, "same", 2, 3),
    ],
)
def test_small_grid_feeds_match_the_convolution(n, k, padding, stride, dilation):
    g = lab.small_grid(n, k, ConvGeometry(padding, stride, dilation))
    assert g.out == conv.output_size(n, k, padding=padding, stride=stride, dilation=dilation)
    rng = np.random.default_rng(1)
    x = rng.random((n, n), dtype=np.float32)
    w = rng.standard_normal((k, k)).astype(np.float32)
    y = conv.conv2d(x, w, padding=padding, stride=stride, dilation=dilation)
    xp = np.pad(x, ((g.before, g.after), (g.before, g.after)))
    for p in range(g.positions):
        r, c = g.output_cell(p)
        feeds = g.feeds(p)
        value = sum(w.flat[t] * xp[i, j] for t, (i, j) in enumerate(feeds))
        assert value == pytest.approx(float(y[r, c]), rel=1e-4, abs=1e-5)
        assert all(xp[i, j] == 0 for i, j in feeds if g.is_padding(i, j))
        assert g.equation(p).startswith(f"y_{{{r},{c}}} = ")
        kinds, labels = g.cells(p)
        fed = [(i, j) for i, j in zip(*np.nonzero(kinds >= lab.GRID_FED_PADDING), strict=True)]
        assert sorted(fed) == sorted(set(feeds))
        for i, j in feeds:
            want = lab.GRID_FED_PADDING if g.is_padding(i, j) else lab.GRID_FED_INPUT
            assert kinds[i, j] == want and labels[i, j].startswith("w")
        image = kinds == lab.GRID_INPUT
        assert all(
            labels[i, j] == f"x{i - g.before},{j - g.before}"
            for i, j in zip(*np.nonzero(image), strict=True)
        )
        assert np.all(labels[kinds == lab.GRID_PADDING] == "0")
        assert (kinds != lab.GRID_PADDING).sum() - (kinds == lab.GRID_FED_PADDING).sum() == n * n
        done = g.progress(p)
        assert done[r, c] == 2 and (done == 1).sum() == p


def test_small_grid_that_does_not_fit():
    with pytest.raises(InvalidArgumentError, match="Make the grid bigger"):
        lab.small_grid(5, 3, ConvGeometry("valid", 1, 3))
    with pytest.raises(InvalidArgumentError, match="Step must be"):
        lab.small_grid(5, 3, ConvGeometry()).feeds(9)


# -------------------------------------------------------------------------- filter bank


def test_filter_bank_is_one_conv2d_layer():
    names = ["vertical edges", "gaussian blur", "laplacian"]
    k4 = lab.filter_bank([kernels.preset(n) for n in names], 3)
    assert k4.shape == (5, 5, 3, 3) and k4.dtype == np.float32
    x = np.random.default_rng(2).random((12, 10, 3), dtype=np.float32)
    maps = conv.conv2d(x, k4, padding="same", stride=2)
    assert maps.shape == (6, 5, 3)
    for i, name in enumerate(names):
        one = conv.conv2d(
            x, kernels.resize_kernel(kernels.preset(name), (5, 5)), padding="same", stride=2
        )
        np.testing.assert_allclose(maps[:, :, i], one, rtol=1e-5, atol=1e-6)
    assert lab.conv_layer_params(5, 5, 3, 3) == (225, 3)
    with pytest.raises(InvalidArgumentError, match="at least one"):
        lab.filter_bank([], 1)


def test_keras_layers_code():
    code, note = lab.keras_layers(4, (3, 3), (28, 28), ConvGeometry("same"))
    assert code == (
        'keras.layers.Conv2D(4, (3, 3), strides=1, padding="same", dilation_rate=1, '
        "use_bias=False),"
    )
    assert note is None
    code, note = lab.keras_layers(2, (3, 5), (9, 9), ConvGeometry("full", 2, 2))
    assert code.startswith("keras.layers.ZeroPadding2D(((4, 4), (8, 8))),")
    assert "Keras' Conv2D layer refuses" in note


def test_display_map_keeps_the_strongest_values():
    y = np.zeros((10, 7), np.float32)
    y[3, 4], y[9, 6] = -5.0, 2.0
    view, f = lab.display_map(y, 4)
    assert f == 3 and view.shape == (4, 3)
    assert view.min() == -5.0 and view.max() == 2.0
    same, f1 = lab.display_map(y, 10)
    assert f1 == 1 and same is y
    img = np.ones((8, 8, 3), np.float32)
    mean, f2 = lab.display_map(img, 4, how="mean")
    assert f2 == 2 and mean.shape == (4, 4, 3) and np.allclose(mean, 1.0)
    assert lab.symmetric_limit(np.zeros(3)) == 1.0
    assert lab.symmetric_limit(np.array([-3.0, 2.0])) == 3.0


def test_tensorflow_check_agrees():
    x = np.random.default_rng(4).random((20, 17, 3), dtype=np.float32)
    check = lab.tensorflow_check(x, kernels.preset("sobel x"), ConvGeometry("full", 2, 2))
    expected = tuple(conv.output_size(n, 3, padding="full", stride=2, dilation=2) for n in (20, 17))
    assert check.ours_shape == check.tf_shape == (*expected, 1)
    assert check.max_abs_diff < 1e-4 * max(1.0, check.max_abs_value)


def test_agrees_tolerates_float32_rounding_only():
    assert lab.agrees(100.0, 100.0 + 1e-3)  # 1e-5 relative
    assert not lab.agrees(100.0, 100.1)
    assert lab.agrees(0.0, 5e-5) and not lab.agrees(0.0, 5e-4)  # absolute near 0


def test_zoom_window_pads_with_zeros_outside_the_image():
    x = np.arange(1, 26, dtype=np.float32).reshape(5, 5)
    g = ConvGeometry("same")
    e = lab.explain_cell(x, np.ones((3, 3)), g, row=0, col=4)  # taps rows -1..1, cols 3..5
    z = lab.zoom_window(x, e, margin=2)
    assert (z.top, z.left, z.bottom, z.right) == (-3, 1, 3, 7)
    assert z.crop.shape == (7, 7)
    np.testing.assert_array_equal(z.crop[3:, :4], x[:4, 1:])
    assert z.crop[:3].sum() == 0 and z.crop[:, 4:].sum() == 0
    rgb = np.random.default_rng(0).random((6, 6, 3), dtype=np.float32)
    e = lab.explain_cell(rgb, np.ones((2, 2)), ConvGeometry(), row=2, col=2)
    z = lab.zoom_window(rgb, e, margin=1)
    np.testing.assert_array_equal(z.crop, rgb[1:5, 1:5])


# ------------------------------------------------------------------ transposed convolution


@pytest.mark.parametrize(
    ("i", "k", "s", "padding"),
    [(4, 3, 2, 1), (3, 3, 2, "same"), (2, 1, 3, "same"), (6, 5, 3, "valid"), (5, 4, 2, 0)],
)
def test_transpose_formula_fills_in_the_numbers(i, k, s, padding):
    """The formula's result is tf.nn.conv2d_transpose's output length (through
    conv2d_transpose, tested against TensorFlow in test_conv_transpose.py), and the filled-in
    line evaluates to it."""
    latex = lab.transpose_formula_latex(i, k, s, padding)
    o = conv.conv2d_transpose(np.ones((i, i)), np.ones((k, k)), stride=s, padding=padding)
    assert rf"\mathbf{{{o.shape[0]}}}" in latex
    before, after = conv.transpose_pad_amounts(i, k, stride=s, padding=padding)
    assert (i - 1) * s + k - before - after == o.shape[0]
    if padding == "same":
        assert o.shape[0] == i * s and rf"{i}\cdot{s} = " in latex
    else:
        assert rf"({i}-1)\cdot{s} + {k} - 2\cdot{before} = " in latex


def test_transpose_formula_refuses_a_crop_that_leaves_nothing():
    with pytest.raises(InvalidArgumentError, match="leaves nothing"):
        lab.transpose_formula_latex(2, 1, 1, 1)


# -------------------------------------------------------------------------- compute size


def test_downscale_choices_offer_original_size_only_when_it_fits():
    sides = [128, 256, 512, 1024]
    big = (8000, 5000)  # 40 Mpx
    choices = lab.downscale_choices(big, sides, 4_000_000)
    assert 0 not in choices and choices == sides
    assert lab.downscale_choices((2000, 2000), sides, 4_000_000) == [*sides, 0]
    assert lab.downscale_choices((300, 200), sides, 4_000_000) == [128, 256, 0]
    # A lower budget removes the sides that would exceed it.
    assert lab.downscale_choices(big, sides, 300_000) == [128, 256, 512]
    only = lab.downscale_choices(big, sides, 5_000)
    assert len(only) == 1 and only[0] < 128


@pytest.mark.parametrize("size", [(8000, 5000), (5000, 8000), (40_000, 1000), (2001, 1999)])
@pytest.mark.parametrize("side", [0, 256, 1024, 4096])
def test_compute_side_never_exceeds_the_pixel_budget(size, side):
    cap = 4_000_000
    chosen = lab.compute_side(size, side, cap)
    # The size images.downscale makes (it rounds the shorter side).
    w, h = size
    scale = min(1.0, chosen / max(w, h))
    out = (max(1, round(w * scale)), max(1, round(h * scale)))
    assert out[0] * out[1] <= cap
    if side:
        assert chosen <= side
    if w * h <= cap and side == 0:
        assert chosen == max(size)


def test_kernel_cells_are_parsed_as_the_learner_typed_them():
    cells = [["1", " -2.5 ", ""], ["1e-3", "0", "+4"]]  # spaces trimmed, empty counts as 0
    np.testing.assert_array_equal(
        lab.kernel_from_cells(cells, (2, 3)), np.array([[1, -2.5, 0], [1e-3, 0, 4]], np.float32)
    )


@pytest.mark.parametrize("name", sorted(HOSTILE_CELLS))
def test_hostile_kernel_cells_get_a_short_plain_message(name):
    payload, word = HOSTILE_CELLS[name]
    with pytest.raises(InvalidArgumentError) as err:
        lab.kernel_from_cells(payload, (3, 3))
    message = str(err.value)
    assert word in message and len(message) < 200, message
    assert "](" not in outside_code_spans(message) and "<b>" not in outside_code_spans(message)
