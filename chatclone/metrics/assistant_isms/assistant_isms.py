"""Assistant-isms: the share of replies that sound like an AI assistant, not like a person texting.

A reply counts when it contains any of the given phrases ("as an AI", "feel free to", "Certainly!", ...; the list
is `eval.assistant_phrases` in conf/evaluate_clone.yaml and conf/train.yaml), matched case-insensitively as whole
words: a phrase must not start or end inside a word ("as an AI" is not found in "has an AIM account", "feel free
to" is in "Feel free to ask!"). Curly apostrophes count as straight ones (I’d = I'd), and runs of spaces as one.

    load_metric("assistant_isms").compute(predictions=replies, phrases=["as an AI", "feel free to"])

Results: `assistant`: the replies with a phrase, as a rate with n and its 95 % Wilson interval
(`chatclone.metrics.rates`); `rate`: its value; `phrase_counts`: per phrase, the replies containing it (a reply can
contain several); `examples`: up to 3 matching replies.
"""

from __future__ import annotations

import re

import evaluate

from chatclone.errors import ChatcloneError
from chatclone.metrics import metric_info
from chatclone.metrics.rates import rate

EXAMPLES = 3
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_DESCRIPTION = "Share of replies containing AI-assistant phrasing (case-insensitive, whole-word matches)."
_INPUTS = """
Args:
    predictions (list of str): the replies to check.
    phrases (list of str): the assistant phrases to look for.
Returns:
    assistant ({rate, successes, n, ci95}), rate, phrase_counts ({phrase: replies}), examples.
"""


def normalise(text: str) -> str:
    """Curly apostrophes as straight ones, whitespace runs as one space."""
    return " ".join(text.translate(_APOSTROPHES).split())


def phrase_pattern(phrase: str) -> re.Pattern:
    """`phrase`, case-insensitive, not starting or ending inside a word (works for phrases ending in '!' too)."""
    words = normalise(phrase).split(" ")
    if not words[0]:
        raise ChatcloneError(f"assistant_isms: empty phrase {phrase!r}")
    return re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)", re.IGNORECASE)


class AssistantIsms(evaluate.Metric):
    """Share of replies with AI-assistant phrasing."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _INPUTS, predictions="string")

    def _compute(self, predictions: list[str], phrases: list[str] | None = None) -> dict:
        if not predictions:
            raise ChatcloneError("assistant_isms: no replies to check")
        if not phrases:
            raise ChatcloneError("assistant_isms: no phrases to look for")
        patterns = {phrase: phrase_pattern(phrase) for phrase in phrases}
        texts = [normalise(t) for t in predictions]
        hits = [[p for p, pattern in patterns.items() if pattern.search(t)] for t in texts]
        counts = {p: sum(p in h for h in hits) for p in patterns}
        assistant = rate(sum(bool(h) for h in hits), len(texts))
        return {
            "assistant": assistant,
            "rate": assistant["rate"],
            "phrase_counts": counts,
            "examples": [t for t, h in zip(predictions, hits) if h][:EXAMPLES],
        }
