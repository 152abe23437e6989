"""Rates with their uncertainty: the one home of the confidence intervals of every share chatclone reports
(style attribution, detectability, assistant-isms, context use), of ROC AUCs with theirs, and of the check whether a
measured rate can say anything at all.

    rate(6, 9)                      # {"rate": 0.667, "successes": 6, "n": 9, "ci95": [0.354, 0.879]}
    separation(ceiling, floor, contexts=48, min_contexts=20, min_gap=0.2)   # can the measure tell them apart?
    normalised(rate, ceiling, floor)  # 0 = the floor, 1 = the ceiling
    roc_auc(target_scores, other_scores)   # {"auc", "ci95" (Hanley & McNeil), "positives", "negatives"}

A rate is a dict (it goes into metrics.json as it is): `rate`, `successes`, `n` and `ci95`, the Wilson score
interval at 95 %. Wilson rather than the normal approximation because it stays inside [0, 1] and keeps a sensible
width at 0/n, n/n and small n, which is exactly where evaluation rates live (a few dozen replies).
"""

from __future__ import annotations

import math
from statistics import NormalDist

from chatclone.errors import ChatcloneError

CONFIDENCE = 0.95


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of `successes` out of `n` at `confidence` (two-sided): (low, high)."""
    if n < 1 or not 0 <= successes <= n:
        raise ChatcloneError(f"a rate needs 0 <= successes <= n and n >= 1, not {successes} out of {n}")
    if not 0 < confidence < 1:
        raise ChatcloneError(f"confidence must be between 0 and 1, not {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends: no 1e-17 from rounding
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def rate(successes: int, n: int) -> dict:
    """`successes` out of `n` as a rate with its 95 % Wilson interval (a metrics.json-ready dict)."""
    low, high = wilson_interval(successes, n)
    return {"rate": successes / n, "successes": successes, "n": n, "ci95": [low, high]}


def format_rate(r: dict) -> str:
    """'66.7% [35-88%] n=9': the rate, its 95 % interval and n, for tables."""
    low, high = r["ci95"]
    return f"{r['rate']:.1%} [{low * 100:.0f}-{high * 100:.0f}%] n={r['n']}"


def auc_interval(auc: float, positives: int, negatives: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The 95 % interval of a ROC AUC measured on `positives` and `negatives` texts: AUC +- z * SE with Hanley &
    McNeil's (1982) standard error, clipped to [0, 1]. (An AUC is no share of n trials, so Wilson does not apply.)"""
    if positives < 1 or negatives < 1 or not 0 <= auc <= 1:
        raise ChatcloneError(
            f"a ROC AUC needs an AUC in [0, 1] and at least one text of each class, not {auc} over "
            f"{positives} and {negatives}"
        )
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives
    )
    half = z * math.sqrt(max(variance, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def roc_auc(positive_scores: list[float], negative_scores: list[float]) -> dict:
    """sklearn's ROC AUC of scores meant to be high for the positives (0.5 = chance, 1 = every positive above every
    negative) with its 95 % interval: `{"auc", "ci95", "positives", "negatives"}`."""
    from sklearn.metrics import roc_auc_score

    positives, negatives = len(positive_scores), len(negative_scores)
    if positives < 1 or negatives < 1:
        raise ChatcloneError(f"a ROC AUC needs at least one text of each class, not {positives} and {negatives}")
    value = float(roc_auc_score([1] * positives + [0] * negatives, [*positive_scores, *negative_scores]))
    return {
        "auc": value,
        "ci95": list(auc_interval(value, positives, negatives)),
        "positives": positives,
        "negatives": negatives,
    }


def separation(
    ceiling: dict,
    floor: dict,
    contexts: int,
    min_contexts: int,
    min_gap: float,
    auc: dict | None = None,
    min_auc: float = 0.0,
) -> dict:
    """Can rates measured on `contexts` candidate texts place a model between `floor` (how often texts that are
    not the target's count as the target's) and `ceiling` (the target's own texts)? `separable` is false, with
    the reasons in plain words, when there are fewer than `min_contexts` candidates, when the ceiling's 95 %
    interval does not lie above the floor's, or when the ceiling is less than `min_gap` above the floor. With
    `auc` (`{"auc", "ci95", ...}`: the classifier's ROC AUC of the target's real texts against the others'), also
    when that AUC's 95 % interval reaches down to chance (0.5) or the AUC is below `min_auc`."""
    gap = ceiling["rate"] - floor["rate"]
    reasons = []
    if contexts < min_contexts:
        reasons.append(f"only {contexts} replies were scored (at least {min_contexts} are needed)")
    if ceiling["ci95"][0] <= floor["ci95"][1]:
        reasons.append(
            f"the ceiling's 95 % interval does not lie above the floor's (ceiling {format_rate(ceiling)}"
            f", floor {format_rate(floor)})"
        )
    if gap < min_gap:
        reasons.append(f"the ceiling is only {gap:.1%} above the floor (at least {min_gap:.0%} is needed)")
    result = {
        "separable": not reasons,
        "reasons": reasons,
        "gap": gap,
        "contexts": contexts,
        "min_contexts": min_contexts,
        "min_gap": min_gap,
    }
    if auc is None:
        return result
    if auc["ci95"][0] <= 0.5:
        reasons.append(f"its ROC AUC on real held-out messages ({format_auc(auc)}) is not clearly above chance (0.5)")
    if auc["auc"] < min_auc:
        reasons.append(
            f"its ROC AUC on real held-out messages is only {auc['auc']:.2f} (at least {min_auc:.2f} is "
            "needed to rank models by it)"
        )
    return {**result, "separable": not reasons, "auc": auc, "min_auc": min_auc}


def format_auc(a: dict) -> str:
    """'0.81 [0.72-0.90] n=30+60': a ROC AUC, its 95 % interval and the texts of each class, for tables."""
    low, high = a["ci95"]
    return f"{a['auc']:.2f} [{low:.2f}-{high:.2f}] n={a['positives']}+{a['negatives']}"


def normalised(r: dict, ceiling: dict, floor: dict) -> float | None:
    """(rate - floor) / (ceiling - floor): 0 = no more the target's than other speakers' texts, 1 = as much as the
    target's own. None when the ceiling is not above the floor (nothing to normalise by)."""
    gap = ceiling["rate"] - floor["rate"]
    return (r["rate"] - floor["rate"]) / gap if gap > 0 else None


def intervals_overlap(a: dict, b: dict) -> bool:
    """Whether two rates' 95 % intervals overlap (then their difference is not clearly more than chance)."""
    return a["ci95"][0] <= b["ci95"][1] and b["ci95"][0] <= a["ci95"][1]
