"""Schema of the `eval` section shared by evaluate_clone.py and train.py (`eval.fidelity=true` scores a run as it
ends). Defaults and their reasons are in conf/evaluate_clone.yaml and conf/train.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from chatclone.errors import ChatcloneError

# The AI-assistant phrases counted as assistant-isms: the same list as eval.assistant_phrases in
# conf/shared/fidelity.yaml (a test keeps the two equal).
ASSISTANT_PHRASES = (
    "as an AI",
    "AI language model",
    "I'm an AI",
    "I am an AI",
    "I'm here to help",
    "I am here to help",
    "happy to help",
    "I'd be happy to",
    "I would be happy to",
    "feel free to",
    "Certainly!",
    "How can I assist",
    "How can I help you",
    "assist you",
    "I hope this helps",
    "anything else I can help",
    "Great question",
    "I don't have personal",
    "I do not have personal",
    "I apologize for any confusion",
    "my training data",
)


@dataclass
class FidelityConfig:
    max_contexts: int = 48  # validation target turns the models reply to (evenly spread over the split)
    batch_size: int = 4  # sequences per forward pass of the perplexity pass
    base: bool = True  # also score the bare base model (the comparison row)
    max_prompt_tokens: Optional[int] = None  # null = model max_length - sampling.max_new_tokens (as inference)
    samples_in_report: int = 6  # example replies shown in report.md (0 = none)
    min_contexts: int = 20  # fewer scored replies: attribution is reported as unable to tell
    min_attribution_gap: float = 0.2  # ceiling - floor below this: the same
    min_attribution_auc: float = 0.7  # the classifier's ROC AUC (target vs others, held out) below this: the same
    detectability_folds: int = 5  # k of the k-fold cross-validation of the real-vs-model classifier
    assistant_phrases: list[str] = field(default_factory=lambda: list(ASSISTANT_PHRASES))  # [] = not measured

    def check(self) -> None:
        checks = [
            (self.max_contexts >= 1, "eval.max_contexts", "must be at least 1"),
            (self.batch_size >= 1, "eval.batch_size", "must be at least 1"),
            (
                self.max_prompt_tokens is None or self.max_prompt_tokens >= 8,
                "eval.max_prompt_tokens",
                "must be at least 8 (or null)",
            ),
            (self.samples_in_report >= 0, "eval.samples_in_report", "must be >= 0"),
            (self.min_contexts >= 1, "eval.min_contexts", "must be at least 1"),
            (0 <= self.min_attribution_gap < 1, "eval.min_attribution_gap", "must be in [0, 1)"),
            (0 <= self.min_attribution_auc < 1, "eval.min_attribution_auc", "must be in [0, 1)"),
            (self.detectability_folds >= 2, "eval.detectability_folds", "must be at least 2"),
        ]
        for ok, key, why in checks:
            if not ok:
                raise ChatcloneError(f"{key}={getattr(self, key.split('.')[1])}: {why}")
        for i, phrase in enumerate(self.assistant_phrases):
            if not isinstance(phrase, str) or not phrase.split():
                raise ChatcloneError(f"eval.assistant_phrases[{i}]={phrase!r}: must be a phrase with a word in it")


@dataclass
class TrainEvalConfig(FidelityConfig):
    """train.py's `eval` section: the same settings, whether to score the run at the end of training, and how many
    validation contexts the model answers at each evaluation during training."""

    fidelity: bool = False
    sample_contexts: int = 3  # answered at each evaluation during training (samples.md); 0 = off
