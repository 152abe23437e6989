"""Perplexity of the target's real replies given their real context, from per-example NLL sums.

Model-agnostic: the inputs are, per example, the summed negative log-likelihood (natural log) of its
labelled tokens and the number of those tokens, as `chatclone.metrics.scoring.score_nll` returns them:

    scores = score_nll(model, examples, batch_size=8)
    load_metric("perplexity").compute(**scores)

Results:
- `perplexity`: exp(total NLL / total tokens), token-weighted over the whole set: the number to compare
  between checkpoints (the same tokenizer is assumed; perplexities of different tokenizers do not compare);
- `mean_nll`: total NLL / total tokens (nats per token);
- `mean_example_perplexity`: the mean over examples of exp(nll_sum / token_count), what HF's perplexity
  metric calls mean_perplexity; dominated by short, surprising replies;
- `tokens` and `examples` (examples with no labelled token count towards neither mean).
"""

from __future__ import annotations

import math

import evaluate

from chatclone.errors import ChatcloneError
from chatclone.metrics import metric_info

_DESCRIPTION = "Perplexity of labelled tokens from per-example summed negative log-likelihoods and token counts."
_INPUTS = """
Args:
    nll_sums (list of float): per example, the summed negative log-likelihood (nats) of its labelled tokens.
    token_counts (list of int): per example, how many tokens were labelled.
Returns:
    perplexity, mean_nll, mean_example_perplexity, tokens, examples.
Example:
    >>> metric.compute(nll_sums=[2.0, 4.0], token_counts=[1, 3])["perplexity"]  # exp(6 / 4)
    4.4816890703380645
"""


class Perplexity(evaluate.Metric):
    """Token-weighted perplexity from NLL sums and token counts."""

    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _INPUTS, nll_sums="float64", token_counts="int64")

    def _compute(self, nll_sums: list[float], token_counts: list[int]) -> dict:
        _check(nll_sums, token_counts)
        total_nll, total_tokens = math.fsum(nll_sums), sum(token_counts)
        if total_tokens == 0:
            raise ChatcloneError("perplexity: no labelled tokens to score (every token_count is 0)")
        scored = [(s, c) for s, c in zip(nll_sums, token_counts) if c > 0]
        mean_nll = total_nll / total_tokens
        return {
            "perplexity": math.exp(mean_nll),
            "mean_nll": mean_nll,
            "mean_example_perplexity": math.fsum(math.exp(s / c) for s, c in scored) / len(scored),
            "tokens": total_tokens,
            "examples": len(scored),
        }


def _check(nll_sums: list[float], token_counts: list[int]) -> None:
    for i, (nll, count) in enumerate(zip(nll_sums, token_counts)):
        if count < 0:
            raise ChatcloneError(f"perplexity: token_counts[{i}] is negative ({count})")
        if not math.isfinite(nll) or nll < 0:
            raise ChatcloneError(f"perplexity: nll_sums[{i}] must be a finite number >= 0, not {nll}")
        if count == 0 and nll != 0:
            raise ChatcloneError(f"perplexity: nll_sums[{i}] is {nll} but its token count is 0")
