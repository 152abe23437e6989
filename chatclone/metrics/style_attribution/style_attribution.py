"""Style attribution: would a classifier of the target's texting style take these texts for theirs?

The classifier is character n-gram TF-IDF (1-4 grams, case and punctuation kept: they are style) plus
logistic regression, fitted on the training split's messages only: the target's (`True`) against
everybody else's (`False`), with balanced class weights so that 0.5 is a fair threshold although the
target writes a minority of the messages. Deterministic: no sampling, fixed `random_state`.

    metric = load_metric("style_attribution")
    metric.fit(train_texts, train_is_target)
    metric.compute(predictions=generated, target_replies=held_out_target, other_texts=held_out_others)

Results, for the candidate texts (`predictions`):
- `target_rate`: share with P(target) > 0.5; `mean_target_prob`: mean P(target); `texts`: how many;
- `ceiling_rate` / `ceiling_mean_prob` (with `target_replies`): the same for the target's own held-out
  replies, what a perfect clone would score; a clone is judged against this, not against 1.0;
- `floor_rate` / `floor_mean_prob` (with `other_texts`): the same for other people's held-out
  messages, how often the classifier takes a non-target for the target.
- `target`, `ceiling`, `floor`: each rate with its count, n and 95 % Wilson interval (`chatclone.metrics.rates`);
  `separation(...)` of that module says whether ceiling and floor are far enough apart to read a rate between them.
`metric.separation_auc(target_replies, other_texts)`: the classifier's own reliability, threshold-free: the ROC AUC
of P(target) on the target's real held-out texts against the others' (0.5 = it cannot rank them, 1 = every target
text above every other), with its 95 % interval (`chatclone.metrics.rates.roc_auc`).
`classifier=` in compute uses an already fitted classifier (`metric.classifier` of another instance).
"""

from __future__ import annotations

import evaluate

from chatclone.errors import ChatcloneError
from chatclone.metrics import metric_info
from chatclone.metrics.rates import rate, roc_auc

RANDOM_STATE = 0
_DESCRIPTION = "Share of texts a char n-gram TF-IDF + logistic regression style classifier attributes to the target."
_INPUTS = """
Args:
    predictions (list of str): candidate texts, e.g. the clone's replies.
    target_replies (list of str, optional): the target's real held-out replies (the ceiling).
    other_texts (list of str, optional): other speakers' held-out messages (the floor).
    classifier (optional): a fitted classifier; defaults to the one `fit` trained on this instance.
Returns:
    target_rate, mean_target_prob, texts; ceiling_rate, ceiling_mean_prob; floor_rate, floor_mean_prob;
    target, ceiling, floor: {rate, successes, n, ci95} (the 95 % Wilson interval).
"""


def build_classifier():
    """The unfitted pipeline: char 1-4-gram TF-IDF (case kept) + balanced logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 4), lowercase=False, sublinear_tf=True, min_df=2),
        LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000, random_state=RANDOM_STATE),
    )


class StyleAttribution(evaluate.Metric):
    """Attribution rate of candidate texts to the target, with the held-out ceiling and floor."""

    classifier = None

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _INPUTS, predictions="string")

    def fit(self, train_texts: list[str], train_is_target: list[bool]) -> StyleAttribution:
        """Train on the training split's messages: texts and whether the target wrote each."""
        labels = [bool(x) for x in train_is_target]
        if len(labels) != len(train_texts):
            raise ChatcloneError(f"style_attribution: {len(train_texts)} texts but {len(labels)} labels")
        if all(labels) or not any(labels):
            raise ChatcloneError("style_attribution: fit needs texts by the target and by someone else")
        classifier = build_classifier()
        try:
            classifier.fit(list(train_texts), labels)
        except ValueError as e:  # e.g. an empty vocabulary: too few or too short texts
            raise ChatcloneError(f"style_attribution: cannot fit the classifier: {e}") from None
        self.classifier = classifier
        return self

    def target_probabilities(self, texts: list[str], classifier=None) -> list[float]:
        """P(target) of each text."""
        classifier = classifier or self.classifier
        if classifier is None:
            raise ChatcloneError("style_attribution: call fit(train_texts, train_is_target) first")
        column = list(classifier.classes_).index(True)
        return classifier.predict_proba(list(texts))[:, column].tolist()

    def rates(self, texts: list[str], classifier=None) -> dict:
        """Share of `texts` attributed to the target with its interval (`rate`, `successes`, `n`, `ci95`), and
        their mean P(target) (`mean_prob`)."""
        probs = self.target_probabilities(texts, classifier)
        return {**rate(sum(p > 0.5 for p in probs), len(probs)), "mean_prob": sum(probs) / len(probs)}

    def separation_auc(self, target_texts: list[str], other_texts: list[str], classifier=None) -> dict:
        """ROC AUC of P(target) with the target's real texts as positives and the others' as negatives, with its
        95 % interval and the counts (`{"auc", "ci95", "positives", "negatives"}`)."""
        if not target_texts or not other_texts:
            raise ChatcloneError("style_attribution: the ROC AUC needs texts by the target and by someone else")
        return roc_auc(
            self.target_probabilities(target_texts, classifier), self.target_probabilities(other_texts, classifier)
        )

    def _compute(
        self,
        predictions: list[str],
        target_replies: list[str] | None = None,
        other_texts: list[str] | None = None,
        classifier=None,
    ) -> dict:
        if not predictions:
            raise ChatcloneError("style_attribution: no texts to attribute")
        result = {"texts": len(predictions)}
        for prefix, texts in (("target", predictions), ("ceiling", target_replies), ("floor", other_texts)):
            if texts:
                measured = self.rates(texts, classifier)
                mean_key = "mean_target_prob" if prefix == "target" else f"{prefix}_mean_prob"
                result[f"{prefix}_rate"] = measured["rate"]
                result[mean_key] = measured["mean_prob"]
                result[prefix] = measured
        return result
