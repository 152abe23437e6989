"""train on small data: one server channel (an empty validation split, a handful of target turns, one step an
epoch), the disk a run takes, and resume= on the resumed run's own dataset. Tiny random models, a few steps."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from chatclone import runs
from chatclone.config.train import Strategy
from chatclone.errors import ChatcloneError
from chatclone.stages.process_messages import process_messages
from chatclone.stages.tokenize_dataset import tokenize_dataset
from chatclone.stages.train import train
from chatclone.training.reporting import disk_usage
from chatclone.training.sizing import schedule
from tests.conftest import GUILD, ROOT, TARGET_USERNAME, compose, quiet, run_script

GUILD_EXPORT = ROOT / "examples" / "sample_exports" / f"{GUILD}.json"


def outputs_for(root: Path, model: Path, *process_overrides: str) -> Path:
    """`python process_messages.py input=<the server channel> target=tamsin.vale ...` then
    `python tokenize_dataset.py model.name_or_path=<model>`, into outputs_root=root."""
    process_messages(
        compose(
            "process_messages",
            [
                f"input=['{GUILD_EXPORT}']",
                f"target={TARGET_USERNAME}",
                "progress=false",
                f"outputs_root={root}",
                *process_overrides,
            ],
        ),
        root / "process_messages" / "run",
        console=quiet(),
    )
    tokenize_dataset(
        compose(
            "tokenize_dataset", [f"model.name_or_path={model}", "progress=false", "num_proc=1", f"outputs_root={root}"]
        ),
        root / "tokenize_dataset" / "run",
        console=quiet(),
    )
    return root


@pytest.fixture(scope="module")
def weightless(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_llama's tokenizer and config without its weights: a run that loads the model fails at once."""
    folder = tmp_path_factory.mktemp("weightless") / "llama"
    shutil.copytree(tiny_llama, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    return folder


@pytest.fixture(scope="module")
def one_channel(weightless: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled server channel as process_messages makes it by default: one conversation, no validation."""
    return outputs_for(tmp_path_factory.mktemp("one-channel"), weightless)


@pytest.fixture(scope="module")
def split_channel(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same channel after the error's advice: segmentation.session_gap_minutes=20 (3 conversations)."""
    return outputs_for(tmp_path_factory.mktemp("split-channel"), tiny_llama, "segmentation.session_gap_minutes=20")


def printed() -> Console:
    return Console(file=io.StringIO(), width=400)


def small(root: Path, model: Path, *more: str) -> list[str]:
    """A user's overrides on small data: no logging_steps/save settings, so the defaults' adaptations show
    (samples while training off: an untrained tiny model answers each with max_new_tokens of nonsense)."""
    return [
        f"outputs_root={root}",
        f"model.name_or_path={model}",
        "wandb.mode=disabled",
        "eval.sample_contexts=0",
        *more,
    ]


# --- 4. small data ---------------------------------------------------------------------------------------------


def test_regularized_on_one_channel_fails_before_loading_the_model(one_channel, weightless, tmp_path):
    """The model has no weights: a check after loading would fail in transformers, not with this line."""
    summary = runs.read_manifest(one_channel / "tokenize_dataset" / "run")["summary"]
    assert summary["splits"]["validation"]["sequences"] == 0
    with pytest.raises(ChatcloneError) as info:
        train(compose("train", small(one_channel, weightless, "preset=regularized")), tmp_path / "run", console=quiet())
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(one_channel / "tokenize_dataset" / "run"))
    assert "validation split is empty" in message and "trainer.eval_strategy=epoch (preset=regularized)" in message
    assert "segmentation.session_gap_minutes" in message and "split=random" in message
    assert "preset=overfit or trainer.eval_strategy=no" in message
    assert not (tmp_path / "run" / "run_info.json").exists()
    # evaluation asked for directly, without the preset, is refused the same way
    with pytest.raises(ChatcloneError, match=r"trainer.eval_strategy=steps measures validation loss"):
        train(
            compose("train", small(one_channel, weightless, "trainer.eval_strategy=steps")),
            tmp_path / "run2",
            console=quiet(),
        )


def test_the_script_prints_one_line_and_exits_2(one_channel, weightless, tmp_path):
    result = run_script(
        "train", "preset=regularized", *small(one_channel, weightless, f"hydra.run.dir={tmp_path / 'run'}"), timeout=300
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "validation split is empty" in errors[0] and "session_gap_minutes" in errors[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_following_the_advice_trains_and_names_the_best_checkpoint(split_channel, tiny_llama, tmp_path, capsys):
    """preset=regularized with method=full on the re-split channel: it trains, logs every step (10 steps: one an
    epoch), keeps at most 2 checkpoints (the best among them) and prints which checkpoint is best/."""
    console = printed()
    cfg = compose(
        "train",
        small(
            split_channel,
            tiny_llama,
            "preset=regularized",
            "method=full",
            "trainer.learning_rate=3e-3",
            "trainer.early_stopping_patience=null",
        ),
    )
    assert cfg.trainer.logging_steps == 5 and cfg.trainer.save_total_limit == 2
    metrics = train(cfg, tmp_path / "run", console=console)
    plan = metrics["schedule"]
    assert plan.steps_per_epoch == 1 and plan.total_steps == 10 and plan.logging_steps == 1
    assert [e["step"] for e in metrics["log_history"] if "loss" in e] == list(range(1, 11))
    assert len([e for e in metrics["log_history"] if "eval_loss" in e]) >= 10
    best = Path(metrics["best_checkpoint"])
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    assert best.name in kept and len(kept) <= 2 and "checkpoint-10" in kept, kept
    out = console.file.getvalue()
    assert f"best checkpoint: {best.name} (validation loss {metrics['best_metric']:.4f}), saved as best/" in out
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    summary = runs.read_manifest(tmp_path / "run")["summary"]
    assert summary["metrics"]["best_checkpoint"] == best.name
    assert summary["metrics"]["best_eval_loss"] == pytest.approx(metrics["best_metric"])
    assert "trainer.logging_steps 5 -> 1" in capsys.readouterr().err


def test_few_target_turns_warn_with_the_count(split_channel, tiny_llama, tmp_path, capsys):
    turns = json.loads((split_channel / "tokenize_dataset" / "run" / "stats.json").read_text())["splits"]["train"][
        "target_turns_trained"
    ]
    cfg = compose("train", small(split_channel, tiny_llama, "trainer.max_steps=1"))
    assert cfg.min_target_turns == 300 > turns
    train(cfg, tmp_path / "run", console=quiet())
    err = capsys.readouterr().err
    assert f"warning: the train split has only {turns} target turns (min_target_turns=300)" in err
    warnings = runs.read_manifest(tmp_path / "run")["summary"]["warnings"]
    assert len(warnings) == 1 and f"only {turns} target turns" in warnings[0]
    train(
        compose("train", small(split_channel, tiny_llama, "trainer.max_steps=1", f"min_target_turns={turns}")),
        tmp_path / "enough",
        console=quiet(),
    )
    assert "target turns" not in capsys.readouterr().err
    assert runs.read_manifest(tmp_path / "enough")["summary"]["warnings"] == []


def test_a_tiny_dataset_trains_min_steps_epochs(dm_tokenized, tiny_llama, tmp_path, capsys):
    """`python train.py` on the bundled DM: 1 optimizer step an epoch, so 3 epochs become 10 and every step logs."""
    metrics = train(compose("train", small(dm_tokenized, tiny_llama)), tmp_path / "run", console=quiet())
    assert metrics["global_step"] == 10 and metrics["schedule"].epochs == 10
    assert [e["step"] for e in metrics["log_history"] if "loss" in e] == list(range(1, 11))
    err = capsys.readouterr().err
    assert "trainer.epochs 3 -> 10 (trainer.min_steps=10)" in err and "trainer.logging_steps 5 -> 1" in err
    assert runs.read_manifest(tmp_path / "run")["summary"]["schedule"]["epochs"] == 10


def test_schedule_adapts_only_what_a_short_run_needs():
    t = compose("train", []).trainer
    big = schedule(t, train_sequences=8000)  # 8000 / 4 / 2 = 1000 steps an epoch: nothing changes
    assert (big.steps_per_epoch, big.total_steps, big.epochs, big.logging_steps, big.notes) == (1000, 3000, 3, 5, [])
    mid = schedule(t, train_sequences=240)  # 30 steps an epoch, 90 in all: logging every 5 still gives 18 points
    assert (mid.total_steps, mid.logging_steps, mid.notes) == (90, 5, [])
    short = schedule(t, train_sequences=40)  # 5 steps an epoch, 15 in all: log every step
    assert (short.epochs, short.total_steps, short.logging_steps) == (3, 15, 1)
    assert schedule(t, train_sequences=40, world_size=2).steps_per_epoch == 3  # 20 a process: 5 batches, 3 steps
    t.max_steps = 4  # an explicit step budget is never stretched
    assert schedule(t, train_sequences=4).total_steps == 4
    t.max_steps, t.min_steps, t.curve_points = -1, 0, 0  # 0 = as given
    as_given = schedule(t, train_sequences=4)
    assert (as_given.epochs, as_given.total_steps, as_given.logging_steps, as_given.notes) == (3, 3, 5, [])
    t.min_steps, t.curve_points = 10, 10
    t.eval_strategy = t.save_strategy = Strategy.steps
    t.load_best_model_at_end, t.eval_steps, t.save_steps = True, 50, 100
    never = schedule(t, train_sequences=4)  # eval every 50 steps in a 10-step run: never; brought inside
    assert (never.eval_steps, never.save_steps) == (1, 2)
    t.eval_steps, t.save_steps = 2, 2  # an interval inside the run is kept
    assert (schedule(t, train_sequences=4).eval_steps, schedule(t, train_sequences=4).save_steps) == (2, 2)


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["trainer.curve_points=-1"], "trainer.curve_points"),
        (["trainer.min_steps=-1"], "trainer.min_steps"),
        (["min_target_turns=-5"], "min_target_turns"),
        (["trainer.save_steps=0"], "trainer.save_steps"),
        (["trainer.save_total_limit=0"], "trainer.save_total_limit: must be at least 1"),
        (["preset=regularized", "trainer.save_total_limit=1"], "trainer.save_total_limit: must be at least 2"),
        (
            [
                "preset=regularized",
                "trainer.eval_strategy=steps",
                "trainer.save_strategy=steps",
                "trainer.eval_steps=3",
                "trainer.save_steps=4",
            ],
            "trainer.save_steps: must be a multiple of trainer.eval_steps",
        ),
    ],
)
def test_bad_size_and_save_settings_name_the_key(overrides, key):
    with pytest.raises(ChatcloneError, match=key):
        compose("train", overrides).check()


# --- 5. disk ---------------------------------------------------------------------------------------------------


def test_full_fine_tune_checkpoints_are_capped_and_the_disk_is_reported(dm_tokenized, tiny_llama, tmp_path):
    """method=full saving every step: the default cap keeps 2 checkpoints; the summary prints the run dir's size."""
    cfg = compose(
        "train", small(dm_tokenized, tiny_llama, "method=full", "trainer.max_steps=5", "trainer.save_steps=1")
    )
    assert cfg.trainer.save_strategy is Strategy.steps and cfg.trainer.save_total_limit == 2
    console = printed()
    train(cfg, tmp_path / "run", console=console)
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    assert kept == ["checkpoint-4", "checkpoint-5"]
    disk = runs.read_manifest(tmp_path / "run")["summary"]["disk"]
    on_disk = sum(p.stat().st_size for p in (tmp_path / "run").rglob("*") if p.is_file() and p.name != "manifest.json")
    assert disk["run_dir_bytes"] == on_disk and disk["checkpoints_kept"] == 2
    assert disk["checkpoints_bytes"] == disk_usage(tmp_path / "run" / "checkpoints") > 0
    line = next(line for line in console.file.getvalue().splitlines() if line.startswith("disk: "))
    assert f"in {tmp_path / 'run'} (checkpoints/ " in line and "2 kept, trainer.save_total_limit=2)" in line
    assert line.split()[2] in ("kB", "MB")


def test_checkpoints_by_steps_by_default():
    cfg = compose("train", [])
    assert cfg.trainer.save_strategy is Strategy.steps and cfg.trainer.save_steps == 100
    assert cfg.trainer.save_total_limit == 2
    assert compose("train", ["preset=overfit"]).trainer.save_strategy is Strategy.steps
    assert compose("train", ["preset=regularized"]).trainer.save_total_limit == 2


# --- 6. resume ---------------------------------------------------------------------------------------------------


@pytest.fixture
def two_datasets(dm_tokenized: Path, tiny_llama: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """outputs_root with dataset A, a train run over A that saved checkpoint-2 and -4, and a newer dataset B."""
    root = tmp_path / "outputs"
    first = root / "tokenize_dataset" / "a"
    shutil.copytree(dm_tokenized / "tokenize_dataset" / "run", first)
    cfg = compose(
        "train", small(root, tiny_llama, "trainer.max_steps=4", "trainer.save_steps=2", "trainer.logging_steps=1")
    )
    train(cfg, root / "train" / "old", console=quiet())
    newer = root / "tokenize_dataset" / "b"
    shutil.copytree(first, newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["finished_at"] = "9999-01-01T00:00:00+00:00"  # B is now `latest`
    (newer / "manifest.json").write_text(json.dumps(manifest))
    assert runs.latest_run(root, "tokenize_dataset") == newer
    return root, first, newer


def resume_overrides(root: Path, model: Path, *more: str) -> list[str]:
    return small(
        root, model, "trainer.max_steps=6", "trainer.logging_steps=1", f"resume={root / 'train' / 'old'}", *more
    )


def test_resume_continues_on_the_runs_own_dataset(two_datasets, tiny_llama, tmp_path):
    """`python train.py resume=outputs/train/old`: dataset A, although B is newer (it used to take `latest`)."""
    root, first, _ = two_datasets
    metrics = train(compose("train", resume_overrides(root, tiny_llama)), tmp_path / "resumed", console=quiet())
    assert metrics["global_step"] == 6
    assert [e["step"] for e in metrics["log_history"] if "loss" in e] == list(range(1, 7))
    manifest = runs.read_manifest(tmp_path / "resumed")
    assert manifest["inputs"] == [str(first.resolve()), str((root / "train" / "old").resolve())]
    assert json.loads((tmp_path / "resumed" / "run_info.json").read_text())["dataset"] == str(first.resolve())


@pytest.mark.parametrize("spelling", ["absolute", "relative", "trailing slash"])
def test_resume_accepts_the_same_dataset_however_it_is_spelled(two_datasets, tiny_llama, tmp_path, spelling):
    root, first, _ = two_datasets
    given = {"absolute": str(first), "relative": os.path.relpath(first), "trailing slash": f"{first}/"}[spelling]
    if spelling == "relative":  # a run from before this change recorded the path as it was given
        info_path = root / "train" / "old" / "run_info.json"
        info = json.loads(info_path.read_text())
        info_path.write_text(json.dumps({**info, "dataset": os.path.relpath(first)}))
    metrics = train(
        compose("train", resume_overrides(root, tiny_llama, f"input={given}")), tmp_path / "resumed", console=quiet()
    )
    assert metrics["global_step"] == 6


def test_resume_on_another_dataset_is_refused_in_one_line(two_datasets, tiny_llama, tmp_path):
    root, first, newer = two_datasets
    with pytest.raises(ChatcloneError) as info:
        train(
            compose("train", resume_overrides(root, tiny_llama, f"input={newer}")),
            tmp_path / "resumed",
            console=quiet(),
        )
    message = str(info.value)
    assert "\n" not in message and message.startswith(str((root / "train" / "old").resolve()))
    assert f"that run trained on {first.resolve()}, not input={newer}" in message and "drop input=" in message
    assert not (tmp_path / "resumed" / "run_info.json").exists()
