"""tokenize_dataset end to end: every model group on the shared DM and guild samples, outputs, bad inputs, config.

Each group runs against a tiny random model of its architecture (tests/tiny_models.py) whose tokenizer is the
embedded one dressed up as the group's (tests/test_formatting.py::group_tokenizer); phi3 and mistral use the
group's fallback template because their test tokenizers ship none.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from rich.console import Console

import chatclone.config  # noqa: F401
from chatclone import runs
from chatclone.config.model import Dtype
from chatclone.errors import ChatcloneError
from chatclone.stages.process_messages import process_messages
from chatclone.stages.tokenize_dataset import tokenize_dataset
from tests.conftest import DM, GUILD, ROOT, compose, make_config, read_jsonl, run_script
from tests.test_formatting import (
    assert_runs,
    expected_runs,
    group_config,
    group_tokenizer,
    labelled_runs,
    tokenizer_dir,  # noqa: F401  (tokenizer_dir is a fixture)
)
from tests.tiny_models import build_tiny_model

GROUPS = ("smollm2", "gpt2", "phi3", "mistral")
ARCH = {"smollm2": "llama", "gpt2": "gpt2", "phi3": "phi3", "mistral": "mistral"}


def run(run_dir: Path, overrides: list[str]) -> dict:
    cfg = compose("tokenize_dataset", ["progress=false", *overrides])
    return tokenize_dataset(cfg, run_dir, console=Console(file=io.StringIO()))


@pytest.fixture(scope="session")
def samples(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """process_messages runs of the shared DM and guild samples."""
    out = {}
    for name, export in (("dm", DM), ("guild", GUILD)):
        out[name] = tmp_path_factory.mktemp(f"pm-{name}") / "run"
        process_messages(make_config([shared / f"{export}.json"]), out[name], console=Console(file=io.StringIO()))
    return out


@pytest.fixture(scope="session")
def models(tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny random model per group, saved with the group's test tokenizer."""
    root = tmp_path_factory.mktemp("tiny")
    out = {}
    for group in GROUPS:
        tokenizer = root / f"{group}-tokenizer"
        group_tokenizer(tokenizer_dir, group).save_pretrained(tokenizer)
        out[group] = build_tiny_model(ARCH[group], root / group, tokenizer)
    return out


@pytest.mark.parametrize("sample", ["dm", "guild"])
@pytest.mark.parametrize("group", GROUPS)
def test_every_group_trains_exactly_the_target_turns(samples, models, tmp_path, group, sample):
    from datasets import load_from_disk
    from transformers import AutoConfig, AutoTokenizer

    stats = run(tmp_path / "run", [f"model={group}", f"model.name_or_path={models[group]}", f"input={samples[sample]}"])
    cfg = group_config(group)
    dataset = load_from_disk(str(tmp_path / "run" / "dataset"))
    tok = AutoTokenizer.from_pretrained(tmp_path / "run" / "tokenizer")
    own = AutoTokenizer.from_pretrained(models[group]).chat_template
    assert tok.chat_template == (cfg.chat_template or own or cfg.fallback_chat_template)
    assert (own is None) == (group in ("phi3", "mistral"))
    vocab = AutoConfig.from_pretrained(models[group]).vocab_size
    for split in ("train", "validation"):
        records = read_jsonl(samples[sample] / f"{split}.jsonl")
        rows = dataset[split]
        assert rows.column_names == ["input_ids", "labels", "length"] and len(rows) == len(records)
        for record, row in zip(records, rows):
            assert row["length"] == len(row["input_ids"]) == len(row["labels"]) and max(row["input_ids"]) < vocab
            assert_runs(
                labelled_runs(tok, row["labels"]),
                expected_runs(record["messages"], cfg.end_of_turn, cfg.alternating_roles),
            )
        assert stats["splits"][split]["target_turns_trained"] == stats["splits"][split]["target_turns_in_input"]
    text = tok.decode(dataset["train"][0]["input_ids"])
    name = "Tamsin" if sample == "dm" else "tam"  # the name the target has in that chat
    assert f"You are {name}. Reply exactly the way {name} texts." in text
    if sample == "guild":  # other speakers keep their names
        assert all(f"{n}: " in tok.decode(dataset["train"][0]["input_ids"]) for n in ("Pippa", "ezraloom", "Marlow"))
    model = runs.read_manifest(tmp_path / "run")["summary"]["model"]
    assert model["group"] == group and model["name_or_path"] == str(models[group])
    assert model["chat_template_sha256"] == hashlib.sha256(tok.chat_template.encode()).hexdigest()
    assert (
        model["end_of_turn"] == cfg.end_of_turn
        and tok.convert_ids_to_tokens(model["end_of_turn_id"]) == cfg.end_of_turn
        and model["max_length"] == cfg.max_length
    )


def test_outputs_stats_histogram_and_manifest_last(samples, models, tmp_path):
    run_dir = tmp_path / "run"
    stats = run(run_dir, [f"model.name_or_path={models['smollm2']}", f"input={samples['guild']}"])
    for name in (
        "stats.json",
        "length_histogram.png",
        "manifest.json",
        "tokenizer/tokenizer.json",
        "dataset/dataset_dict.json",
    ):
        assert (run_dir / name).exists(), name
    assert (run_dir / "length_histogram.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(run_dir.glob(".work-*"))  # the datasets cache files are gone
    manifest = runs.read_manifest(run_dir)
    assert manifest["stage"] == "tokenize_dataset" and manifest["inputs"] == [str(samples["guild"])]
    assert manifest["summary"]["model"]["chat_template_sha256"] == stats["model"]["chat_template_sha256"]
    newest = max((p for p in run_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_mtime_ns)
    assert newest.name in ("manifest.json", "tokenize_dataset.log")
    on_disk = json.loads((run_dir / "stats.json").read_text())
    train = on_disk["splits"]["train"]
    assert (
        train["tokens"] > train["trained_tokens"] > 0
        and sum(on_disk["length_histogram"]["counts"])
        == train["sequences"] + on_disk["splits"]["validation"]["sequences"]
    )
    with pytest.raises(ChatcloneError, match="already holds a finished run"):
        run(run_dir, [f"model.name_or_path={models['smollm2']}", f"input={samples['guild']}"])


def test_windows_respect_max_length_and_parallel_map_matches(samples, models, tmp_path):
    from datasets import load_from_disk

    overrides = [f"model.name_or_path={models['smollm2']}", f"input={samples['guild']}", "model.max_length=96"]
    stats = run(tmp_path / "a", overrides + ["num_proc=1"])
    run(tmp_path / "b", overrides + ["num_proc=2", "batch_size=1"])
    a, b = (load_from_disk(str(tmp_path / x / "dataset")) for x in "ab")
    assert a["train"].to_dict() == b["train"].to_dict() and a["validation"].to_dict() == b["validation"].to_dict()
    tok = group_tokenizer(models["smollm2"], "smollm2")
    end = tok.convert_tokens_to_ids("<|im_end|>")
    for row in a["train"]:
        assert row["length"] <= 96
        last = max(i for i, label in enumerate(row["labels"]) if label != -100)
        assert row["input_ids"][last] == end and len(row["input_ids"]) - last <= 2  # ends on a target turn
    train = stats["splits"]["train"]
    assert train["windowed_conversations"] > 0
    assert train["target_turns_trained"] + train["target_turns_skipped_too_long"] == train["target_turns_in_input"]


def bad_run(run_dir: Path, overrides: list[str], match: str) -> str:
    with pytest.raises(ChatcloneError, match=match) as info:
        run(run_dir, ["num_proc=1", *overrides])
    assert "\n" not in str(info.value)
    return str(info.value)


def fake_process_messages_run(run_dir: Path, records: list[dict], summary: dict | None = None) -> Path:
    run_dir.mkdir(parents=True)
    for split in ("train", "validation"):
        (run_dir / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    runs.finish_run(run_dir, "process_messages", {}, [], [], summary or {})
    return run_dir


def test_bad_input_runs(samples, models, tmp_path):
    model = f"model.name_or_path={models['smollm2']}"
    bad_run(tmp_path / "r1", [model, f"input={tmp_path / 'nowhere'}"], "no such run dir")
    (tmp_path / "unfinished").mkdir()
    bad_run(tmp_path / "r2", [model, f"input={tmp_path / 'unfinished'}"], "not a finished chatclone run")
    bad_run(tmp_path / "r3", [model, f"outputs_root={tmp_path / 'empty'}"], "no finished process_messages run")
    run(tmp_path / "done", [model, f"input={samples['dm']}"])
    bad_run(
        tmp_path / "r4",
        [model, f"input={tmp_path / 'done'}"],
        "this is a tokenize_dataset run, expected a process_messages run",
    )
    users = fake_process_messages_run(tmp_path / "users", [{"messages": [{"role": "user", "content": "hi"}]}])
    bad_run(tmp_path / "r5", [model, f"input={users}"], "no target turns")
    summary = {"split": {"train": {"target_turns": 0}}}
    counted = fake_process_messages_run(tmp_path / "counted", [{"messages": []}], summary)
    bad_run(tmp_path / "r6", [model, f"input={counted}"], "train split has no target turns")
    broken = fake_process_messages_run(tmp_path / "broken", [{"id": 1}])
    bad_run(tmp_path / "r7", [model, f"input={broken}"], r"train.jsonl:1: record has no `messages` list")


def test_bad_model_settings(samples, models, tmp_path):
    model, dm = f"model.name_or_path={models['smollm2']}", f"input={samples['dm']}"
    bad_run(tmp_path / "r1", [model, dm, "model.max_length=16"], "model.max_length=16 is too small")
    long_turn = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "soup " * 300}]}
    big = fake_process_messages_run(tmp_path / "big", [long_turn])
    bad_run(
        tmp_path / "r2",
        [model, f"input={big}", "model.max_length=64"],
        "no target turn fits in model.max_length=64 \\(1 turns",
    )
    text = bad_run(
        tmp_path / "r3",
        ["model=mistral", f"model.name_or_path={models['mistral']}", dm, "model.alternating_roles=false"],
        "cannot express a conversation",
    )
    assert text.startswith("model=mistral: ") and "model.alternating_roles=true" in text
    bad_run(
        tmp_path / "r4",
        ["model=phi3", f"model.name_or_path={models['phi3']}", dm, "model.end_of_turn='<|endoftext|>'"],
        "does not end assistant turns",
    )
    bad_run(tmp_path / "r5", [model, dm, "model.end_of_turn='<|im_end|><|im_end|>'"], "not a single token")
    bad_run(
        tmp_path / "r6",
        ["model=phi3", f"model.name_or_path={models['phi3']}", dm, "model.fallback_chat_template=null"],
        "has no chat template",
    )
    bad_run(tmp_path / "r7", [f"model.name_or_path={tmp_path / 'no-model'}", dm], "not a model folder")


@pytest.mark.parametrize("group", GROUPS)
def test_model_groups_compose(group):
    cfg = compose("tokenize_dataset", [f"model={group}"])
    expected = OmegaConf.load(ROOT / "conf" / "model" / f"{group}.yaml")
    assert cfg.model.group == group and cfg.model.lora_target_modules == list(expected.lora_target_modules)
    assert cfg.model.dtype is Dtype(expected.dtype) and cfg.input == "latest" and cfg.num_proc == 2
    assert cfg.model.chat_template or cfg.model.fallback_chat_template or group == "smollm2"
    cfg.check()


def test_model_group_fields():
    phi3, mistral, gpt2 = (compose("tokenize_dataset", [f"model={g}"]).model for g in ("phi3", "mistral", "gpt2"))
    assert phi3.lora_target_modules == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    assert gpt2.lora_target_modules == ["c_attn", "c_proj", "c_fc"] and "{% generation %}" in gpt2.chat_template
    assert mistral.alternating_roles and not mistral.system_role and phi3.end_of_turn == "<|end|>"
    assert compose("tokenize_dataset", ["model.name_or_path=org/any-model"]).model.name_or_path == "org/any-model"


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.max_lenght=5", "Key 'max_lenght' not in 'ModelConfig'"),
        ("formatting.speaker_name=false", "Key 'speaker_name' not in"),
        ("model.dtype=float8", "float32"),
        ("model=llama3", "smollm2"),
    ],
)
def test_typos_fail_at_composition(override, message):
    with pytest.raises(ConfigCompositionException) as info:
        compose("tokenize_dataset", [override])
    assert message in str(info.value) + str(info.value.__cause__)


@pytest.mark.parametrize(
    "override, key",
    [
        ("num_proc=0", "num_proc"),
        ("model.max_length=4", "model.max_length"),
        ("formatting.system_prompt='You are {name}'", "formatting.system_prompt"),
    ],
)
def test_value_checks_name_the_override(override, key):
    with pytest.raises(ChatcloneError, match=key):
        compose("tokenize_dataset", [override]).check()


def test_script_runs_the_embedded_default_from_the_repo_root(samples, tokenizer_dir, tmp_path):
    root = tmp_path / "outputs"
    (root / "process_messages").mkdir(parents=True)
    shutil.copytree(samples["dm"], root / "process_messages" / "run")
    env = {"CHATCLONE_CACHE": str(tokenizer_dir.parent)}
    result = run_script("tokenize_dataset", f"outputs_root={root}", "progress=false", env=env)
    assert result.returncode == 0, result.stderr
    [run_dir] = (root / "tokenize_dataset").iterdir()
    summary = runs.read_manifest(run_dir)["summary"]
    assert summary["model"]["group"] == "smollm2" and summary["model"]["name_or_path"] == str(tokenizer_dir)
    bad = run_script("tokenize_dataset", f"input={tmp_path / 'nowhere'}", f"outputs_root={root}", env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: ")
