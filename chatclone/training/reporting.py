"""What a training run reports: W&B (offline by default, never chat text unless opted in), warnings on stderr, the
disk its run dir takes, and a loss-curve PNG."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from chatclone.config.train import TrainConfig, WandbMode


def configure_wandb(cfg: TrainConfig, run_dir: Path) -> list[str]:
    """Set W&B's environment for this run; the Trainer's `report_to` list."""
    import sys

    if "wandb" in sys.modules:  # an earlier run in this process fixed W&B's settings: reset them
        sys.modules["wandb"].teardown()
    if cfg.wandb.mode is WandbMode.disabled:
        os.environ["WANDB_MODE"] = "disabled"
        return ["none"]
    env = {"WANDB_MODE": cfg.wandb.mode.value, "WANDB_DIR": str(run_dir), "WANDB_PROJECT": cfg.wandb.project,
           "WANDB_DISABLE_CODE": "true", "WANDB_LOG_MODEL": "false", "WANDB_WATCH": "false",
           "WANDB_SILENT": "true", "WANDB_CONSOLE": "off"}
    if cfg.wandb.entity:
        env["WANDB_ENTITY"] = cfg.wandb.entity
    if cfg.wandb.tags:
        env["WANDB_TAGS"] = ",".join(cfg.wandb.tags)
    os.environ.update(env)
    return ["wandb"]


def warn(text: str) -> None:
    """A warning for the user on stderr, never stdout (once under torchrun: the main process says it)."""
    import sys

    if os.environ.get("RANK", "0") == "0":
        print(f"warning: {text}", file=sys.stderr, flush=True)


def disk_usage(folder: Path) -> int:
    """Bytes in the files under `folder` (links not followed), as `du --apparent-size` counts them."""
    return sum(p.lstat().st_size for p in Path(folder).rglob("*") if p.is_file() and not p.is_symlink())


def human_bytes(size: int) -> str:
    """1234567 -> '1.2 MB' (decimal units, as disks are sold)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def chatclone_config_callback(config: dict) -> Any:
    """A Trainer callback adding chatclone's own config (not just TrainingArguments) to the W&B run."""
    from transformers import TrainerCallback

    class LogConfig(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            import wandb
            if state.is_world_process_zero and wandb.run is not None:
                wandb.config.update({"chatclone": config}, allow_val_change=True)

    return LogConfig()


def finish_wandb(summary: dict) -> None:
    """Close the W&B run (flushing it to disk when offline), with the run's headline numbers in its summary."""
    import sys

    if "wandb" not in sys.modules:
        return
    import wandb

    if wandb.run is not None:
        wandb.run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
        wandb.finish()


def plot_loss_curves(log_history: list[dict], path: Path, title: str) -> Path | None:
    """Training and validation loss against step, for users without W&B."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for points, label, style in ((train, "train loss", "-"), (evals, "validation loss", "o-")):
        if points:
            ax.plot(*zip(*points), style, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
