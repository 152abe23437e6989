"""How a run fits its dataset: the dataset run's split sizes checked before anything loads, and the step settings
(epochs, logging, evaluation) adapted to tiny datasets, so that a short run still trains and draws a loss curve.

One server channel makes one conversation: no validation split, a handful of target turns, one optimizer step an
epoch. The config's values stay as given (the manifest records them); what the run really uses is a `Schedule`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from chatclone import runs
from chatclone.config.train import Strategy, TrainConfig, TrainerConfig
from chatclone.errors import ChatcloneError


@dataclass
class DatasetSizes:
    """What the tokenize_dataset run says about its splits (None: an older run that did not record it)."""

    validation_sequences: int | None
    target_turns: int | None  # trained target turns in the train split


@dataclass
class Schedule:
    """The step settings this run trains with: the config's, adapted to the dataset's size."""

    steps_per_epoch: int
    total_steps: int
    epochs: float
    logging_steps: int
    eval_steps: int
    save_steps: int
    notes: list[str] = field(default_factory=list)


def read_sizes(data_dir: Path) -> DatasetSizes:
    splits = runs.read_manifest(data_dir).get("summary", {}).get("splits", {})
    stats_path = Path(data_dir) / "stats.json"
    stats = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.is_file() else {}
    return DatasetSizes(
        validation_sequences=splits.get("validation", {}).get("sequences"),
        target_turns=stats.get("splits", {}).get("train", {}).get("target_turns_trained"),
    )


def check_sizes(cfg: TrainConfig, sizes: DatasetSizes, data_dir: Path) -> list[str]:
    """Fail (one line, before any model loads) when the run must evaluate on an empty validation split;
    the warnings for a dataset too small to learn a style from."""
    strategy = cfg.trainer.eval_strategy
    if strategy is not Strategy.no and sizes.validation_sequences == 0:
        preset = f" (preset={cfg.preset})" if cfg.preset != "default" else ""
        raise ChatcloneError(
            f"the validation split is empty, but trainer.eval_strategy={strategy.value}{preset} measures validation "
            "loss on it: rerun process_messages with a shorter segmentation.session_gap_minutes (e.g. 20: more, "
            "shorter conversations, one in ten held out) or split=random, then tokenize_dataset; or train without "
            "validation (preset=overfit or trainer.eval_strategy=no)",
            path=data_dir,
        )
    turns = sizes.target_turns
    if turns is not None and turns < cfg.min_target_turns:
        return [
            f"the train split has only {turns} target turns (min_target_turns={cfg.min_target_turns}): too few "
            "to learn a style from; the clone will mostly repeat these lines. Export more of the target's "
            "history (more channels, a longer period) for a real clone"
        ]
    return []


def schedule(t: TrainerConfig, train_sequences: int, world_size: int = 1) -> Schedule:
    """Steps an epoch as the Trainer counts them, then: epochs up to `min_steps` steps (epoch-based runs only),
    logging every max(1, min(logging_steps, total // curve_points)) steps, and evaluation (eval_strategy=steps)
    that would never happen brought inside the run."""
    batches = math.ceil(math.ceil(train_sequences / world_size) / t.batch_size)
    per_epoch = max(math.ceil(batches / t.gradient_accumulation_steps), 1)
    epochs, notes = t.epochs, []
    if t.max_steps <= 0 and t.min_steps and math.ceil(t.epochs * per_epoch) < t.min_steps:
        epochs = math.ceil(t.min_steps / per_epoch)
        notes.append(
            f"{train_sequences} training sequences make {per_epoch} optimizer step(s) an epoch: "
            f"trainer.epochs {t.epochs:g} -> {epochs} (trainer.min_steps={t.min_steps})"
        )
    total = t.max_steps if t.max_steps > 0 else math.ceil(epochs * per_epoch)
    logging = max(1, min(t.logging_steps, total // t.curve_points)) if t.curve_points else t.logging_steps
    if logging != t.logging_steps:
        notes.append(
            f"trainer.logging_steps {t.logging_steps} -> {logging}: {total} steps in all "
            f"(trainer.curve_points={t.curve_points})"
        )
    eval_steps, save_steps = t.eval_steps, t.save_steps
    if t.eval_strategy is Strategy.steps and t.eval_steps > total:
        eval_steps = max(1, total // max(t.curve_points, 1))
        notes.append(f"trainer.eval_steps {t.eval_steps} -> {eval_steps}: a run of {total} steps would never evaluate")
        if t.load_best_model_at_end and t.save_strategy is Strategy.steps:
            save_steps = eval_steps * (t.save_steps // t.eval_steps)
            notes.append(f"trainer.save_steps {t.save_steps} -> {save_steps}: the best model is a saved checkpoint")
    return Schedule(per_epoch, total, epochs, logging, eval_steps, save_steps, notes)
