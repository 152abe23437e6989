"""W&B for every stage, in one place: the environment a run starts in (quiet, no code or model upload), its mode
(offline by default: files in the run dir, `wandb sync` later; online; disabled), the rule that chat text (generated
or real) reaches W&B only with `wandb.log_samples=true`, and the grouping of a sweep's jobs (`-m`: one W&B group per
sweep dir).

train.py hands W&B to the Trainer (`trainer_report_to` sets the environment it reads); the generation scripts and
evaluate_clone start their own run (`start_run`). Each stage decides what it logs; `text_allowed` and
`numbers_only` decide whether text may be in it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from chatclone.config.wandb_config import WandbConfig, WandbMode

# Every run: no progress chatter on the console, no console capture, no copy of the code.
QUIET = {"WANDB_SILENT": "true", "WANDB_CONSOLE": "off", "WANDB_DISABLE_CODE": "true"}
# The Trainer's own W&B integration: never upload the model, never watch gradients.
TRAINER = {"WANDB_LOG_MODEL": "false", "WANDB_WATCH": "false"}
MULTIRUN = "multirun"  # Hydra's sweep dirs are <outputs_root>/<stage>/multirun/<time>/<job>


def enabled(cfg: WandbConfig) -> bool:
    return cfg.mode is not WandbMode.disabled


def text_allowed(cfg: WandbConfig) -> bool:
    """Chat text (replies, prompts, real messages) may go to W&B only when the user opted in."""
    return cfg.log_samples


def numbers_only(columns: Iterable[str], text_columns: Iterable[str], cfg: WandbConfig) -> list[str]:
    """`columns` without the text ones, unless the user opted in to text."""
    text = set(text_columns)
    return [c for c in columns if text_allowed(cfg) or c not in text]


def sweep_group(run_dir: Path) -> str | None:
    """The W&B group of a sweep job (its sweep dir's name); None for a single run."""
    run_dir = Path(run_dir)
    return run_dir.parent.name if run_dir.parent.parent.name == MULTIRUN else None


def trainer_report_to(cfg: WandbConfig, run_dir: Path) -> list[str]:
    """Set W&B's environment for the Trainer's integration; the Trainer's `report_to` list."""
    if "wandb" in sys.modules:  # an earlier run in this process fixed W&B's settings: reset them
        sys.modules["wandb"].teardown()
    if not enabled(cfg):
        os.environ["WANDB_MODE"] = "disabled"
        return ["none"]
    env = {"WANDB_MODE": cfg.mode.value, "WANDB_DIR": str(run_dir), "WANDB_PROJECT": cfg.project, **QUIET, **TRAINER}
    if cfg.entity:
        env["WANDB_ENTITY"] = cfg.entity
    if cfg.tags:
        env["WANDB_TAGS"] = ",".join(cfg.tags)
    os.environ.update(env)
    return ["wandb"]


def start_run(cfg: WandbConfig, run_dir: Path, job_type: str, config: dict, **init: Any) -> Any:
    """A new W&B run for this run dir (named after it, grouped by sweep); the caller checks `enabled` first."""
    import wandb

    os.environ.update(QUIET)
    return wandb.init(
        mode=cfg.mode.value,
        dir=str(run_dir),
        project=cfg.project,
        entity=cfg.entity,
        tags=list(cfg.tags) or None,
        group=sweep_group(run_dir),
        job_type=job_type,
        name=Path(run_dir).name,
        config=config,
        **init,
    )


def active_run() -> Any:
    """The W&B run this process already has open (train.py's, via the Trainer), or None."""
    if "wandb" not in sys.modules:
        return None
    return sys.modules["wandb"].run


def finish(summary: dict) -> None:
    """Close the open W&B run (flushing it to disk when offline), with the run's headline numbers in its summary."""
    run = active_run()
    if run is not None:
        run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
        sys.modules["wandb"].finish()


def config_callback(config: dict) -> Any:
    """A Trainer callback adding chatclone's own config (not just TrainingArguments) to the W&B run."""
    from transformers import TrainerCallback

    class LogConfig(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            import wandb

            if state.is_world_process_zero and wandb.run is not None:
                wandb.config.update({"chatclone": config}, allow_val_change=True)

    return LogConfig()
