"""Config composition: every group option composes into the typed schema; typos and bad values fail early."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

import chatclone.config  # noqa: F401
from chatclone.config.process_messages import MediaPolicy, ProcessMessagesConfig, SplitStrategy, UrlPolicy
from chatclone.errors import ChatcloneError
from tests.conftest import ROOT, compose, run_script

CONF = str(ROOT / "conf")


def test_defaults_compose():
    cfg = compose("process_messages", [])
    assert isinstance(cfg, ProcessMessagesConfig)
    assert cfg.cleaning.urls is UrlPolicy.placeholder and cfg.split.strategy is SplitStrategy.temporal
    assert cfg.inputs == ["examples/sample_exports"] and cfg.target is None


@pytest.mark.parametrize("option", ["default", "minimal"])
def test_cleaning_options(option):
    cfg = compose("process_messages", [f"cleaning={option}"])
    assert cfg.cleaning.media_only is (MediaPolicy.drop if option == "default" else MediaPolicy.placeholder)


@pytest.mark.parametrize("option", ["temporal", "random"])
def test_split_options(option):
    assert compose("process_messages", [f"split={option}"]).split.strategy is SplitStrategy(option)


def test_input_list_override():
    assert compose("process_messages", ["input=[a,b]"]).inputs == ["a", "b"]


def test_typo_key_fails():
    with pytest.raises(ConfigCompositionException) as info:
        compose("process_messages", ["cleaning.urlz=drop"])
    assert "Key 'urlz' not in 'CleaningConfig'" in str(info.value.__cause__)


def test_bad_enum_fails():
    with pytest.raises(ConfigCompositionException) as info:
        compose("process_messages", ["cleaning.urls=maybe"])
    assert isinstance(info.value.__cause__, ValidationError)
    assert "keep" in str(info.value.__cause__) and "placeholder" in str(info.value.__cause__)


def test_unknown_group_option_fails():
    with pytest.raises(ConfigCompositionException, match="random"):
        compose("process_messages", ["split=shuffled"])


@pytest.mark.parametrize(
    "override, key",
    [
        ("split.validation_fraction=1.5", "split.validation_fraction"),
        ("segmentation.context_turns=30", "segmentation.context_turns"),
        ("segmentation.min_turns=0", "segmentation.min_turns"),
    ],
)
def test_value_checks_name_the_override(override, key):
    with pytest.raises(ChatcloneError, match=key):
        compose("process_messages", [override]).check()


def test_script_typo_names_the_override():
    result = run_script("process_messages", "cleaning.urlz=drop")
    assert result.returncode != 0 and "urlz" in result.stderr


HELP_GROUPS = {
    "process_messages": ["cleaning: default, minimal   (now: default)", "split: random, temporal   (now: temporal)"],
    "tokenize_dataset": ["model: gpt2, mistral, phi3, smollm2   (now: smollm2)"],
    "train": [
        "method: full, lora, qlora   (now: qlora)",
        "model: gpt2, mistral, phi3, smollm2   (now: smollm2)",
        "preset: overfit, regularized   (now: none)",
    ],
    **{
        script: ["sampling: creative, default, focused, greedy   (now: default)"]
        for script in ("inference", "generate_from_prompt", "simulate_conversation", "evaluate_clone")
    },
}


@pytest.mark.parametrize("script", sorted(HELP_GROUPS))
def test_script_help_shows_usage_and_only_its_own_groups(script):
    overrides = ["method=qlora"] if script == "train" else []
    result = run_script(script, *overrides, "--help")
    assert result.returncode == 0, result.stderr
    assert f"python {script}.py" in result.stdout.split("== Configuration groups")[0]  # the usage header
    groups = result.stdout.split("== Configuration groups (group=option) ==\n")[1].split("\n\n== Config")[0]
    assert groups.splitlines() == HELP_GROUPS[script]
    assert "--hydra-help" in result.stdout
