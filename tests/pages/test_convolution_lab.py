"""The Convolution lab page under AppTest: every preset, every padding, stride and dilation,
uploads (good and bad), URL parameters (good and bad), the kernel buttons, the small grid
and the TensorFlow check. Never an exception, and the shapes shown equal ``output_size``.

AppTest drives ``st.file_uploader`` directly (``FileUploader.set_value``), so uploads are
tested here as well as through the real file chooser in tests/e2e.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnnlib.conv import kernels, lab, quiz
from cnnlib.conv import ops as conv
from cnnlib.conv.ops import ConvGeometry
from cnnlib.data import images, samples
from tests.markdown import outside_code_spans
from tests.pages.apptest import component_data, image_alts, open_page, run_checked, values
from tests.uploads import bad_uploads, encode, odd_but_valid_uploads, photo

SHAPE = re.compile(r"→ output \*\*(\d+)×(\d+)\*\*")
TIMEOUT = 60


def _run(target) -> AppTest:
    return run_checked(target, TIMEOUT)


#: Sections 5–8's tabs (the page's ``FURTHER``): only the open one is computed.
GRID, BANK, TRANSPOSED, QUIZ = (
    "5 · Small grid",
    "6 · Filter bank",
    "7 · Transposed convolution",
    "8 · Quiz",
)


def _lab(tab: str | None = None, **query: str) -> AppTest:
    """The page opened from a link with section tab ``tab`` open (the first by default);
    ``query`` by setting name (``lab.QUERY_KEYS``)."""
    params = {lab.QUERY_KEYS[name]: value for name, value in query.items()}
    session = {"lab_further": tab} if tab else None
    return open_page("convolution_lab", timeout=TIMEOUT, query=params, session=session)


def _link(at: AppTest) -> dict[str, str]:
    """The link parameters the page shows (what the URL holds; under AppTest no browser
    writes a changed widget's value to the URL, tests/e2e checks that part): the page's first
    line of inline code (``ui.code_text``), below the settings."""
    shown = next(
        m.value for m in at.markdown if m.value.startswith("`?") or m.value == "`(defaults)`"
    )
    shown = shown.strip("`")
    if shown == "(defaults)":
        return {}
    return dict(parse_qsl(shown.removeprefix("?"), strict_parsing=True))


def _param(at: AppTest, name: str) -> str | None:
    """The link's value of setting ``name`` (None when absent: Streamlit leaves defaults out)."""
    return _link(at).get(lab.QUERY_KEYS[name])


def _shown(at: AppTest) -> tuple[int, int]:
    texts = [m.value for m in at.markdown if SHAPE.search(m.value)]
    assert len(texts) == 1, [m.value for m in at.markdown]
    h, w = SHAPE.search(texts[0]).groups()
    return int(h), int(w)


def _input_array(name: str, side: int = 256, gray: bool = True) -> np.ndarray:
    img = samples.load_sample(name)
    return images.to_array(images.downscale(img, side) if side else img, grayscale=gray)


def _expected(x: np.ndarray, ksize, padding, stride: int, dilation: int) -> tuple[int, int]:
    return tuple(
        conv.output_size(n, k, padding=padding, stride=stride, dilation=dilation)
        for n, k in zip(x.shape[:2], ksize, strict=True)
    )


def _latex(at: AppTest) -> list[str]:
    return [e.value.strip("$\n") for e in at.latex]


def _editor(at: AppTest) -> np.ndarray:
    """The weights the kernel editor shows (as it was drawn in the last run)."""
    (data,) = component_data(at, "cnnlab.kernel_grid")
    return np.array(data["values"], dtype=np.float64)


def _errors(at: AppTest) -> list[str]:
    return values(at.error)


def test_default_page():
    at = _lab()
    x = _input_array(lab.DEFAULTS.image)
    assert _shown(at) == _expected(x, (3, 3), "valid", 1, 1)
    assert _errors(at) == [] and not at.warning
    assert at.query_params == lab.settings_to_query(lab.DEFAULTS) == _link(at) == {}
    assert any("Sum of the 9 products" in m.value and "equal" in m.value for m in at.markdown)
    # Sections 5–8 are tabs: the small grid is open, the others are not computed.
    assert at.session_state["lab_further"] == GRID
    assert any(e.label == "Grid size n×n" for e in at.selectbox)
    assert not any("keras.layers.Conv2D" in m.value for m in at.markdown)
    assert not any(m.value.startswith("**Question:**") for m in at.markdown)
    # The filter bank: 4 default 3×3 kernels as one (H′, W′, 4) layer.
    at.session_state["lab_further"] = BANK
    _run(at)
    h, w = _shown(at)
    assert any(f"into **({h}, {w}, 4)**" in m.value for m in at.markdown)
    assert any("`keras.layers.Conv2D(4, (3, 3)" in m.value for m in at.markdown)


RANGE = re.compile(r": (\d+)×(\d+), values from (\S+) to (\S+)\.")


def _alt_facts(alt: str) -> tuple[tuple[int, int], float, float]:
    """(shape, lowest, highest) that an alt text states ("…: 168×254, values from a to b.")."""
    match = RANGE.search(alt)
    assert match, alt
    h, w, lo, hi = match.groups()
    return (int(h), int(w)), float(lo), float(hi)


def _assert_states(alt: str, y: np.ndarray) -> None:
    """``alt`` states ``y``'s shape and value range (to the 4 significant digits shown)."""
    shape, lo, hi = _alt_facts(alt)
    assert shape == y.shape, alt
    np.testing.assert_allclose([lo, hi], [y.min(), y.max()], rtol=1e-3, atol=1e-6, err_msg=alt)


@pytest.mark.slow
@pytest.mark.parametrize("stride", [1, 2])
def test_alt_texts_state_the_computed_shapes_and_ranges(stride):
    """Every image of the lab has alt text, and the maps' alt texts state the shape and the
    value range of the result, computed here independently (SciPy's correlate2d, pooling by
    reshaping): the output, its ReLU and poolings, each filter-bank map."""
    from scipy.signal import correlate2d

    at = _lab(BANK, stride=str(stride))
    alts = image_alts(at)
    assert alts and all(alts), alts  # every image has a (non-empty) alt text
    x = _input_array(lab.DEFAULTS.image).astype(np.float64)

    def conv(kernel):
        return correlate2d(x, np.asarray(kernel, np.float64), mode="valid")[::stride, ::stride]

    def pool(y, how):
        h, w = (y.shape[0] // 2) * 2, (y.shape[1] // 2) * 2
        blocks = y[:h, :w].reshape(h // 2, 2, w // 2, 2)
        return how(blocks, axis=(1, 3))

    y = conv(kernels.preset(lab.DEFAULTS.kernel_name))
    by_start = {a.split(":")[0]: a for a in alts}
    _assert_states(by_start["Output feature map"], y)
    assert "Colours: blue" in by_start["Output feature map"]
    _assert_states(by_start["ReLU of the output, negatives set to 0"], np.maximum(y, 0))
    for word, how in (("max", np.max), ("average", np.mean)):
        what = f"2×2 {word} pool of the output, each 2×2 block replaced by its {word}"
        _assert_states(by_start[what], pool(y, how))
    bank = [a for a in alts if a.startswith("Feature map ")]
    assert len(bank) == 4
    names = ["vertical edges", "horizontal edges", "laplacian", "box blur"]
    for i, (alt, name) in enumerate(zip(bank, names, strict=True)):
        assert alt.startswith(f"Feature map {i + 1} of 4, filter {i} ({name}: ")
        _assert_states(alt, conv(kernels.preset(name)))
    assert _alt_facts(next(a for a in alts if a.startswith("Input image")))[0] == x.shape


@pytest.mark.slow
def test_every_preset():
    at = _lab()
    at.selectbox(key="lab_side").set_value(128)
    x = _input_array(lab.DEFAULTS.image, 128)
    for name in kernels.PRESETS:
        at.selectbox(key="lab_preset").set_value(name)
        _run(at)
        ksize = kernels.preset(name).shape
        assert _shown(at) == _expected(x, ksize, "valid", 1, 1), name
        assert _param(at, "kernel") == (None if name == lab.DEFAULTS.kernel_name else name)
        assert _editor(at).shape == ksize


@pytest.mark.parametrize(
    ("padding", "stride", "dilation"),
    [("valid", 2, 1), ("same", 1, 1), ("same", 2, 2), ("full", 1, 2), (2, 3, 1), (0, 4, 3)],
)
def test_every_padding_with_stride_and_dilation(padding, stride, dilation):
    at = _lab(kernel="gaussian blur", image="coins")
    at.radio(key="lab_padding").set_value(padding if isinstance(padding, str) else "explicit")
    _run(at)
    if not isinstance(padding, str):
        at.number_input(key="lab_p").set_value(padding)
    at.radio(key="lab_stride").set_value(stride)
    at.radio(key="lab_dilation").set_value(dilation)
    _run(at)
    x = _input_array("coins")
    assert _shown(at) == _expected(x, (5, 5), padding, stride, dilation)
    g = ConvGeometry(padding, stride, dilation)
    settings = lab.LabSettings(image="coins", kernel_name="gaussian blur", geometry=g)
    assert _link(at) == lab.settings_to_query(settings)
    sizes = lab.output_sizes(x.shape, (5, 5), g)
    latex = _latex(at)
    for size in sizes:
        assert size.formula_latex() in latex
        if size.dropped:
            assert any(size.dropped_text() == i.value for i in at.info)
    assert (padding == "same") == any(r"\left\lceil" in v for v in latex)


def test_photo_upload_in_rgb():
    at = _lab()
    at.radio(key="lab_source").set_value("Upload")
    _run(at)
    at.file_uploader(key="lab_upload").set_value(
        ("holiday.jpg", encode(photo((640, 480)), "JPEG", quality=90), "image/jpeg")
    )
    at.toggle(key="lab_gray").set_value(False)
    _run(at)
    assert _errors(at) == []
    assert any("(`holiday.jpg`)" in m.value and "192×256×3" in m.value for m in at.markdown)
    assert _shown(at) == (190, 254)
    assert any("Sum of the 27 products" in m.value for m in at.markdown)  # 3×3 × 3 channels
    assert _param(at, "gray") == "false"


def test_upload_or_camera_without_a_file_keeps_the_sample_until_one_is_chosen():
    """Choosing Upload (or Camera) does not empty the page: the last sample stays computed,
    and the page says so, until a file is uploaded."""
    at = _lab(image="coffee cup")
    shown = _shown(at)
    assert shown == (169, 254)  # 400 × 600, downscaled to 171 × 256
    for source in ("Upload", "Camera"):
        at.radio(key="lab_source").set_value(source)
        _run(at)
        assert any("Until then the sample “coffee cup” stays below." in i.value for i in at.info)
        assert _shown(at) == shown and any("(`coffee cup`)" in m.value for m in at.markdown)
    at.radio(key="lab_source").set_value("Upload")
    _run(at)
    at.file_uploader(key="lab_upload").set_value(
        ("tall.png", encode(photo((100, 200))), "image/png")
    )
    _run(at)
    assert any("(`tall.png`)" in m.value for m in at.markdown)
    assert not any("Until then" in i.value for i in at.info)


@pytest.mark.parametrize("name", list(bad_uploads()))
def test_bad_uploads_show_a_message(name):
    data, words = bad_uploads()[name]
    at = _lab()
    at.radio(key="lab_source").set_value("Upload")
    _run(at)
    at.file_uploader(key="lab_upload").set_value((name, data, "application/octet-stream"))
    _run(at)
    assert any(words in e and name in e for e in _errors(at)), _errors(at)
    assert not [m for m in at.markdown if SHAPE.search(m.value)]  # nothing computed


@pytest.mark.slow
def test_odd_but_valid_uploads_are_convolved():
    """CMYK, 16-bit, palette with transparency, animated GIF, EXIF-rotated: each is read as
    RGB (the rotation applied) and convolved; shapes equal output_size."""
    at = _lab(padding="same", stride="2")
    at.radio(key="lab_source").set_value("Upload")
    _run(at)
    for name, (data, (w, h)) in odd_but_valid_uploads().items():
        if name == "dot.png":
            continue  # test_one_pixel_upload
        at.file_uploader(key="lab_upload").set_value((name, data, "application/octet-stream"))
        _run(at)
        assert _errors(at) == [], (name, _errors(at))
        assert any(f"**{h}×{w}** (`{name}`)" in m.value for m in at.markdown), name
        assert _shown(at) == (-(-h // 2), -(-w // 2)), name


def test_one_pixel_upload():
    """A 1×1 image: a 3×3 kernel does not fit without padding (friendly error); with "same"
    padding the output is 1×1 and pooling is skipped with a note."""
    from PIL import Image

    at = _lab()
    at.radio(key="lab_source").set_value("Upload")
    _run(at)
    at.file_uploader(key="lab_upload").set_value(
        ("dot.png", encode(Image.new("RGB", (1, 1), (9, 9, 9))), "image/png")
    )
    _run(at)
    assert any("kernel spans 3 pixels" in e for e in _errors(at)), _errors(at)
    at.radio(key="lab_padding").set_value("same")
    _run(at)
    assert _shown(at) == (1, 1)
    assert any("Pooling skipped" in i.value for i in at.info)


def test_url_sets_every_shareable_setting():
    at = _lab(
        image="moon",
        gray="false",
        kernel="sobel x",
        padding="explicit",
        p="2",
        stride="3",
        dilation="2",
    )
    assert not at.warning
    x = _input_array("moon", gray=False)
    assert _shown(at) == _expected(x, (3, 3), 2, 3, 2)
    assert at.selectbox(key="lab_sample").value == "moon"
    assert at.toggle(key="lab_gray").value is False
    assert at.number_input(key="lab_p").value == 2
    np.testing.assert_array_equal(_editor(at), kernels.preset("sobel x"))


def test_bad_url_parameters_fall_back_with_notices():
    at = _lab(stride="9", kernel="blurry", padding="half", dilation="2")
    notices = [w.value for w in at.warning]
    assert len(notices) == 3
    for name in ("stride", "kernel", "padding"):
        assert any(f"**{lab.QUERY_KEYS[name]}**" in n for n in notices), notices
    x = _input_array(lab.DEFAULTS.image)
    assert _shown(at) == _expected(x, (3, 3), "valid", 1, 2)  # the good dilation is kept
    assert at.query_params == {"lab_dilation": "2"}  # Streamlit dropped the bad ones


def test_hostile_url_values_are_shown_inert_and_short():
    at = _lab(image="[win](https://evil.example)", kernel="x" * 5000, k="<b>1</b>")
    notices = [w.value for w in at.warning]
    assert len(notices) == 2, notices
    # The values are shown verbatim inside code spans; nothing of them is markdown.
    bare = [outside_code_spans(n) for n in notices]
    assert not any("](" in b or "<b>" in b or "evil" in b or "xxx" in b for b in bare), bare
    assert any("`[win](https://evil.example)`" in n for n in notices)
    assert all(len(n) < 400 for n in notices)
    assert _errors(at) == [] and _shown(at)


@pytest.mark.slow
def test_custom_kernel_from_the_url_and_the_buttons():
    at = _lab(kernel="custom", k="0,0;0,0", padding="same", gray="false", image="rocket")
    assert at.selectbox(key="lab_preset").value == lab.CUSTOM
    x = _input_array("rocket", gray=False)
    assert _shown(at) == x.shape[:2]
    at.button(key="lab_normalize").click()
    _run(at)
    assert any("all-zero kernel" in e for e in _errors(at))
    at.button(key="lab_randomize").click()
    _run(at)
    assert _errors(at) == []
    k = lab.kernel_from_text(_param(at, "k"))
    assert k.shape == (2, 2) and np.abs(k).max() <= 1
    at.selectbox(key="lab_kh").set_value(7)
    _run(at)
    assert lab.kernel_from_text(_param(at, "k")).shape == (7, 2)
    at.button(key="lab_normalize").click()
    _run(at)
    assert abs(float(lab.kernel_from_text(_param(at, "k")).sum()) - 1) < 1e-3 or (
        abs(float(np.abs(lab.kernel_from_text(_param(at, "k"))).sum()) - 1) < 1e-3
    )
    at.selectbox(key="lab_preset").set_value("sharpen")
    _run(at)
    assert _param(at, "kernel") == "sharpen" and _param(at, "k") is None


def _edit(at: AppTest, cells: list[list[str]], version: int | None = None) -> None:
    """What the kernel editor sends when the learner commits a cell (``ui.kernel_grid``):
    every cell's text, with the version it was typed on (the current one by default). The
    browser test checks the widget itself."""
    version = at.session_state["lab_editor_v"] if version is None else version
    at.session_state["lab_kernel_cells"] = {"cells": {"version": version, "values": cells}}
    _run(at)


def test_edited_cells_make_the_kernel_and_a_bad_cell_keeps_the_last_valid_one():
    at = _lab(kernel="identity")
    _edit(at, [["0", "0", "0"], ["0", " 2 ", ""], ["0", "0", "0"]])  # empty counts as 0
    np.testing.assert_array_equal(
        lab.kernel_from_text(_param(at, "k")), [[0, 0, 0], [0, 2, 0], [0, 0, 0]]
    )
    assert any("Sum of the 9 products" in m.value and "equal" in m.value for m in at.markdown)
    assert _errors(at) == []
    _edit(at, [["0", "0", "0"], ["0", "two", "0"], ["0", "0", "0"]])
    assert any("is not a number" in e and "last valid kernel" in e for e in _errors(at))
    assert lab.kernel_from_text(_param(at, "k"))[1, 1] == 2  # the last valid kernel
    # Cells typed on an older kernel (before a preset replaced it) are ignored.
    at.selectbox(key="lab_preset").set_value("sharpen")
    _run(at)
    _edit(at, [["9", "9", "9"], ["9", "9", "9"], ["9", "9", "9"]], version=0)
    np.testing.assert_array_equal(_editor(at), kernels.preset("sharpen"))
    assert _param(at, "kernel") == "sharpen" and _param(at, "k") is None


def test_under_the_hood_position_survives_size_changes():
    at = _lab()
    at.slider(key="lab_row").set_value(150)
    _run(at)
    at.radio(key="lab_stride").set_value(2)
    _run(at)
    top = at.slider(key="lab_row").max
    assert at.slider(key="lab_row").value == top  # clamped to the smaller output
    at.radio(key="lab_stride").set_value(1)
    _run(at)
    assert at.slider(key="lab_row").value == top  # and kept when it grows again


def test_under_the_hood_and_small_grid():
    at = _lab(stride="2", padding="same")
    at.slider(key="lab_row").set_value(0)
    at.slider(key="lab_col").set_value(0)
    _run(at)
    text = next(m.value for m in at.markdown if m.value.startswith("Output (0, 0) reads"))
    # Stride 2 "same" on 170×256 needs one padding row/column, added after (bottom/right).
    assert "rows **0, 1, 2**" in text and "columns **0, 1, 2**" in text
    at.button(key="lab_next").click()
    _run(at)
    assert at.slider(key="lab_step").value == 1
    grid = lab.small_grid(5, 3, ConvGeometry("same", 2))
    assert grid.equation(1) in _latex(at)
    at.button(key="lab_prev").click().run(timeout=TIMEOUT)
    at.button(key="lab_prev").click().run(timeout=TIMEOUT)
    assert at.slider(key="lab_step").value == grid.positions - 1  # wraps around
    at.toggle(key="lab_play").set_value(True)
    _run(at)
    assert at.slider(key="lab_step").value == 0  # each run while playing advances one step
    at.radio(key="lab_dilation").set_value(3)
    at.selectbox(key="lab_grid_n").set_value(3)
    at.radio(key="lab_padding").set_value("valid")
    _run(at)
    assert any("Make the grid bigger" in i.value for i in at.info)


def test_tensorflow_check_on_request():
    at = _lab(BANK, kernel="sobel y", stride="2", dilation="2", padding="full")
    assert not any(m.label == "max |difference|" for m in at.metric)  # not before asked
    at.button(key="lab_tf").click()
    _run(at)
    diff = next(m for m in at.metric if m.label == "max |difference|")
    assert float(diff.value) < 1e-5
    shapes = {m.label: m.value for m in at.metric}
    assert shapes["Our shape"] == shapes["TensorFlow's shape"]


# ------------------------------------------------------------------------ compute-size cap


@pytest.mark.slow
def test_a_40_megapixel_upload_is_computed_within_the_lab_budget():
    """A solid-colour 8000×5000 PNG (a few KB) loads, "original size" is not offered, and
    the lab computes on at most ``budgets().lab_pixels`` pixels even when asked for the
    largest side."""
    from cnnlib.core.budgets import budgets
    from tests.test_images import solid_png

    at = _lab()
    at.selectbox(key="lab_side").set_value(0)  # "original size" for the sample (it fits)
    at.radio(key="lab_source").set_value("Upload")
    _run(at)
    data = solid_png(8000, 5000, bytes((200, 30, 30)), colour_type=2)
    at.file_uploader(key="lab_upload").set_value(("huge.png", data, "image/png"))
    _run(at)
    assert _errors(at) == []
    options = at.selectbox(key="lab_side").options
    assert "original size (slow for big photos)" not in options and options, options
    line = next(m.value for m in at.markdown if SHAPE.search(m.value))
    h, w = map(int, re.search(r"Input \*\*(\d+)×(\d+)\*\*", line).groups())
    assert h * w <= budgets().lab_pixels and (h, w) == (160, 256)  # back to the default side
    assert "(`huge.png`)" in line


def test_original_size_is_offered_for_an_image_that_fits():
    at = _lab()
    assert "original size (slow for big photos)" in at.selectbox(key="lab_side").options
    at.selectbox(key="lab_side").set_value(0)
    _run(at)
    x = _input_array(lab.DEFAULTS.image, 0)
    assert _shown(at) == _expected(x, (3, 3), "valid", 1, 1)


# ------------------------------------------------------------------ transposed convolution


def _transposed_line(at: AppTest) -> str:
    return next(m.value for m in at.markdown if "(grayscale), your" in m.value)


def test_transposed_convolution_section():
    at = _lab(TRANSPOSED)
    # Defaults: 3×3 input, 3×3 kernel, stride 2, valid: o = 7, a checkerboard.
    assert lab.transpose_formula_latex(3, 3, 2, "valid") in _latex(at)
    assert any("not a multiple of stride 2" in i.value for i in at.info)
    text = next(m.value for m in at.markdown if m.value.startswith("Input cell (0, 0) writes"))
    assert "rows **0–2**, columns **0–2**" in text
    at.slider(key="lab_tr_cell").set_value(4)  # the centre cell (1, 1)
    _run(at)
    text = next(m.value for m in at.markdown if m.value.startswith("Input cell (1, 1) writes"))
    assert "rows **2–4**, columns **2–4**" in text
    # The lab's image upsampled: 128 px grayscale, the 3×3 kernel, stride 2.
    x = _input_array(lab.DEFAULTS.image, 128)
    size = [conv.transpose_output_size(n, 3, stride=2) for n in x.shape]
    assert f"**{x.shape[0]}×{x.shape[1]}**" in _transposed_line(at)
    assert f"→ **{size[0]}×{size[1]}**" in _transposed_line(at)

    at.selectbox(key="lab_tr_k").set_value(4)
    at.radio(key="lab_tr_pad").set_value("same")
    _run(at)
    assert lab.transpose_formula_latex(3, 4, 2, "same") in _latex(at)
    assert any("every output cell receives the same" in c.value for c in at.caption)
    assert f"→ **{2 * x.shape[0]}×{2 * x.shape[1]}**" in _transposed_line(at)

    at.radio(key="lab_tr_pad").set_value("crop p")
    _run(at)
    at.number_input(key="lab_tr_p").set_value(2)
    _run(at)
    assert lab.transpose_formula_latex(3, 4, 2, 2) in _latex(at)
    size = [conv.transpose_output_size(n, 3, stride=2, padding=2) for n in x.shape]
    assert f"→ **{size[0]}×{size[1]}**" in _transposed_line(at)
    assert _errors(at) == []


# ------------------------------------------------------------------------------------ quiz


def _quiz_link(q) -> dict[str, str]:
    return quiz.question_to_query(q, quiz.QUERY_PREFIX)


def _answer(at: AppTest, text: str) -> AppTest:
    at.text_input(key="quiz_answer").set_value(text)
    at.button(key="quiz_check").click()
    return _run(at)


def _score(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("**Score this session:**"))


def test_quiz_right_and_wrong_answers_and_the_score():
    q = quiz.Question(28, 20, 3, 5, "same", 2, 1)
    at = open_page("convolution_lab", timeout=TIMEOUT, query=_quiz_link(q))
    assert any(q.text() in m.value for m in at.markdown)
    assert "0 of 0 right" in _score(at)
    h, w = q.answer()
    _answer(at, f"{h}x{w}")
    assert any("Right" in s.value and f"{h}×{w}" in s.value for s in at.success)
    assert "1 of 1 right, streak 1" in _score(at)

    _answer(at, f"{h + 1} × {w}")
    verdict = quiz.check_answer(q, (h + 1, w))
    assert any("Not quite" in e.value for e in at.error)
    latex = _latex(at)
    for formula in (*verdict.worked, *verdict.same_rule):
        assert formula in latex
    assert "1 of 2 right, streak 0" in _score(at)

    _answer(at, "thirteen")  # not an answer: a hint, no score change
    assert any("two whole numbers" in e.value for e in at.error)
    assert "1 of 2 right" in _score(at)


def test_quiz_floor_question_shows_what_is_dropped():
    q = quiz.Question(10, 10, 3, 3, "valid", 2, 2)  # (10 − 5) / 2 → floor drops a row
    assert quiz.check_answer(q, q.answer()).dropped
    at = open_page("convolution_lab", timeout=TIMEOUT, query=_quiz_link(q))
    _answer(at, "1x1")
    for text in quiz.check_answer(q, (1, 1)).dropped:
        assert text in values(at.info)


def test_quiz_new_question_is_in_the_link_and_the_link_reproduces_it():
    at = _lab(QUIZ)
    assert not any(k.startswith(quiz.QUERY_PREFIX) for k in at.query_params)  # clean URL
    at.button(key="quiz_new").click()
    _run(at)
    params = {k: v for k, v in at.query_params.items() if k.startswith(quiz.QUERY_PREFIX)}
    q = at.session_state["quiz_q"]
    assert params == _quiz_link(q)
    shown = next(m.value for m in at.markdown if m.value.startswith("**Question:**"))
    fresh = open_page("convolution_lab", timeout=TIMEOUT, query=params)
    assert fresh.session_state["lab_further"] == QUIZ  # a shared question opens its tab
    assert fresh.session_state["quiz_q"] == q
    assert shown in values(fresh.markdown)
    assert "0 of 0 right" in _score(fresh)  # a new session's own score


def test_quiz_hostile_link_gets_a_new_question_and_a_short_inert_notice():
    link = {**_quiz_link(quiz.Question(28, 28, 3, 3)), "quiz_h": "[win](https://evil.example)"}
    link["quiz_padding"] = "<b>" + "x" * 5000
    at = open_page("convolution_lab", timeout=TIMEOUT, query=link)
    notices = [w.value for w in at.warning if "quiz question" in w.value]
    assert len(notices) == 1, values(at.warning)
    bare = outside_code_spans(notices[0])
    assert "](" not in bare and "<b>" not in bare and "evil" not in bare and len(notices[0]) < 300
    q = at.session_state["quiz_q"]
    assert q.answer()  # a usable question is shown
    assert any(m.value.startswith("**Question:**") and q.text() in m.value for m in at.markdown)
    at.button(key="quiz_new").click()
    _run(at)
    assert not [w for w in at.warning if "quiz question" in w.value]  # gone with a new one


def test_transposed_tensorflow_check_on_request():
    at = _lab(TRANSPOSED, kernel="sobel y")
    at.radio(key="lab_tr_pad").set_value("crop p")
    _run(at)
    at.number_input(key="lab_tr_p").set_value(1)
    at.button(key="lab_tf_tr").click()
    _run(at)
    diff = next(m for m in at.metric if m.label == "max |difference|")
    assert float(diff.value) < 1e-5
    shapes = {m.label: m.value for m in at.metric}
    x = _input_array(lab.DEFAULTS.image, 128)
    size = [conv.transpose_output_size(n, 3, stride=2, padding=1) for n in x.shape]
    assert shapes["Our shape"] == shapes["TensorFlow's shape"] == f"{size[0]}×{size[1]}×1"
