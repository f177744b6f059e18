"""One override mechanism: key=value typed by the dataclass field, dotted keys, frozen configs
rebuilt rather than changed, unknown keys listed; config.json read through the same field types;
python -m train and python -m gptlab.generate both take it."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Literal

import pytest

from gptlab import ConfigError, GenerationSettings, ModelConfig
from gptlab.generate.__main__ import KEYS as GENERATE_KEYS
from gptlab.generate.__main__ import CliSettings
from gptlab.generate.__main__ import main as generate_main
from gptlab.settings import from_json, keys, override, values, with_values
from train.__main__ import help_text
from train.config import TrainConfig, apply_overrides, defaults
from train.presets import PRESETS, make_preset


@dataclass(frozen=True)
class Inner:
    width: int = 4
    rate: float = 0.5


@dataclass(frozen=True)
class Outer:
    name: str = "a"
    on: bool = False
    seed: int | None = None
    mode: Literal["fast", "slow"] = "fast"
    inner: Inner = field(default_factory=Inner)


@pytest.mark.parametrize("pair, key, expected", [
    ("name=b c", "name", "b c"), ("on=yes", "on", True), ("on=OFF", "on", False), ("seed=none", "seed", None),
    ("seed=7", "seed", 7), ("seed=1_000", "seed", 1000), ("mode=slow", "mode", "slow"),
    ("inner.width=8", "inner.width", 8), ("inner.rate=1e-3", "inner.rate", 1e-3), ("inner.rate=2", "inner.rate", 2.0),
])
def test_values_take_the_type_of_their_field(pair, key, expected):
    result = values(override(Outer(), [pair]))[key]
    assert result == expected and type(result) is type(expected)


def test_frozen_configs_are_rebuilt_and_the_original_is_untouched():
    before = Outer()
    after = override(before, ["inner.width=9", "on=true"])
    assert before == Outer() and (after.inner.width, after.on, after.name) == (9, True, "a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.inner.width = 3  # type: ignore[misc]


def test_unknown_key_lists_every_valid_dotted_key():
    with pytest.raises(ConfigError) as err:
        override(Outer(), ["inner.widht=3"])
    assert "Unknown key 'inner.widht'" in str(err.value)
    assert "Valid keys: name, on, seed, mode, inner.width, inner.rate." in str(err.value)


@pytest.mark.parametrize("pair, message", [
    ("inner.width=2.5", "inner.width must be a whole number, got '2.5' (type int)."),
    ("inner.rate=fast", "inner.rate must be a number, got 'fast' (type float)."),
    ("inner.rate=nan", "inner.rate must be a number, got 'nan'"),
    ("inner.rate=inf", "inner.rate must be a number, got 'inf'"),
    ("on=maybe", "on must be true or false, got 'maybe' (type bool)."),
    ("seed=abc", "seed must be a whole number or none, got 'abc'"),
    ("mode=medium", "mode must be one of fast, slow, got 'medium'."),
    ("inner", "'inner' is not key=value. Valid keys: name"),
    ("=3", "'=3' is not key=value."),
    ("inner=3", "Unknown key 'inner'"),  # a nested dataclass is set field by field
])
def test_bad_pairs_say_what_the_key_takes(pair, message):
    with pytest.raises(ConfigError) as err:
        override(Outer(), [pair])
    assert message in str(err.value)


def test_a_fixed_key_says_why_it_cannot_be_set():
    with pytest.raises(ConfigError, match="inner.width cannot be set: it comes from elsewhere"):
        override(Outer(), ["inner.width=3"], fixed={"inner.width": "it comes from elsewhere"})


def test_with_values_sets_typed_values_through_dots():
    assert with_values(Outer(), {"inner.rate": 0.25, "name": "z"}) == Outer(name="z", inner=Inner(rate=0.25))


def test_from_json_checks_each_field_type():
    assert from_json(Outer, {"seed": None, "inner": {"rate": 1}, "mode": "slow"}) == Outer(
        mode="slow", inner=Inner(rate=1.0))
    for data, message in [([], "The config must be a JSON object, got list."),
                          ({"rogue": 1}, "The config has unknown key(s) ['rogue']; valid keys: name, on, seed"),
                          ({"on": 1}, "In the config, 'on' must be bool, got 1."),
                          ({"seed": True}, "In the config, 'seed' must be int, got True."),
                          ({"inner": {"width": 2.0}}, "In the config's inner, 'width' must be int, got 2.0."),
                          ({"inner": {"rate": math.nan}}, "'rate' must be float, got nan."),
                          ({"mode": "medium"}, "'mode' must be one of ['fast', 'slow'], got 'medium'.")]:
        with pytest.raises(ConfigError) as err:
            from_json(Outer, data)
        assert message in str(err.value)


def test_every_default_reads_back_through_its_own_text():
    """The help shows key=default; each such pair parses back to the same value, for every config."""
    for config in [TrainConfig(), CliSettings(), *(make_preset(name) for name in PRESETS)]:
        pairs = [f"{key}={value}" for key, value in values(config).items() if key != "model.vocab_size"]
        assert override(config, pairs) == config


def test_model_config_json_round_trips():
    config = ModelConfig(kind="blocks", n_layer=3, n_head=4, n_embd=32, dropout=0.1, pos="rope", qk_norm=True)
    assert from_json(ModelConfig, dataclasses.asdict(config), what="model config") == config


def test_training_config_holds_the_model_config_itself():
    """No hand-written copy of ModelConfig: every model field but vocab_size is a training key, typed alike."""
    assert {f.name: f.type for f in dataclasses.fields(TrainConfig)}["model"] in (ModelConfig, "ModelConfig")
    model_keys = {f"model.{name}": kind for name, kind in keys(ModelConfig).items() if name != "vocab_size"}
    assert model_keys.items() <= keys(TrainConfig).items()
    assert "model.vocab_size" not in defaults() and "model.vocab_size" not in help_text()
    with pytest.raises(ConfigError, match="model.vocab_size cannot be set: the tokenizer decides it"):
        apply_overrides(make_preset("gpt"), ["model.vocab_size=100"])


def test_train_overrides_leave_the_preset_alone():
    preset = make_preset("gpt")
    changed = apply_overrides(preset, ["model.n_layer=2", "lr=5e-4"])
    assert (preset.model.n_layer, preset.lr) == (6, 2e-3) and (changed.model.n_layer, changed.lr) == (2, 5e-4)


def test_both_command_lines_speak_the_same_grammar(capsys):
    """The same kind of mistake gets the same message from python -m train and python -m gptlab.generate."""
    with pytest.raises(ConfigError) as err:
        apply_overrides(make_preset("gpt"), ["max_iters=2.5"])
    assert str(err.value) == "max_iters must be a whole number, got '2.5' (type int)."
    assert generate_main(["no/such-model", "prompt", "top_k=2.5"]) == 2
    assert "error: top_k must be a whole number, got '2.5' (type int)." in capsys.readouterr().err
    assert generate_main(["no/such-model", "prompt", "max_new_tokens=1_0", "seed=none", "top_k=x"]) == 2
    assert "top_k must be a whole number, got 'x'" in capsys.readouterr().err


def test_generate_keys_are_the_generation_settings_and_errors():
    assert list(GENERATE_KEYS) == [*keys(GenerationSettings), "errors"]
    assert isinstance(CliSettings(), GenerationSettings)
