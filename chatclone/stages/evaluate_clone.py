"""evaluate_clone: score a train run's clone against the held-out validation split, next to the bare base model.

Everything that can be wrong with the input (no such or unfinished train run, a missing checkpoint, a validation
split without target turns, a train split the style classifier cannot learn from) fails before any model loads.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from chatclone import logs, runs
from chatclone.config.evaluate_clone import EvaluateCloneConfig
from chatclone.evaluation.data import load_fidelity_data
from chatclone.evaluation.fidelity import BASE, FINE_TUNED, LABELS, caveat, score_fidelity
from chatclone.evaluation.report import log_wandb, sample_rows, write_outputs
from chatclone.generation.clone import locate
from chatclone.metrics.rates import format_auc, format_rate
from chatclone.sweeps import EVALUATIONS, write_sweep_table

STAGE = "evaluate_clone"


def evaluate_clone(
    cfg: EvaluateCloneConfig, run_dir: Path, console: Console | None = None, sweep_dir: Path | None = None
) -> dict:
    """Write metrics.json, samples.jsonl, report.md, plots (W&B) and manifest.json into run_dir; the metrics.
    The generation progress bar draws on `console` when one is given, else on stderr (none with progress=false)."""
    bar = (console or Console(stderr=True)) if cfg.progress else None
    console = console or logs.console()
    cfg.check()
    runs.start_run(run_dir)
    spec = locate(cfg)
    data = load_fidelity_data(spec.data_dir, cfg.eval.max_contexts)
    console.print(
        f"scoring {spec.target}'s clone ({spec.kind} {spec.weights}) on {len(data.examples)} validation "
        f"sequences and {len(data.contexts)} of {data.target_turns} target turns",
        highlight=False,
    )
    metrics, scores = score_fidelity(spec, cfg, cfg.eval, data, console, progress=bar)
    outputs = write_outputs(run_dir, metrics, scores, data, cfg.eval.samples_in_report)
    outputs += log_wandb(cfg.wandb, run_dir, metrics, sample_rows(scores, data), runs.plain(cfg))
    print_summary(console, metrics, run_dir)
    runs.finish_run(
        run_dir,
        STAGE,
        cfg,
        inputs=[str(spec.run_dir), str(spec.data_dir)],
        outputs=outputs,
        summary={
            **metrics["headline"],
            "target": spec.target,
            "clone": spec.describe(),
            "checkpoint": cfg.checkpoint.value,
            "sampling": cfg.sampling.name,
        },
    )
    if sweep_dir is not None:
        write_sweep_table(sweep_dir, EVALUATIONS)
    return metrics


def print_summary(console: Console, metrics: dict, where: Path) -> None:
    """The result table: every rate with its 95 % interval and n; when the style classifier cannot tell the target
    apart, the attribution row says so (the caption gives the reasons) and no normalised score is shown."""
    names = [n for n in (BASE, FINE_TUNED) if n in metrics["models"]]
    check = metrics["attribution_check"]
    caption = None if check["separable"] else caveat(metrics["target"], check)
    table = Table(
        title=f"clone fidelity: {metrics['target']}", caption=caption, caption_justify="left", caption_style="bold"
    )
    for column in ("", *(LABELS[n] for n in names), "ceiling", "floor"):
        table.add_column(column, justify="right" if column else "left")
    m = metrics["models"]
    table.add_row("held-out perplexity", *(f"{m[n]['perplexity']['perplexity']:.2f}" for n in names), "", "")
    for row in headline_rows(metrics, names):
        table.add_row(*row)
    label = "attributed to target" + ("" if check["separable"] else " (cannot tell: see below)")
    table.add_row(
        label,
        *(format_rate(m[n]["attribution"]) for n in names),
        format_rate(metrics["ceiling"]),
        format_rate(metrics["floor"]),
    )
    if check["separable"]:
        table.add_row("normalised attribution", *(f"{m[n]['attribution']['normalised']:.2f}" for n in names), "1", "0")
    table.add_row(
        "mean reply chars",
        *(f"{m[n]['surface']['mean_chars']:.1f}" for n in names),
        f"{metrics['reference_surface']['mean_chars']:.1f}",
        "",
    )
    for row in shape_rows(metrics, names):
        table.add_row(*row)
    console.print(table)
    console.print(f"wrote report.md, metrics.json, samples.jsonl and plots into {where}", highlight=False)


def _maybe(value: dict | None, show) -> str:
    return "—" if value is None else show(value)


def headline_rows(metrics: dict, names: list[str]) -> list[tuple[str, ...]]:
    """The table rows next to perplexity: detectability (50 % = indistinguishable) and context use, per model; the
    style classifier's ROC AUC on real held-out messages (in the ceiling column: it is about the real texts)."""
    m, auc = metrics["models"], metrics.get("attribution_auc")
    rows = [
        (
            "detectability (50% = indistinguishable)",
            *(_maybe(m[n].get("detectability"), format_rate) for n in names),
            "",
            "",
        ),
        (
            "perplexity after own / another's context",
            *(
                _maybe(m[n].get("context_use"), lambda c: f"{c['perplexity_real']:.2f} / {c['perplexity_swapped']:.2f}")
                for n in names
            ),
            "",
            "",
        ),
        (
            "own context more likely",
            *(_maybe(m[n].get("context_use"), lambda c: format_rate(c["own_context_wins"])) for n in names),
            "",
            "",
        ),
    ]
    if auc is not None:
        rows.append(("style classifier ROC AUC, target vs others", *("" for _ in names), format_auc(auc), ""))
    return rows


def shape_rows(metrics: dict, names: list[str]) -> list[tuple[str, ...]]:
    """Lines per reply and assistant-isms, per model and for the target's real replies (the ceiling column)."""
    m, real = metrics["models"], metrics.get("reference_assistant_isms")
    rows = [
        (
            "mean lines per reply",
            *(f"{m[n]['surface']['mean_lines']:.2f}" for n in names),
            f"{metrics['reference_surface']['mean_lines']:.2f}",
            "",
        )
    ]
    if real is not None:
        rows.append(
            ("assistant-isms", *(_maybe(m[n].get("assistant_isms"), format_rate) for n in names), format_rate(real), "")
        )
    return rows
