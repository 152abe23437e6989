"""Surface statistics of replies against the target's real ones: length, diversity, repetition, emoji,
punctuation, casing and questions.

    load_metric("surface_stats").compute(predictions=generated, target_replies=real_target_replies)

returns `{"generated": stats, "reference": stats, "difference": generated - reference per stat,
"length_wasserstein": ..., "length_ks": ..., "lines_wasserstein": ..., "lines_ks": ...}` (no difference of `replies`,
the set sizes); without `target_replies` only `{"generated": stats}`
(handy to describe any set of texts). Per set of replies:
- `replies`, `mean_chars`, `median_chars`, `mean_words` (whitespace tokens);
- `mean_lines`, `median_lines`, `multi_line_rate`: the turn's shape: non-empty lines per reply (a turn is the
  target's consecutive messages joined by newlines, so lines are about messages per burst), and the share of
  replies with more than one;
- `distinct_1`, `distinct_2`: distinct word uni-/bigrams over all word uni-/bigrams of the set
  (lower-cased whitespace tokens; Li et al. 2016). They fall as a set grows: compare sets of similar size;
- `self_repeat_rate`: share of replies repeating a word 3-gram within themselves (degenerate loops);
- `duplicate_rate`: 1 - distinct replies / replies (the same reply over and over);
- `emoji_rate`: share of replies with an emoji (Unicode pictographs, `:custom:` or `<:custom:id>`);
- `punctuation_rate`: Unicode punctuation characters per non-space character (custom emoji codes removed);
- `exclamation_rate`, `question_rate`: share of replies containing "!" / "?";
- `lowercase_rate`, `upper_start_rate`, `all_caps_rate`: among replies with a cased letter (custom emoji
  codes left out), the share with no upper-case letter, whose first cased letter is upper-case, and with
  no lower-case letter.
Between the sets: `length_wasserstein` (earth mover's distance between the character-length
distributions, in characters) and `length_ks` (two-sample Kolmogorov-Smirnov statistic, 0 to 1); `lines_wasserstein`
and `lines_ks`, the same for the lines-per-reply distributions.
"""

from __future__ import annotations

import re
import statistics
import unicodedata

import evaluate

from chatclone.errors import ChatcloneError
from chatclone.metrics import metric_info

REPEAT_N = 3
PICTOGRAPH = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff]")
CUSTOM_EMOJI = re.compile(r"<a?:\w+:\d+>|:[A-Za-z0-9_+-]*[A-Za-z][A-Za-z0-9_+-]*:")
_DESCRIPTION = "Length, distinct-n, repetition, emoji, punctuation, casing and question habits vs the target's."
_INPUTS = """
Args:
    predictions (list of str): replies to describe, e.g. the clone's.
    target_replies (list of str, optional): the target's real replies to compare against.
Returns:
    generated (dict of stats); with target_replies also reference, difference, length_wasserstein, length_ks.
"""


class SurfaceStats(evaluate.Metric):
    """Surface statistics of generated replies, the target's, and their differences."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _INPUTS, predictions="string")

    def _compute(self, predictions: list[str], target_replies: list[str] | None = None) -> dict:
        generated = describe(predictions)
        if target_replies is None:
            return {"generated": generated}
        reference = describe(target_replies)
        return {
            "generated": generated,
            "reference": reference,
            "difference": {k: generated[k] - reference[k] for k in generated if k != "replies"},
            **length_distances(predictions, target_replies),
        }


def describe(texts: list[str]) -> dict[str, float]:
    """Every per-set statistic of `texts` (see the module docstring)."""
    if not texts:
        raise ChatcloneError("surface_stats: no texts to describe")
    n = len(texts)
    lengths = [len(t) for t in texts]
    words = [t.lower().split() for t in texts]
    bare = [CUSTOM_EMOJI.sub("", t) for t in texts]
    cased = [t for t in bare if any(c.isupper() or c.islower() for c in t)]
    lines = [line_count(t) for t in texts]
    return {
        "replies": n,
        "mean_chars": sum(lengths) / n,
        "median_chars": float(statistics.median(lengths)),
        "mean_words": sum(map(len, words)) / n,
        "mean_lines": sum(lines) / n,
        "median_lines": float(statistics.median(lines)),
        "multi_line_rate": sum(count > 1 for count in lines) / n,
        "distinct_1": distinct_n(words, 1),
        "distinct_2": distinct_n(words, 2),
        "self_repeat_rate": sum(_repeats_ngram(w, REPEAT_N) for w in words) / n,
        "duplicate_rate": 1 - len({t.strip() for t in texts}) / n,
        "emoji_rate": sum(bool(PICTOGRAPH.search(t) or CUSTOM_EMOJI.search(t)) for t in texts) / n,
        "punctuation_rate": punctuation_rate(texts),
        "exclamation_rate": sum("!" in t for t in texts) / n,
        "question_rate": sum("?" in t for t in texts) / n,
        **casing_rates(cased),
    }


def line_count(text: str) -> int:
    """Non-empty lines of a reply (0 for an empty one)."""
    return sum(bool(line.strip()) for line in text.split("\n"))


def distinct_n(words: list[list[str]], n: int) -> float:
    """Distinct n-grams over all n-grams of the tokenized replies (0.0 when there is none)."""
    grams = [tuple(w[i : i + n]) for w in words for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _repeats_ngram(words: list[str], n: int) -> bool:
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) < len(grams)


def punctuation_rate(texts: list[str]) -> float:
    """Unicode punctuation characters per non-space character, custom emoji codes left out."""
    chars = [c for t in texts for c in CUSTOM_EMOJI.sub("", t) if not c.isspace()]
    return sum(unicodedata.category(c).startswith("P") for c in chars) / len(chars) if chars else 0.0


def casing_rates(cased: list[str]) -> dict[str, float]:
    """Shares of all-lower-case, upper-case-start and all-caps texts among texts with a cased letter."""
    if not cased:
        return {"lowercase_rate": 0.0, "upper_start_rate": 0.0, "all_caps_rate": 0.0}
    first = [next(c for c in t if c.isupper() or c.islower()) for t in cased]
    return {
        "lowercase_rate": sum(not any(c.isupper() for c in t) for t in cased) / len(cased),
        "upper_start_rate": sum(c.isupper() for c in first) / len(cased),
        "all_caps_rate": sum(not any(c.islower() for c in t) for t in cased) / len(cased),
    }


def length_distances(texts: list[str], reference: list[str]) -> dict[str, float]:
    """Wasserstein distance and KS statistic between the character-length distributions, and between the
    lines-per-reply distributions."""
    from scipy.stats import ks_2samp, wasserstein_distance

    if not texts or not reference:
        raise ChatcloneError("surface_stats: both sets need at least one text")
    out = {}
    for name, measure in (("length", len), ("lines", line_count)):
        a, b = [measure(t) for t in texts], [measure(t) for t in reference]
        out.update(
            {f"{name}_wasserstein": float(wasserstein_distance(a, b)), f"{name}_ks": float(ks_2samp(a, b).statistic)}
        )
    return out
