"""train.py's `eval.fidelity=true`: the same scoring as evaluate_clone.py, run on the train run as it ends (before
its manifest.json), written into <train run>/fidelity/; its headline numbers join the run's summary and W&B run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from chatclone.config.fidelity import FidelityConfig
from chatclone.config.generation import Checkpoint, SamplingConfig
from chatclone.evaluation.data import FidelityData, load_fidelity_data
from chatclone.generation.clone import clone_spec

FIDELITY_DIR = "fidelity"


def evaluate_after_training(
    cfg: Any,
    run_dir: Path,
    data_dir: Path,
    base: str,
    data_model: dict,
    console: Console,
    data: FidelityData | None = None,
) -> dict:
    """Score best/ (when the run kept one) or final/ into run_dir/fidelity/; the headline numbers. `data`: the
    validation data train.py already loaded at its start (to fail early); loaded here when not given."""
    from dataclasses import fields

    from chatclone.config.evaluate_clone import EvaluateCloneConfig
    from chatclone.evaluation.fidelity import score_fidelity
    from chatclone.evaluation.report import log_wandb, sample_rows, write_outputs

    checkpoint = Checkpoint.best if (Path(run_dir) / Checkpoint.best.value).is_dir() else Checkpoint.final
    settings = FidelityConfig(**{f.name: getattr(cfg.eval, f.name) for f in fields(FidelityConfig)})
    eval_cfg = EvaluateCloneConfig(
        run=str(run_dir),
        checkpoint=checkpoint,
        outputs_root=cfg.outputs_root,
        seed=cfg.trainer.seed,
        sampling=SamplingConfig(),
        eval=settings,
        wandb=cfg.wandb,
    )
    eval_cfg.check()
    spec = clone_spec(Path(run_dir), checkpoint, base, Path(data_dir), data_model)
    data = data if data is not None else load_fidelity_data(Path(data_dir), settings.max_contexts)
    metrics, scores = score_fidelity(spec, eval_cfg, settings, data, console, progress=console)
    out_dir = Path(run_dir) / FIDELITY_DIR
    write_outputs(out_dir, metrics, scores, data, settings.samples_in_report)
    log_wandb(cfg.wandb, out_dir, metrics, sample_rows(scores, data), {})
    console.print(f"fidelity: report in {out_dir / 'report.md'}", highlight=False)
    return metrics["headline"]
