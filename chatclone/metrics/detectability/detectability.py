"""Detectability, the automatic Turing test: can a classifier tell a model's replies from the target's real ones?

The target's real held-out replies and a model's replies to the same contexts are pooled; a classifier (character
1-4-gram TF-IDF, case kept, plus word 1-2-gram TF-IDF, then logistic regression) is trained to tell them apart and
its accuracy is measured by k-fold cross-validation: every text is predicted by a classifier that never saw it.
The folds are by context: a context's real and generated reply are always held out together (so every fold has as
many real as generated replies, and the classifier cannot learn a pair's shared topic words from one half to judge
the other half). Deterministic: the folds come from a seeded shuffle, the classifier has a fixed random_state.

    load_metric("detectability").compute(predictions=model_replies, references=real_replies, folds=5)

Results:
- `detected`: the out-of-fold predictions that were right, as a rate of all 2n texts, with its 95 % Wilson interval
  (`chatclone.metrics.rates`; the folds' predictions are treated as independent trials, the usual approximation);
  `accuracy` is its rate. 50 % = the classifier cannot tell the model from the target (it guesses); 100 % = every
  reply gives itself away. Results a little below 50 % are chance as well (a classifier that learns noise);
- `auc`: the ROC AUC of the out-of-fold P(model) (1 = every model reply ranked above every real one);
- `folds` (used), `folds_asked`, `pairs` (n contexts), `fold_accuracies`.

Tiny n: each fold holds out at least one pair, so with fewer pairs than `folds` there are as many folds as pairs
(`folds` says so; leave-one-pair-out); fewer than 2 pairs cannot be cross-validated and is refused.
"""

from __future__ import annotations

import random

import evaluate

from chatclone.errors import ChatcloneError
from chatclone.metrics import metric_info
from chatclone.metrics.rates import rate, roc_auc

RANDOM_STATE = 0
MIN_PAIRS = 2
_DESCRIPTION = "Cross-validated accuracy of a classifier telling a model's replies from the target's real replies."
_INPUTS = """
Args:
    predictions (list of str): a model's replies, one per context.
    references (list of str): the target's real replies to the same contexts, in the same order.
    folds (int, optional): k of the k-fold cross-validation (default 5; fewer when there are fewer pairs).
    seed (int, optional): the shuffle that assigns contexts to folds (default 0).
Returns:
    accuracy, detected ({rate, successes, n, ci95}), auc ({auc, ci95, positives, negatives}), folds, folds_asked,
    pairs, fold_accuracies.
"""


def build_classifier():
    """The unfitted pipeline: char 1-4-gram (case kept) and word 1-2-gram TF-IDF, balanced logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    chars = TfidfVectorizer(analyzer="char", ngram_range=(1, 4), lowercase=False, sublinear_tf=True)
    words = TfidfVectorizer(
        analyzer="word", ngram_range=(1, 2), lowercase=True, sublinear_tf=True, token_pattern=r"(?u)\b\w+\b|[^\w\s]"
    )
    return make_pipeline(
        make_union(chars, words),
        LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000, random_state=RANDOM_STATE),
    )


def fold_of_pairs(pairs: int, folds: int, seed: int = 0) -> list[int]:
    """The fold (0..k-1) of each pair: a seeded shuffle dealt round-robin, so fold sizes differ by one at most."""
    order = list(range(pairs))
    random.Random(seed).shuffle(order)
    fold = [0] * pairs
    for position, pair in enumerate(order):
        fold[pair] = position % folds
    return fold


class Detectability(evaluate.Metric):
    """Cross-validated real-vs-model classification accuracy (the automatic Turing test)."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _INPUTS, predictions="string", references="string")

    def _compute(self, predictions: list[str], references: list[str], folds: int = 5, seed: int = 0) -> dict:
        pairs = len(predictions)
        if folds < 2:
            raise ChatcloneError(f"detectability: folds must be at least 2, not {folds}")
        if pairs < MIN_PAIRS:
            raise ChatcloneError(
                f"detectability: cross-validation needs at least {MIN_PAIRS} contexts with a real and "
                f"a model reply each, not {pairs}"
            )
        used = min(folds, pairs)
        fold = fold_of_pairs(pairs, used, seed)
        texts = [*references, *predictions]  # label 1 = the model's reply, 0 = the target's real one
        labels, groups = [0] * pairs + [1] * pairs, fold + fold
        p_model = [0.0] * len(texts)
        for k in range(used):
            train = [i for i, g in enumerate(groups) if g != k]
            test = [i for i, g in enumerate(groups) if g == k]
            classifier = build_classifier()
            try:
                classifier.fit([texts[i] for i in train], [labels[i] for i in train])
            except ValueError as error:  # e.g. an empty vocabulary: every text in the fold is empty
                raise ChatcloneError(f"detectability: cannot fit the classifier: {error}") from None
            column = list(classifier.classes_).index(1)
            for i, p in zip(test, classifier.predict_proba([texts[i] for i in test])[:, column].tolist()):
                p_model[i] = p
        right = [(p > 0.5) == bool(y) for p, y in zip(p_model, labels)]
        per_fold = [sum(r for r, g in zip(right, groups) if g == k) / (2 * fold.count(k)) for k in range(used)]
        detected = rate(sum(right), len(right))
        return {
            "accuracy": detected["rate"],
            "detected": detected,
            "auc": roc_auc(p_model[pairs:], p_model[:pairs]),
            "folds": used,
            "folds_asked": folds,
            "pairs": pairs,
            "fold_accuracies": per_fold,
        }
