"""The `eval` section shared by evaluate_clone.py and train.py (`eval.fidelity=true` scores a run as it ends).

Kept apart from chatclone.config so that chatclone.config.train can import it: chatclone.config.evaluate_clone
imports the generation schemas, which import chatclone.config.train. Defaults and their reasons are in
conf/evaluate_clone.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from chatclone.errors import ChatcloneError


@dataclass
class FidelityConfig:
    max_contexts: int = 48              # validation target turns the models reply to (evenly spread over the split)
    batch_size: int = 4                 # sequences per forward pass of the perplexity pass
    base: bool = True                   # also score the bare base model (the comparison row)
    max_prompt_tokens: Optional[int] = None  # null = model max_length - sampling.max_new_tokens (as inference)
    samples_in_report: int = 6          # example replies shown in report.md (0 = none)
    min_contexts: int = 20              # fewer scored replies: attribution is reported as unable to tell
    min_attribution_gap: float = 0.2    # ceiling - floor below this: the same

    def check(self) -> None:
        checks = [(self.max_contexts >= 1, "eval.max_contexts", "must be at least 1"),
                  (self.batch_size >= 1, "eval.batch_size", "must be at least 1"),
                  (self.max_prompt_tokens is None or self.max_prompt_tokens >= 8, "eval.max_prompt_tokens",
                   "must be at least 8 (or null)"),
                  (self.samples_in_report >= 0, "eval.samples_in_report", "must be >= 0"),
                  (self.min_contexts >= 1, "eval.min_contexts", "must be at least 1"),
                  (0 <= self.min_attribution_gap < 1, "eval.min_attribution_gap", "must be in [0, 1)")]
        for ok, key, why in checks:
            if not ok:
                raise ChatcloneError(f"{key}={getattr(self, key.split('.')[1])}: {why}")


@dataclass
class TrainEvalConfig(FidelityConfig):
    """train.py's `eval` section: the same settings, and whether to score the run at the end of training."""
    fidelity: bool = False
