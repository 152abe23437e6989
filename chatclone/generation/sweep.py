"""One table for a whole sweep (`-m sampling.temperature=0.3,0.7,1.0 ...`): sweep_table.md and sweep_table.csv in
the sweep dir, gathered from every job's generations.jsonl.

A Hydra callback writes it once, in the launching process, after every job has returned (`on_multirun_end`):
unlike "the last job writes it", this works with parallel launchers and whatever order jobs finish in, and it
reads finished jobs only (a job dir without manifest.json is listed as unfinished).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from chatclone.runs import MANIFEST

TABLE_MD, TABLE_CSV = "sweep_table.md", "sweep_table.csv"
COLUMNS = ("job", "overrides", "sampling", "temperature", "top_p", "top_k", "repetition_penalty", "seed",
           "speaker", "candidate", "tokens", "tokens_per_s", "stopped", "cut_at", "text")
MD_TEXT_CHARS = 160


class SweepTableCallback(Callback):
    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if sweep_dir.is_dir():
            path = write_sweep_table(sweep_dir)
            print(f"sweep table: {path}")


def _job_dirs(sweep_dir: Path) -> list[Path]:
    jobs = [p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()]
    return sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def _overrides(job: Path) -> str:
    path = job / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return ""
    from omegaconf import OmegaConf

    return " ".join(str(o) for o in OmegaConf.load(path) if not str(o).startswith(("prompt=", "hydra.")))


def sweep_rows(sweep_dir: Path) -> tuple[list[dict], list[str]]:
    """(one row per generated turn of every finished job, names of unfinished jobs)."""
    rows, unfinished = [], []
    for job in _job_dirs(sweep_dir):
        generations = job / "generations.jsonl"
        if not (job / MANIFEST).is_file() or not generations.is_file():
            unfinished.append(job.name)
            continue
        overrides = _overrides(job)
        for line in generations.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows.append({"job": job.name, "overrides": overrides, **{c: row.get(c) for c in COLUMNS[2:]}})
    return rows, unfinished


def write_sweep_table(sweep_dir: Path) -> Path:
    """Write sweep_table.csv (full text) and sweep_table.md (text shortened) into the sweep dir."""
    rows, unfinished = sweep_rows(sweep_dir)
    with open(sweep_dir / TABLE_CSV, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# sweep {sweep_dir.name}: {len(rows)} generations from "
             f"{len({r['job'] for r in rows})} finished jobs", ""]
    if unfinished:
        lines += [f"Unfinished or failed jobs (no manifest.json or generations.jsonl): {', '.join(unfinished)}", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_md(row.get(c), c == "text") for c in COLUMNS) + " |" for row in rows]
    (sweep_dir / TABLE_MD).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sweep_dir / TABLE_MD


def _md(value: Any, shorten: bool) -> str:
    text = "" if value is None else str(value)
    if shorten and len(text) > MD_TEXT_CHARS:
        text = text[:MD_TEXT_CHARS - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ⏎ ")
