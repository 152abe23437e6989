"""One comparable row per job of a sweep (`-m sampling.temperature=0.3,0.7 ...`): sweep_table.md and
sweep_table.csv in the sweep dir, from every finished job's metrics.json.

Built twice, both times from whatever is on disk: by each job as it finishes (so a sweep that dies half way still
has the table of the jobs that finished) and by a Hydra callback in the launching process after the last job
(`on_multirun_end`: complete whatever order parallel launchers finish jobs in). Jobs without manifest.json are
listed as unfinished, never read; files are replaced atomically, so a reader never sees half a table.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from chatclone.runs import MANIFEST

TABLE_MD, TABLE_CSV = "sweep_table.md", "sweep_table.csv"
SETTINGS = ("sampling", "temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens", "seed")
NUMBERS = ("perplexity_base", "perplexity_fine_tuned", "detectability_base", "detectability_fine_tuned",
           "attribution_base", "attribution_fine_tuned", "attribution_auc", "context_ratio_fine_tuned",
           "assistant_isms_fine_tuned",
           "attribution_ceiling", "attribution_floor", "attribution_separable", "attribution_normalised_fine_tuned",
           "mean_chars_fine_tuned", "mean_chars_reference",
           "length_ks_fine_tuned", "empty_replies_fine_tuned", "contexts")
COLUMNS = ("job", "overrides", "checkpoint", *SETTINGS, *NUMBERS)


class SweepTableCallback(Callback):
    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if sweep_dir.is_dir():
            print(f"sweep table: {write_sweep_table(sweep_dir)}")


def current_sweep_dir() -> Path | None:
    """The sweep dir when this process runs a job of a Hydra multirun, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode is not RunMode.MULTIRUN:
        return None
    return Path(HydraConfig.get().sweep.dir)


def sweep_rows(sweep_dir: Path) -> tuple[list[dict], list[str]]:
    """(one row per finished job, names of unfinished or failed jobs), jobs in number order."""
    rows, unfinished = [], []
    jobs = [p for p in Path(sweep_dir).iterdir() if p.is_dir() and (p / ".hydra").is_dir()]
    for job in sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name)):
        try:
            manifest = json.loads((job / MANIFEST).read_text(encoding="utf-8"))
            metrics = json.loads((job / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            unfinished.append(job.name)
            continue
        values = {**metrics.get("sampling", {}), **metrics.get("headline", {})}
        values["sampling"] = values.get("name")
        rows.append({"job": job.name, "overrides": _overrides(job),
                     "checkpoint": manifest.get("config", {}).get("checkpoint"),
                     **{c: values.get(c) for c in SETTINGS + NUMBERS}})
    return rows, unfinished


def _overrides(job: Path) -> str:
    path = job / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return ""
    from omegaconf import OmegaConf

    return " ".join(str(o) for o in OmegaConf.load(path) if not str(o).startswith("hydra."))


def write_sweep_table(sweep_dir: Path) -> Path:
    """Write (replace) sweep_table.md and sweep_table.csv in the sweep dir; the .md path."""
    rows, unfinished = sweep_rows(Path(sweep_dir))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    _replace(Path(sweep_dir) / TABLE_CSV, out.getvalue())
    lines = [f"# evaluate_clone sweep {Path(sweep_dir).name}: {len(rows)} finished jobs", "",
             "Perplexity: held-out perplexity of the target's real replies (lower is better; it does not depend on "
             "sampling). Attribution: share of generated replies the style classifier attributes to the target "
             "(ceiling: the target's own held-out replies; floor: other speakers'). attribution_separable False: the "
             "classifier cannot tell the target apart on that job's data (see its report.md): its attribution "
             "numbers are not evidence. Detectability: cross-validated accuracy of a classifier telling the model's replies "
             "from the real ones (50 % = indistinguishable). context_ratio: perplexity of the real replies after "
             "another conversation's context over after their own (1 = the context makes no difference).", ""]
    if unfinished:
        lines += [f"Unfinished or failed jobs (no manifest.json or metrics.json): {', '.join(unfinished)}", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_md(row[c]) for c in COLUMNS) + " |" for row in rows]
    return _replace(Path(sweep_dir) / TABLE_MD, "\n".join(lines) + "\n")


def _md(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def _replace(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
