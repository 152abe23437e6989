"""The passes each model gets: perplexity of the target's real held-out replies, the same replies scored after their
own and after a swapped context (context use), and replies generated for the validation contexts (scored afterwards
by the style classifier, the detectability classifier, the assistant-isms and the surface statistics)."""

from __future__ import annotations

import time
from collections.abc import Callable

from chatclone.config.generation import SamplingConfig
from chatclone.errors import ChatcloneError
from chatclone.evaluation.data import Context
from chatclone.generation.clone import Clone
from chatclone.generation.generate import Generator, Reply
from chatclone.metrics import load_metric
from chatclone.metrics.scoring import score_nll


def perplexity_pass(clone: Clone, examples: list[dict], batch_size: int) -> dict:
    """The perplexity metric over the validation sequences' labelled (target) tokens, with the pass's time."""
    started = time.perf_counter()
    scores = score_nll(clone.model, examples, batch_size=batch_size)
    result = load_metric("perplexity").compute(**scores)
    return {**result, "seconds": round(time.perf_counter() - started, 2)}


def context_pass(clone: Clone, pairs: list[tuple[Context, list[dict]]], batch_size: int) -> dict | None:
    """The context_use metric: each pair's real reply scored after its own and after the swapped context (see
    chatclone.evaluation.context), with the pass's time; None when there are no pairs to score."""
    from chatclone.evaluation.context import context_examples

    started = time.perf_counter()
    real, swapped = context_examples(clone.tokenizer, clone.spec.format, pairs)
    if not real:
        return None
    a, b = (score_nll(clone.model, examples, batch_size=batch_size) for examples in (real, swapped))
    result = load_metric("context_use").compute(
        real_nll_sums=a["nll_sums"],
        real_token_counts=a["token_counts"],
        swapped_nll_sums=b["nll_sums"],
        swapped_token_counts=b["token_counts"],
    )
    return {**result, "seconds": round(time.perf_counter() - started, 2)}


def generation_pass(
    clone: Clone,
    contexts: list[Context],
    sampling: SamplingConfig,
    seed: int | None,
    max_prompt_tokens: int | None,
    progress: Callable[[int], None] | None = None,
) -> list[Reply]:
    """One reply of the target per context, prompted exactly as in training and stopped at the target's end of turn.

    The seed is set once before the first context, so two models (base, fine-tuned) draw from the same random
    stream: differences come from the models, not from the dice.
    """
    target, fmt = clone.spec.target, clone.spec.format
    budget = max_prompt_tokens or fmt.max_length - sampling.max_new_tokens
    if budget < 1:
        raise ChatcloneError(
            f"sampling.max_new_tokens={sampling.max_new_tokens} leaves no room for the prompt in the "
            f"model's max_length {fmt.max_length}; lower it or set eval.max_prompt_tokens"
        )
    names = list(
        dict.fromkeys(
            [target, *clone.spec.partners, *(m["name"] for c in contexts for m in c.history if m.get("name"))]
        )
    )
    generator = Generator(clone, sampling, names)
    stop_texts = (fmt.end_of_turn, clone.prompts.turn_end(target))
    if seed is not None:
        from transformers import set_seed

        set_seed(seed)
    replies = []
    for done, context in enumerate(contexts, 1):
        ids, _ = clone.prompts.fit(context.history, target, budget)
        replies.append(generator.turn(ids, target, stop_texts)[0])
        if progress is not None:
            progress(done)
    return replies
