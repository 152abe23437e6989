"""What a training run reports besides W&B (chatclone/wandb_runs.py): the disk its run dir takes and a loss-curve
PNG."""

from __future__ import annotations

from pathlib import Path


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


MARKERS_UP_TO = 40  # logged points at most for which each point gets a marker (more: a plain line reads better)


def plot_loss_curves(log_history: list[dict], path: Path, title: str) -> Path | None:
    """Training and validation loss against step, for users without W&B; None when nothing was logged. When the
    run kept a best/ (it sits next to `path`, in the run dir), its step is marked on the validation curve."""
    best = best_step(log_history) if (Path(path).parent / "best").is_dir() else None
    fig = loss_figure(log_history, title, best)
    if fig is None:
        return None
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def training_entries(log_history: list[dict]) -> list[dict]:
    """The log entries of training itself: up to the Trainer's end-of-training summary (`train_runtime`). An
    evaluation logged after it (train.py's final evaluate(), of the model as training left it: the best one when
    best/ is kept) is not a point of the curve: it would repeat the best loss at the last step."""
    ends = [i for i, e in enumerate(log_history) if "train_runtime" in e]
    return log_history[: ends[-1] + 1] if ends else list(log_history)


def best_step(log_history: list[dict]) -> int | None:
    """The step of the lowest validation loss during training, the first of equal ones (the Trainer replaces its
    best checkpoint only on a strictly lower eval_loss); None without evaluations."""
    evals = [(e["step"], e["eval_loss"]) for e in training_entries(log_history) if "eval_loss" in e]
    return min(evals, key=lambda e: e[1])[0] if evals else None


def loss_figure(log_history: list[dict], title: str, best: int | None = None):
    """The loss-curve figure (None when nothing was logged): whole-number step ticks, a marker on every point when
    there are few, and a star on the validation loss at step `best`."""
    entries = training_entries(log_history)
    train = [(e["step"], e["loss"]) for e in entries if "loss" in e and "step" in e]
    evals = [(e["step"], e["eval_loss"]) for e in entries if "eval_loss" in e]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4))
    for points, label, style in ((train, "train loss", "-"), (evals, "validation loss", "--")):
        if points:
            ax.plot(
                *zip(*points),
                style,
                marker="o" if len(points) <= MARKERS_UP_TO else None,
                markersize=4,
                label=f"{label} ({len(points)} point{'s' if len(points) != 1 else ''})",
            )
    at_best = [loss for step, loss in evals if step == best]
    if at_best:
        ax.plot(
            [best],
            at_best[:1],
            linestyle="none",
            marker="*",
            markersize=16,
            color="gold",
            markeredgecolor="black",
            label=f"best/ (step {best}, validation loss {at_best[0]:.3f})",
            zorder=3,
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig
