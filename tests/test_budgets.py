"""cnnlib.core.budgets: defaults, environment overrides, and the training-cost check against
numbers computed by hand (and Keras' own count_params)."""

from __future__ import annotations

import dataclasses

import pytest

from cnnlib.core.budgets import Budgets, budgets
from cnnlib.core.errors import BudgetError, CNNLabError
from cnnlib.models.stack import LayerSpec, summarize_stack
from cnnlib.training.cost import check_training, training_cost

#: Conv2D(32, 3) → MaxPooling2D(2) → Flatten → Dense(10, softmax) on 28×28×1.
SMALL = [
    LayerSpec.conv2d(32, 3),
    LayerSpec.max_pool(2),
    LayerSpec.flatten(),
    LayerSpec.dense(10, activation="softmax"),
]
# The stack gets Rescaling(1/255) first (the model owns its preprocessing).
# By hand: values 784 (input) + 784 (rescaled) + 26·26·32 + 13·13·32 + 5408 + 10 = 34,026;
# multiply-adds 26·26·(3·3·1)·32 + 5408·10 = 194,688 + 54,080 = 248,768 per image;
# parameters (9 + 1)·32 + (5408 + 1)·10 = 320 + 54,090 = 54,410.
SMALL_VALUES, SMALL_MACS, SMALL_PARAMS = 34_026, 248_768, 54_410


def test_defaults_fit_a_small_community_cloud_process():
    b = budgets({})
    assert b == Budgets()
    assert b.image_pixels == 40_000_000 and b.image_file_bytes == 20 * 1024 * 1024
    # Activations, caches and a training step each stay well under the 690 MB minimum.
    assert b.activation_bytes + b.cache_bytes < 690e6
    assert b.training_activation_bytes * b.max_trainings < 690e6
    assert 1_000_000 <= b.lab_pixels <= 8_000_000


def test_environment_overrides_with_units():
    env = {
        "CNNLAB_CACHE_BYTES": "1GiB",
        "CNNLAB_LAB_PIXELS": "6000000",
        "CNNLAB_TRAINING_MULTIPLY_ADDS": "2e10",
        "CNNLAB_MODEL_CONFIG_BYTES": "512k",
        "CNNLAB_MAX_TRAININGS": " 4 ",
        "CNNLAB_SESSION_UPLOADS": "",  # empty: the default
    }
    b = budgets(env)
    assert b.cache_bytes == 1024**3
    assert b.lab_pixels == 6_000_000
    assert b.training_multiply_adds == 20_000_000_000
    assert b.model_config_bytes == 512 * 1024
    assert b.max_trainings == 4
    assert b.session_uploads == Budgets().session_uploads


def test_environment_is_read_by_default(monkeypatch):
    monkeypatch.setenv("CNNLAB_CLASSIFY_PHOTOS", "3")
    assert budgets().classify_photos == 3


@pytest.mark.parametrize("text", ["lots", "-5", "0", "1.5.2", "12 apples"])
def test_bad_environment_values_name_the_variable(text):
    with pytest.raises(BudgetError, match="CNNLAB_IMAGE_PIXELS"):
        budgets({"CNNLAB_IMAGE_PIXELS": text})


def test_budgets_refuse_nonsense_and_are_frozen():
    with pytest.raises(BudgetError, match="image_pixels"):
        Budgets(image_pixels=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Budgets().image_pixels = 1  # type: ignore[misc]
    assert issubclass(BudgetError, CNNLabError) and issubclass(BudgetError, ValueError)


def test_training_cost_by_hand_from_stack_and_rows():
    cost = training_cost(SMALL, (28, 28, 1), 64)
    assert cost.activation_values_per_image == SMALL_VALUES
    assert cost.multiply_adds_per_image == SMALL_MACS
    assert cost.params == SMALL_PARAMS
    assert cost.multiply_adds == SMALL_MACS * 64 == 15_921_152
    assert cost.activation_bytes == SMALL_VALUES * 64 * 4 * 3 == 26_131_968
    rows = summarize_stack(SMALL, (28, 28, 1), 10)
    assert training_cost(rows, (28, 28, 1), 64) == cost


def test_training_cost_params_equal_keras():
    import keras

    from cnnlib.models.stack import build_from_stack

    model = build_from_stack(SMALL, (28, 28, 1), 10)
    assert training_cost(SMALL, (28, 28, 1), 8).params == model.count_params()
    keras.backend.clear_session()


def test_check_training_passes_within_budget():
    cost = check_training(SMALL, (28, 28, 1), 64, budgets=Budgets())
    assert cost.batch_size == 64


def test_too_much_memory_suggests_a_batch_that_fits():
    # 256 images need 34,026 · 256 · 12 = 104,527,872 bytes; allow 50 MB.
    limits = Budgets(training_activation_bytes=50_000_000)
    with pytest.raises(BudgetError) as info:
        check_training(SMALL, (28, 28, 1), 256, budgets=limits)
    message = str(info.value)
    assert "104.5 MB" in message and "50.0 MB" in message
    # 50,000,000 // (34,026 · 12) = 122.
    assert "at most 122" in message
    check_training(SMALL, (28, 28, 1), 122, budgets=limits)
    with pytest.raises(BudgetError):
        check_training(SMALL, (28, 28, 1), 126, budgets=limits)


def test_too_many_multiply_adds_shows_the_numbers():
    limits = Budgets(training_multiply_adds=10_000_000)
    with pytest.raises(BudgetError) as info:
        check_training(SMALL, (28, 28, 1), 64, budgets=limits)
    message = str(info.value)
    assert "15,921,152" in message and "248,768 per image" in message
    assert "10,000,000" in message
    assert "at most 40" in message  # 10,000,000 // 248,768


def test_nothing_fits_says_so():
    limits = Budgets(training_multiply_adds=1000)
    with pytest.raises(BudgetError, match="Even one image"):
        check_training(SMALL, (28, 28, 1), 1, budgets=limits)


def test_bad_arguments():
    with pytest.raises(BudgetError, match="batch size"):
        training_cost(SMALL, (28, 28, 1), 0)
    with pytest.raises(BudgetError, match="non-empty"):
        training_cost([], (28, 28, 1), 8)


def test_server_config_matches_the_budgets_and_names_real_options():
    """.streamlit/config.toml: every option exists in this Streamlit, and the upload cap is
    the budgets' file limit."""
    import tomllib
    from pathlib import Path

    from streamlit import config as st_config

    path = Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml"
    settings = tomllib.loads(path.read_text())
    options = st_config._config_options_template  # every option Streamlit defines

    def names(table: dict, prefix: str = "") -> list[str]:  # nested tables: [theme.dark]
        return [
            n
            for key, value in table.items()
            for n in (
                names(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key]
            )
        ]

    for name in names(settings):
        assert name in options, name
    server = settings["server"]
    assert server["maxUploadSize"] * 1024 * 1024 == Budgets().image_file_bytes
    assert server["maxUploadSize"] * 1024 * 1024 == Budgets().model_file_bytes
    assert server["enableXsrfProtection"] is True
    assert settings["client"]["showErrorDetails"] == "none"
    assert settings["browser"]["gatherUsageStats"] is False
    assert settings["runner"]["postScriptGC"] is False
    assert int(server["maxCacheDataSize"].removesuffix("mb")) * 1024**2 >= Budgets().cache_bytes


def test_session_usage_counts_uploads_and_bytes():
    from cnnlib.core.budgets import SessionUsage

    limits = Budgets(session_uploads=3, session_upload_bytes=1000)
    usage = SessionUsage()
    usage.admit(400, budgets=limits)
    usage.admit(500, budgets=limits)
    with pytest.raises(BudgetError, match="900 B of uploads; 200 B more"):
        usage.admit(200, budgets=limits)
    assert (usage.uploads, usage.upload_bytes) == (2, 900)  # the refused one is not counted
    usage.admit(100, budgets=limits)
    with pytest.raises(BudgetError, match="already decoded 3 uploads"):
        usage.admit(1, budgets=limits)


def test_session_images_decoded_bytes():
    from cnnlib.core.budgets import check_session_images

    limits = Budgets(session_image_bytes=10_000_000)
    assert check_session_images([(1000, 1000), (1000, 2000)], budgets=limits) == 9_000_000
    with pytest.raises(BudgetError, match=r"12\.0 MB once decoded"):
        check_session_images([(2000, 2000)], budgets=limits)
