"""evaluate_clone end to end on a tiny trained model, bad inputs (one line, before any model loads), config
composition, the sweep table and the scoring at the end of training."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

import chatclone.config  # noqa: F401
from chatclone import runs
from chatclone.errors import ChatcloneError
from chatclone.stages.evaluate_clone import evaluate_clone
from chatclone.sweeps import EVALUATIONS, write_sweep_table
from tests.conftest import compose, quiet, run_script

FAST = ["eval.max_contexts=3", "sampling.max_new_tokens=4", "wandb.mode=disabled"]


@pytest.fixture(scope="module")
def trained(dm_tokenized, tiny_llama, tmp_path_factory) -> Path:
    """An outputs_root holding the tiny DM dataset and a 2-step LoRA train run of tiny_llama on it."""
    from chatclone.stages.train import train
    from tests.test_train import tiny_overrides

    root = tmp_path_factory.mktemp("eval-outputs")
    for stage in ("process_messages", "tokenize_dataset"):
        shutil.copytree(dm_tokenized / stage, root / stage)
    _repoint(
        root / "tokenize_dataset" / "run", dm_tokenized / "process_messages" / "run", root / "process_messages" / "run"
    )
    cfg = compose("train", tiny_overrides(root, tiny_llama, "trainer.max_steps=2", "trainer.learning_rate=5e-2"))
    train(cfg, root / "train" / "run", console=quiet())
    return root


def _repoint(run_dir: Path, old: Path, new: Path) -> None:
    """Make a copied run's manifest name its copied input."""
    path = run_dir / runs.MANIFEST
    path.write_text(path.read_text(encoding="utf-8").replace(str(old), str(new)), encoding="utf-8")


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("eval") / "run"
    cfg = compose(
        "evaluate_clone",
        [f"outputs_root={trained}", "eval.max_contexts=3", "sampling.max_new_tokens=4", "wandb.mode=offline"],
    )
    return out, evaluate_clone(cfg, out, console=quiet())


def test_end_to_end_writes_every_output_and_manifest_last(evaluated, trained):
    out, metrics = evaluated
    manifest = runs.read_manifest(out)
    assert manifest["stage"] == "evaluate_clone" and manifest["inputs"][0] == str(trained / "train" / "run")
    for name in ("report.md", "metrics.json", "samples.jsonl", "perplexity.png", "attribution.png", "lengths.png"):
        assert name in manifest["outputs"]
        assert (out / name).stat().st_mtime <= (out / runs.MANIFEST).stat().st_mtime
    assert all((out / p).stat().st_size > 5000 for p in ("perplexity.png", "attribution.png", "lengths.png"))
    h = manifest["summary"]
    assert h["contexts"] == 3 and len((out / "samples.jsonl").read_text().splitlines()) == 3
    assert math.isfinite(h["perplexity_base"]) and h["perplexity_fine_tuned"] != h["perplexity_base"]
    assert h["attribution_ceiling"] >= h["attribution_floor"]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| measure | base | fine-tuned | target's real replies (ceiling) | other speakers (floor) |" in report
    assert f"{h['perplexity_fine_tuned']:.2f}" in report and "What the numbers mean" in report
    assert json.loads((out / "metrics.json").read_text())["headline"] == {k: h[k] for k in metrics["headline"]}


def test_perplexity_is_the_target_turns_of_the_validation_split(evaluated, trained, tiny_llama):
    from datasets import load_from_disk

    from chatclone.metrics import load_metric
    from chatclone.metrics.scoring import score_nll
    from chatclone.modeling import load_model

    validation = load_from_disk(str(trained / "tokenize_dataset" / "run" / "dataset"))["validation"]
    examples = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in validation]
    expected = load_metric("perplexity").compute(**score_nll(load_model(tiny_llama), examples))
    base = evaluated[1]["models"]["base"]["perplexity"]
    assert base["perplexity"] == pytest.approx(expected["perplexity"], rel=1e-5)
    assert base["tokens"] == sum(sum(label != -100 for label in e["labels"]) for e in examples)


def test_wandb_gets_the_summary_but_no_reply_text(evaluated, trained):
    out, _ = evaluated
    offline = list((out / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    blob = b"".join(p.read_bytes() for p in offline[0].rglob("*") if p.is_file())
    assert b"perplexity_fine_tuned" in blob
    real = json.loads((out / "samples.jsonl").read_text(encoding="utf-8").splitlines()[0])["real"]
    assert len(real) > 8 and real.encode() not in blob


def test_bad_inputs_are_one_line_before_any_model_loads(trained, tmp_path, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("chatclone.evaluation.fidelity.load_clone", no_loading)
    (tmp_path / "unfinished").mkdir()
    empty = _run_without_validation_targets(trained, tmp_path)
    cases = {
        f"run={tmp_path / 'nope'}": "no such run dir",
        f"run={tmp_path / 'unfinished'}": "not a finished chatclone run",
        "checkpoint=best": "has no best/",
        f"run={empty}": "validation split has no target turns",
        "sampling.num_return_sequences=2": "one reply per validation context",
        "run=base": "run=base",
    }
    for i, (override, message) in enumerate(cases.items()):
        with pytest.raises(ChatcloneError, match=message):
            evaluate_clone(
                compose("evaluate_clone", [f"outputs_root={trained}", *FAST, override]),
                tmp_path / f"x{i}",
                console=quiet(),
            )
    result = run_script("evaluate_clone", f"run={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'cli'}")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


def _run_without_validation_targets(trained: Path, tmp_path: Path) -> Path:
    """A copy of the train run over a copy of its dataset whose validation split labels nothing."""
    from datasets import load_from_disk

    data = tmp_path / "tok"
    shutil.copytree(trained / "tokenize_dataset" / "run", data, ignore=shutil.ignore_patterns("dataset"))
    dataset = load_from_disk(str(trained / "tokenize_dataset" / "run" / "dataset"))
    dataset["validation"] = dataset["validation"].map(lambda r: {"labels": [-100] * len(r["labels"])})
    dataset.save_to_disk(str(data / "dataset"))
    run = tmp_path / "train-run"
    shutil.copytree(trained / "train" / "run", run)
    _repoint(run, trained / "tokenize_dataset" / "run", data)
    return run


def test_config_composes_with_the_sampling_group():
    cfg = compose("evaluate_clone", [])
    assert cfg.run == "latest" and cfg.checkpoint.value == "final" and cfg.seed == 0
    assert cfg.sampling.name == "default" and cfg.eval.max_contexts == 48 and cfg.eval.base
    greedy = compose("evaluate_clone", ["sampling=greedy", "eval.max_contexts=7", "checkpoint=best"])
    assert greedy.sampling.greedy and greedy.eval.max_contexts == 7 and greedy.checkpoint.value == "best"
    for bad in (["eval.max_contexts=many"], ["eval.no_such_key=1"], ["checkpoint=middle"]):
        with pytest.raises(Exception):
            compose("evaluate_clone", bad)
    with pytest.raises(ChatcloneError, match="eval.max_contexts=0"):
        compose("evaluate_clone", ["eval.max_contexts=0"]).check()


@pytest.mark.slow
def test_sweep_table_has_one_row_per_finished_job(evaluated, tmp_path):
    out, _ = evaluated
    for job, temperature in (("0", 0.3), ("1", 0.7)):
        shutil.copytree(out, tmp_path / job, ignore=shutil.ignore_patterns("wandb"))
        (tmp_path / job / ".hydra").mkdir()
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text(f"- sampling.temperature={temperature}\n")
        metrics = json.loads((tmp_path / job / "metrics.json").read_text())
        metrics["sampling"]["temperature"] = temperature
        (tmp_path / job / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "2" / ".hydra").mkdir(parents=True)  # a job that died before its manifest
    table = write_sweep_table(tmp_path, EVALUATIONS).read_text(encoding="utf-8")
    rows = [line for line in table.splitlines() if line.startswith("| 0 ") or line.startswith("| 1 ")]
    assert len(rows) == 2 and "sampling.temperature=0.3" in rows[0] and "| 0.7 |" in rows[1]
    assert "Unfinished or failed jobs (no manifest.json or metrics.json): 2" in table
    assert (tmp_path / "sweep_table.csv").read_text().count("\n") == 3


def test_scoring_at_the_end_of_training(trained, tmp_path):
    from chatclone.evaluation.data import load_fidelity_data
    from chatclone.evaluation.training import evaluate_after_training

    run = tmp_path / "run"
    shutil.copytree(trained / "train" / "run", run, ignore=shutil.ignore_patterns(runs.MANIFEST))
    manifest = runs.read_manifest(trained / "train" / "run")
    data_dir = Path(manifest["inputs"][0])
    cfg = compose(
        "train",
        [
            f"outputs_root={trained}",
            "eval.fidelity=true",
            "eval.max_contexts=2",
            "eval.base=false",
            "trainer.seed=1",
            "wandb.mode=disabled",
        ],
    )
    settings = cfg.eval
    assert len(load_fidelity_data(data_dir, settings.max_contexts).contexts) == 2
    headline = evaluate_after_training(
        cfg, run, data_dir, manifest["summary"]["base_model"], manifest["summary"]["model"], quiet()
    )
    assert "perplexity_fine_tuned" in headline and "perplexity_base" not in headline
    assert (run / "fidelity" / "report.md").is_file() and not (run / runs.MANIFEST).exists()


def test_train_py_eval_fidelity_true(trained, tiny_llama, tmp_path):
    from chatclone.stages.train import train
    from tests.test_train import tiny_overrides

    bad = compose("train", tiny_overrides(trained, tiny_llama, "eval.fidelity=true", "eval.max_contexts=0"))
    with pytest.raises(ChatcloneError, match="eval.max_contexts=0"):
        train(bad, tmp_path / "bad", console=quiet())
    assert not (tmp_path / "bad").exists()  # refused before the run dir was made
    cfg = compose(
        "train",
        tiny_overrides(
            trained, tiny_llama, "trainer.max_steps=1", "eval.fidelity=true", "eval.max_contexts=2", "eval.base=false"
        ),
    )
    train(cfg, tmp_path / "run", console=quiet())
    summary = runs.read_manifest(tmp_path / "run")["summary"]
    assert "fidelity" in runs.read_manifest(tmp_path / "run")["outputs"]
    assert summary["metrics"]["fidelity"]["contexts"] == 2 and (tmp_path / "run" / "fidelity" / "report.md").is_file()
