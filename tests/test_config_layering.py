"""One home per config concept: conf/ holds every default a user may change (the schemas hold the same values, so
that nothing composed differs from what a YAML says), config/ imports nothing above it, every script's Hydra
settings and usage text have one source, and a key that does not apply to the chosen option is refused."""

from __future__ import annotations

import ast
import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import ConfigCompositionException

from chatclone import sweeps, wandb_runs
from chatclone.config.commandline import schema_of, schemas
from chatclone.config.help import script_usage
from chatclone.config.wandb_config import WandbConfig, WandbMode
from chatclone.errors import ChatcloneError
from tests.conftest import ROOT, compose

CONF = ROOT / "conf"
SCRIPTS = tuple(schemas())
CLONE_SCRIPTS = ("inference", "generate_from_prompt", "simulate_conversation", "evaluate_clone")


def leaves(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        out.update(leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return out


def package(config: str, default: str) -> str:
    """The package a config's keys land in: its `# @package` header, else `default` (`` = the top level)."""
    first = (CONF / f"{config}.yaml").read_text(encoding="utf-8").split("\n", 1)[0]
    named = first.removeprefix("# @package ").strip() if first.startswith("# @package ") else default
    return "" if named == "_global_" else named


def yaml_keys(config: str) -> set[str]:
    """Every dotted key that conf/<config>.yaml and its defaults list (default options only) set, relative to the
    config's own package."""
    raw = yaml.safe_load((CONF / f"{config}.yaml").read_text(encoding="utf-8")) or {}
    keys = set(leaves({k: v for k, v in raw.items() if k not in ("defaults", "hydra")}))
    for entry in raw.get("defaults", []):
        if isinstance(entry, str):
            if entry == "_self_" or entry.endswith("_schema"):
                continue
            child, where = entry.lstrip("/"), package(entry.lstrip("/"), "")
        else:
            [(group, option)] = entry.items()
            if group.startswith("override") or option is None:
                continue
            child, where = f"{group}/{option}", package(f"{group}/{option}", group)
        keys |= {f"{where}.{key}" if where else key for key in yaml_keys(child)}
    return keys


@pytest.mark.parametrize("script", SCRIPTS)
def test_schema_defaults_are_the_yaml_defaults(script):
    """A dataclass built directly (package code, benchmarks, unit tests) gets what a user of the script gets."""
    composed, schema = leaves(asdict(compose(script))), leaves(asdict(schema_of(script)()))
    assert composed.keys() == schema.keys()
    assert {k: (schema[k], v) for k, v in composed.items() if schema[k] != v} == {}


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_key_has_its_default_in_conf(script):
    missing = set(leaves(asdict(compose(script)))) - yaml_keys(script)
    assert missing == set()


def test_config_imports_nothing_above_it():
    allowed = ("chatclone.config", "chatclone.errors", "chatclone.logs")
    for path in (ROOT / "chatclone" / "config").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "chatclone" else [node.module]
            else:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                assert not name.startswith("chatclone") or name.startswith(allowed), f"{path.name} imports {name}"


REPORTS = ("judge_report",)  # read-only commands: no run dir (hydra.run.dir: .), records to stderr only


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_shares_one_hydra_config(script):
    raw = yaml.safe_load((CONF / f"{script}.yaml").read_text(encoding="utf-8"))
    assert "hydra/chatclone" in raw["defaults"]
    # run dirs, logging and help live in conf/hydra/chatclone.yaml; a report only says it has no run dir
    assert set(raw.get("hydra", {})) <= ({"run", "job_logging"} if script in REPORTS else {"callbacks"})
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name=script):
        hydra = hydra_compose(config_name=script, return_hydra_config=True).hydra
        if script in REPORTS:
            assert hydra.run.dir == "." and list(hydra.job_logging.root.handlers) == ["console"]
        else:
            assert hydra.run.dir.startswith(f"outputs/{script}/")
            assert hydra.sweep.dir.startswith(f"outputs/{script}/multirun/")
        assert hydra.job.chdir is False and hydra.output_subdir is None
        assert {hydra.runtime.choices[f"hydra/{g}"] for g in ("help", "job_logging", "hydra_logging")} == {"chatclone"}
        # --help's header is the script's docstring: one usage text, which cannot drift from itself
        docstring = ast.get_docstring(ast.parse((ROOT / f"{script}.py").read_text(encoding="utf-8")))
        assert hydra.help.header == f"{script}.py: {docstring}\n" and f"python {script}.py" in docstring
        assert script_usage(script) == docstring


@pytest.mark.parametrize("script", ["inference", "generate_from_prompt", "simulate_conversation"])
def test_clone_stage_defaults_come_from_the_shared_yaml(script):
    cfg = compose(script)
    assert (cfg.run, cfg.format_run, cfg.reply_attempts, cfg.seed, cfg.wandb.mode) == (
        "latest",
        "latest",
        3,
        None,
        WandbMode.disabled,
    )


def test_evaluate_clone_has_no_format_run_and_its_own_seed_and_wandb():
    cfg = compose("evaluate_clone")
    assert not hasattr(cfg, "format_run") and cfg.seed == 0 and cfg.wandb.mode is WandbMode.offline
    with pytest.raises(ConfigCompositionException):
        compose("evaluate_clone", ["format_run=latest"])


@pytest.mark.parametrize(
    "override",
    [
        "method.r=8",
        "method.alpha=16",
        "method.target_modules=[q_proj]",
        "method.quant_type=nf4",
        "method.double_quant=true",
        "method.compute_dtype=bfloat16",
    ],
)
def test_method_full_refuses_the_adapter_and_quantization_keys(override):
    key, value = override.split("=")
    with pytest.raises(ChatcloneError, match=rf"^{key}=.*method=full|^{key}=.*QLoRA setting") as error:
        compose("train", ["method=full", override]).check()
    assert "\n" not in str(error.value) and value.strip("[]") in str(error.value).lower()


@pytest.mark.parametrize(
    "override", ["method.quant_type=fp4", "method.double_quant=false", "method.compute_dtype=bfloat16"]
)
def test_method_lora_refuses_the_qlora_keys(override):
    with pytest.raises(ChatcloneError, match=rf"^{override.split('=')[0]}=.*QLoRA setting.*method=lora"):
        compose("train", ["method=lora", override]).check()


@pytest.mark.parametrize(
    "overrides",
    [
        ["method=full"],
        ["method=full", "preset=regularized"],
        ["method=lora"],
        ["method=qlora"],
        ["method=qlora", "method.quant_type=fp4", "method.r=8"],
    ],
)
def test_each_method_as_shipped_passes(overrides):
    compose("train", overrides).check()


def test_qlora_needs_its_keys():
    with pytest.raises(ChatcloneError, match=r"^method.quant_type: is None"):
        compose("train", ["method=qlora", "method.quant_type=null"]).check()


@pytest.mark.parametrize("script", CLONE_SCRIPTS)
@pytest.mark.parametrize("override", ["sampling.temperature=0.5", "sampling.top_p=0.9", "sampling.top_k=40"])
def test_greedy_refuses_the_sampling_keys(script, override):
    key = override.split("=")[0]
    with pytest.raises(ChatcloneError, match=rf"^{key}=\S+: greedy decoding \(sampling.do_sample=false\)"):
        compose(script, ["sampling=greedy", override]).sampling.check()


def test_greedy_as_shipped_passes_and_do_sample_false_with_a_temperature_is_refused():
    for script in CLONE_SCRIPTS:
        compose(script, ["sampling=greedy", "sampling.repetition_penalty=1.0"]).sampling.check()
    with pytest.raises(ChatcloneError, match=r"^sampling.temperature=0.7: greedy"):
        compose("inference", ["sampling=focused", "sampling.do_sample=false"]).sampling.check()
    compose("inference", ["sampling.do_sample=false"]).sampling.check()  # default's values are the keys' "off"
    compose("inference", ["sampling.temperature=0"]).sampling.check()  # temperature 0: greedy, as documented


# --- W&B (chatclone/wandb_runs.py) ----------------------------------------------------------------------------------

WANDB_ENV = (
    "WANDB_MODE",
    "WANDB_DIR",
    "WANDB_PROJECT",
    "WANDB_ENTITY",
    "WANDB_TAGS",
    "WANDB_SILENT",
    "WANDB_CONSOLE",
    "WANDB_DISABLE_CODE",
    "WANDB_LOG_MODEL",
    "WANDB_WATCH",
)


def test_trainer_environment_offline_and_disabled(tmp_path, monkeypatch):
    for name in WANDB_ENV:
        monkeypatch.delenv(name, raising=False)
    assert wandb_runs.trainer_report_to(WandbConfig(mode=WandbMode.disabled), tmp_path) == ["none"]
    assert os.environ["WANDB_MODE"] == "disabled" and "WANDB_DIR" not in os.environ
    cfg = WandbConfig(mode=WandbMode.offline, entity="me", tags=["a", "b"])
    assert wandb_runs.trainer_report_to(cfg, tmp_path) == ["wandb"]
    assert {k: os.environ.get(k) for k in WANDB_ENV} == {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(tmp_path),
        "WANDB_PROJECT": "chatclone",
        "WANDB_ENTITY": "me",
        "WANDB_TAGS": "a,b",
        "WANDB_SILENT": "true",
        "WANDB_CONSOLE": "off",
        "WANDB_DISABLE_CODE": "true",
        "WANDB_LOG_MODEL": "false",
        "WANDB_WATCH": "false",
    }


def test_text_only_with_log_samples_and_sweep_jobs_grouped(tmp_path):
    columns = ["speaker", "text", "tokens", "prompt"]
    assert wandb_runs.numbers_only(columns, ("text", "prompt"), WandbConfig()) == ["speaker", "tokens"]
    assert wandb_runs.numbers_only(columns, ("text", "prompt"), WandbConfig(log_samples=True)) == columns
    assert wandb_runs.sweep_group(tmp_path / "inference" / "multirun" / "2026-01-01" / "3") == "2026-01-01"
    assert wandb_runs.sweep_group(tmp_path / "inference" / "2026-01-01") is None


# --- sweep tables (chatclone/sweeps.py) -----------------------------------------------------------------------------


def fake_job(sweep: Path, name: str, files: dict[str, str], overrides: str = "") -> None:
    (sweep / name / ".hydra").mkdir(parents=True)
    (sweep / name / ".hydra" / "overrides.yaml").write_text(overrides, encoding="utf-8")
    for file, text in files.items():
        (sweep / name / file).write_text(text, encoding="utf-8")


def test_generation_sweep_table(tmp_path):
    row = {"sampling": "default", "temperature": 0.3, "speaker": "Tamsin", "tokens": 4, "text": "a|b\nc"}
    fake_job(
        tmp_path,
        "0",
        {"manifest.json": "{}", "generations.jsonl": json.dumps(row) + "\n"},
        "- prompt=hey\n- sampling.temperature=0.3\n",
    )
    fake_job(tmp_path, "1", {})
    md = sweeps.write_sweep_table(tmp_path, sweeps.GENERATIONS).read_text(encoding="utf-8")
    assert md.startswith(f"# sweep {tmp_path.name}: 1 generations from 1 finished jobs")
    assert "| 0 | sampling.temperature=0.3 | default | 0.3 |" in md and "a\\|b ⏎ c" in md
    assert "Unfinished or failed jobs (no manifest.json or generations.jsonl): 1" in md
    assert (tmp_path / sweeps.TABLE_CSV).read_text(encoding="utf-8").splitlines()[0].startswith("job,overrides,")
    assert not list(tmp_path.glob(".*.tmp"))


def test_evaluation_sweep_table_through_the_callback(tmp_path, capsys):
    from omegaconf import OmegaConf

    metrics = {"sampling": {"name": "greedy", "temperature": 1.0}, "headline": {"perplexity_fine_tuned": 12.3456}}
    fake_job(
        tmp_path,
        "0",
        {"manifest.json": json.dumps({"config": {"checkpoint": "final"}}), "metrics.json": json.dumps(metrics)},
        "- sampling=greedy\n",
    )
    callback = sweeps.SweepTableCallback(table=sweeps.EVALUATIONS)
    callback.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert capsys.readouterr().out == f"sweep table: {tmp_path / sweeps.TABLE_MD}\n"
    md = (tmp_path / sweeps.TABLE_MD).read_text(encoding="utf-8")
    assert md.startswith(f"# evaluate_clone sweep {tmp_path.name}: 1 finished jobs")
    assert "| 0 | sampling=greedy | final | greedy | 1 |" in md and "| 12.35 |" in md
    assert not list(tmp_path.glob(".*.tmp"))
