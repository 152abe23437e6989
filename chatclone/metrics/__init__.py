"""Clone-fidelity metrics as local `evaluate` modules, one folder per metric, loadable with no network.

Each metric is `chatclone/metrics/<name>/<name>.py`, an `evaluate.Metric` (the folder is also a Python
package, so the script ships with chatclone). `load_metric(name)` gives `evaluate.load` the absolute path
of that script: evaluate 0.4.6 then uses its LocalEvaluationModuleFactory, which copies the script into
its modules cache (HF_MODULES_CACHE, default ~/.cache/huggingface/modules) and imports it from there. An
absolute path never reaches the Hugging Face Hub (only a bare name like "rouge" does), so no
HF_*_OFFLINE variable is needed. `keep_in_memory=True` by default keeps evaluate's arrow buffers and
lock files out of ~/.cache/huggingface/evaluate.

Metrics:
- perplexity: of the target's real replies given their real context, from `scoring.score_nll`;
- style_attribution: would a char n-gram classifier of the target's style take these texts for theirs (and how well
  it tells the target's real texts from the others': its ROC AUC);
- surface_stats: lengths, lines per turn, distinct-n, repetition, emoji, punctuation, casing and questions vs the
  target's;
- detectability: can a cross-validated classifier tell a model's replies from the target's real ones (the automatic
  Turing test; 50 % = indistinguishable);
- assistant_isms: the share of replies with AI-assistant phrasing ("as an AI", "feel free to", ...);
- context_use: perplexity of the real replies after their own context vs after another conversation's.

`rates` (a plain module, not a metric) is the one home of rates with their 95 % Wilson intervals and of the check
whether a rate can be read between a floor and a ceiling (`separation`), for every metric that reports a share.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from chatclone.errors import ChatcloneError

METRICS_DIR = Path(__file__).resolve().parent
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def available_metrics() -> list[str]:
    """Names of the metrics that have a module script, sorted."""
    return sorted(p.parent.name for p in METRICS_DIR.glob("*/*.py") if p.stem == p.parent.name)


def metric_path(name: str) -> Path:
    """Absolute path of the evaluate module script of metric `name`."""
    script = METRICS_DIR / name / f"{name}.py"
    if not NAME_RE.match(name) or not script.is_file():
        raise ChatcloneError(f"unknown metric '{name}' (available: {', '.join(available_metrics())})")
    return script


def load_metric(name: str, **kwargs: Any):
    """`evaluate.load` of the local metric `name`, offline; keyword arguments go to `evaluate.load`."""
    import evaluate  # here, not at module level: importing evaluate takes seconds (it imports transformers)

    kwargs.setdefault("keep_in_memory", True)
    try:
        return evaluate.load(str(metric_path(name)), **kwargs)
    except ImportError as e:
        raise ChatcloneError(f"metric '{name}' cannot be loaded: {e}") from None


def metric_info(description: str, inputs: str, **columns: str):
    """The `evaluate.MetricInfo` of a chatclone metric: its texts and its input columns (name=datasets dtype)."""
    import datasets
    import evaluate

    features = datasets.Features({name: datasets.Value(dtype) for name, dtype in columns.items()})
    return evaluate.MetricInfo(description=description, citation="", inputs_description=inputs, features=features)
