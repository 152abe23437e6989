"""One table for a whole sweep (`-m sampling.temperature=0.3,0.7 ...`): sweep_table.md and sweep_table.csv in the
sweep dir, gathered from every finished job, for every stage that sweeps.

Two tables: `generations` (inference, generate_from_prompt, simulate_conversation: one row per generated turn, from
each job's generations.jsonl) and `evaluations` (evaluate_clone: one row per job, from its metrics.json). A Hydra
callback writes the table once, in the launching process, after every job has returned (`on_multirun_end`: complete
whatever order parallel launchers finish jobs in); evaluate_clone also rebuilds it as each job finishes, so a sweep
that dies half way still has the table of the jobs that finished. Jobs without manifest.json are listed as
unfinished, never read; both files are replaced atomically, so a reader never sees half a table.

A script's YAML asks for the table with:

    hydra:
      callbacks:
        sweep_table:
          _target_: chatclone.sweeps.SweepTableCallback
          table: generations        # or evaluations
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from chatclone.runs import MANIFEST, replace_file

TABLE_MD, TABLE_CSV = "sweep_table.md", "sweep_table.csv"
GENERATIONS, EVALUATIONS = "generations", "evaluations"


class SweepTableCallback(Callback):
    def __init__(self, table: str = GENERATIONS) -> None:
        self.table = table

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if sweep_dir.is_dir():
            print(f"sweep table: {write_sweep_table(sweep_dir, self.table)}")


def current_sweep_dir() -> Path | None:
    """The sweep dir when this process runs a job of a Hydra multirun, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode is not RunMode.MULTIRUN:
        return None
    return Path(HydraConfig.get().sweep.dir)


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's job dirs (each has .hydra/), in job number order."""
    jobs = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and (p / ".hydra").is_dir()]
    return sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def job_overrides(job: Path, left_out: tuple[str, ...] = ("hydra.",)) -> str:
    """The job's command-line overrides (.hydra/overrides.yaml), those starting with `left_out` left out."""
    path = job / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return ""
    from omegaconf import OmegaConf

    return " ".join(str(o) for o in OmegaConf.load(path) if not str(o).startswith(left_out))


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    output: str  # the job file each row comes from
    rows: Callable[[Path], tuple[list[dict], list[str]]]  # sweep dir -> (rows, unfinished jobs)
    heading: Callable[[Path, list[dict]], list[str]]  # the lines above the table in sweep_table.md
    cell: Callable[[Any, str], str]  # (value, column) -> markdown cell


def write_sweep_table(sweep_dir: Path, table: str = GENERATIONS) -> Path:
    """Write (replace) sweep_table.csv (full values) and sweep_table.md in the sweep dir; the .md path."""
    sweep_dir, kind = Path(sweep_dir), TABLES[table]
    rows, unfinished = kind.rows(sweep_dir)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=kind.columns)
    writer.writeheader()
    writer.writerows(rows)
    replace_file(sweep_dir / TABLE_CSV, out.getvalue())
    lines = kind.heading(sweep_dir, rows)
    if unfinished:
        lines += [f"Unfinished or failed jobs (no {MANIFEST} or {kind.output}): {', '.join(unfinished)}", ""]
    lines += ["| " + " | ".join(kind.columns) + " |", "|" + "---|" * len(kind.columns)]
    lines += ["| " + " | ".join(kind.cell(row.get(c), c) for c in kind.columns) + " |" for row in rows]
    return replace_file(sweep_dir / TABLE_MD, "\n".join(lines) + "\n")


# --- generations: one row per generated turn ------------------------------------------------------------------------

GENERATION_COLUMNS = (
    "job",
    "overrides",
    "sampling",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "seed",
    "speaker",
    "candidate",
    "tokens",
    "tokens_per_s",
    "stopped",
    "cut_at",
    "text",
)
MD_TEXT_CHARS = 160


def generation_rows(sweep_dir: Path) -> tuple[list[dict], list[str]]:
    """(one row per generated turn of every finished job, names of unfinished jobs)."""
    rows, unfinished = [], []
    for job in job_dirs(sweep_dir):
        generations = job / "generations.jsonl"
        if not (job / MANIFEST).is_file() or not generations.is_file():
            unfinished.append(job.name)
            continue
        overrides = job_overrides(job, ("prompt=", "hydra."))
        for line in generations.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows.append(
                    {"job": job.name, "overrides": overrides, **{c: row.get(c) for c in GENERATION_COLUMNS[2:]}}
                )
    return rows, unfinished


def _generation_heading(sweep_dir: Path, rows: list[dict]) -> list[str]:
    return [f"# sweep {sweep_dir.name}: {len(rows)} generations from {len({r['job'] for r in rows})} finished jobs", ""]


def _generation_cell(value: Any, column: str) -> str:
    text = "" if value is None else str(value)
    if column == "text" and len(text) > MD_TEXT_CHARS:
        text = text[: MD_TEXT_CHARS - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ⏎ ")


# --- evaluations: one row per evaluate_clone job --------------------------------------------------------------------

SETTINGS = ("sampling", "temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens", "seed")
NUMBERS = (
    "perplexity_base",
    "perplexity_fine_tuned",
    "detectability_base",
    "detectability_fine_tuned",
    "attribution_base",
    "attribution_fine_tuned",
    "attribution_auc",
    "context_ratio_fine_tuned",
    "assistant_isms_fine_tuned",
    "attribution_ceiling",
    "attribution_floor",
    "attribution_separable",
    "attribution_normalised_fine_tuned",
    "mean_chars_fine_tuned",
    "mean_chars_reference",
    "length_ks_fine_tuned",
    "empty_replies_fine_tuned",
    "contexts",
)
EVALUATION_COLUMNS = ("job", "overrides", "checkpoint", *SETTINGS, *NUMBERS)


def evaluation_rows(sweep_dir: Path) -> tuple[list[dict], list[str]]:
    """(one row per finished job, names of unfinished or failed jobs), jobs in number order."""
    rows, unfinished = [], []
    for job in job_dirs(sweep_dir):
        try:
            manifest = json.loads((job / MANIFEST).read_text(encoding="utf-8"))
            metrics = json.loads((job / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            unfinished.append(job.name)
            continue
        values = {**metrics.get("sampling", {}), **metrics.get("headline", {})}
        values["sampling"] = values.get("name")
        rows.append(
            {
                "job": job.name,
                "overrides": job_overrides(job),
                "checkpoint": manifest.get("config", {}).get("checkpoint"),
                **{c: values.get(c) for c in SETTINGS + NUMBERS},
            }
        )
    return rows, unfinished


def _evaluation_heading(sweep_dir: Path, rows: list[dict]) -> list[str]:
    return [
        f"# evaluate_clone sweep {sweep_dir.name}: {len(rows)} finished jobs",
        "",
        "Perplexity: held-out perplexity of the target's real replies (lower is better; it does not depend on "
        "sampling). Attribution: share of generated replies the style classifier attributes to the target "
        "(ceiling: the target's own held-out replies; floor: other speakers'). attribution_separable False: the "
        "classifier cannot tell the target apart on that job's data (see its report.md): its attribution "
        "numbers are not evidence. Detectability: cross-validated accuracy of a classifier telling the model's "
        "replies from the real ones (50 % = indistinguishable). context_ratio: perplexity of the real replies "
        "after another conversation's context over after their own (1 = the context makes no difference).",
        "",
    ]


def _evaluation_cell(value: Any, column: str) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


TABLES = {
    GENERATIONS: Table(GENERATION_COLUMNS, "generations.jsonl", generation_rows, _generation_heading, _generation_cell),
    EVALUATIONS: Table(EVALUATION_COLUMNS, "metrics.json", evaluation_rows, _evaluation_heading, _evaluation_cell),
}
