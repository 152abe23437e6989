"""Context use: does a model read the conversation, or would it say the same whatever was said to it?

Each of the target's real held-out replies is scored twice by the same model: given its own conversation (the real
context) and given another conversation's context (swapped), rendered exactly as in training. A model that answers
its context finds the real reply more likely after the real context; a model that produces generic lines that fit
anything ("what do you think about that?") finds it about as likely either way. The inputs are, per reply, the
summed NLL and token count under each context, as `chatclone.metrics.scoring.score_nll` returns them:

    load_metric("context_use").compute(real_nll_sums=..., real_token_counts=...,
                                       swapped_nll_sums=..., swapped_token_counts=...)

Results:
- `perplexity_real`, `perplexity_swapped`: token-weighted perplexities of the replies under each context;
- `gain`: mean NLL per token swapped minus real (nats per token, token-weighted) = log(perplexity_swapped /
  perplexity_real); 0 = the context makes no difference; `perplexity_ratio` = exp(gain);
- `own_context_wins`: the replies more likely (per token, by more than `TIE` nats) after their own context than after
  the swapped one, as a rate with n and its 95 % Wilson interval. A model that ignores the context ties every reply
  (0 %); one whose context dependence is noise wins about half; one that follows the conversation wins most;
- `mean_pair_gain` with `ci95`: the mean over replies of the per-token gain and its normal 95 % interval (None
  for a single reply);
- `pairs`: replies scored (a reply with no token under either context is left out).
"""

from __future__ import annotations

import math
import statistics
from statistics import NormalDist

import evaluate

from chatclone.errors import ChatcloneError
from chatclone.metrics import metric_info
from chatclone.metrics.rates import CONFIDENCE, rate

TIE = 1e-6  # nats per token: differences below this are float rounding, not context use
_DESCRIPTION = "How much more likely the target's real replies are after their own context than after another's."
_INPUTS = """
Args:
    real_nll_sums, real_token_counts: per reply, summed NLL (nats) and tokens given its real context.
    swapped_nll_sums, swapped_token_counts: the same replies given another conversation's context.
Returns:
    perplexity_real, perplexity_swapped, gain, perplexity_ratio, own_context_wins ({rate, successes, n, ci95}),
    mean_pair_gain, ci95, pairs.
"""


class ContextUse(evaluate.Metric):
    """Perplexity of the real replies under their real vs a swapped context."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(
            _DESCRIPTION,
            _INPUTS,
            real_nll_sums="float64",
            real_token_counts="int64",
            swapped_nll_sums="float64",
            swapped_token_counts="int64",
        )

    def _compute(
        self,
        real_nll_sums: list[float],
        real_token_counts: list[int],
        swapped_nll_sums: list[float],
        swapped_token_counts: list[int],
    ) -> dict:
        rows = [
            (r, rc, s, sc)
            for r, rc, s, sc in zip(real_nll_sums, real_token_counts, swapped_nll_sums, swapped_token_counts)
            if rc > 0 and sc > 0
        ]
        for r, rc, s, sc in rows:
            if not (math.isfinite(r) and math.isfinite(s)) or r < 0 or s < 0:
                raise ChatcloneError(f"context_use: NLL sums must be finite numbers >= 0, not {r} and {s}")
        if not rows:
            raise ChatcloneError("context_use: no reply has tokens under both contexts")
        real_mean = math.fsum(r for r, *_ in rows) / sum(rc for _, rc, _, _ in rows)
        swapped_mean = math.fsum(s for *_, s, _ in rows) / sum(sc for *_, sc in rows)
        gains = [s / sc - r / rc for r, rc, s, sc in rows]
        mean = statistics.fmean(gains)
        half = (
            NormalDist().inv_cdf(0.5 + CONFIDENCE / 2) * statistics.stdev(gains) / math.sqrt(len(gains))
            if len(gains) > 1
            else None
        )
        return {
            "perplexity_real": math.exp(real_mean),
            "perplexity_swapped": math.exp(swapped_mean),
            "gain": swapped_mean - real_mean,
            "perplexity_ratio": math.exp(swapped_mean - real_mean),
            "own_context_wins": rate(sum(g > TIE for g in gains), len(gains)),
            "mean_pair_gain": mean,
            "ci95": None if half is None else [mean - half, mean + half],
            "pairs": len(gains),
        }
