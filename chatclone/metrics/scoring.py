"""Scoring a causal LM on labelled examples: the summed negative log-likelihood and token count of each.

An example is a mapping with `input_ids` and `labels` of the same length (lists or 1-D tensors of ints)
and optionally `attention_mask`. Labels follow the transformers convention: -100 marks a token that is
not scored (the context: everybody else's turns, the chat template), any other value is the token id
to score, and the model predicts token t from the tokens before it (the shift happens here, so a label
on the first token is never scored: nothing predicts it). Scoring
the target's real replies given their real context is then the tokenized dataset's own labels.

CPU friendly: no gradients, no KV cache, examples sorted by length so a batch pads little, and the
log-softmax runs only at the labelled positions. Memory is dominated by the logits of one batch
(batch_size x longest example x vocabulary floats): lower `batch_size` for long examples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chatclone.errors import ChatcloneError

IGNORE_INDEX = -100


def score_nll(model: Any, examples: Sequence[Mapping[str, Any]], batch_size: int = 8) -> dict[str, list]:
    """Per example, in the order given: `{"nll_sums": [nats], "token_counts": [labelled tokens]}`.

    The result feeds the perplexity metric directly: `load_metric("perplexity").compute(**scores)`.
    An example with no labelled token scores 0.0 over 0 tokens.
    """
    import torch

    if batch_size < 1:
        raise ChatcloneError(f"score_nll: batch_size must be at least 1, not {batch_size}")
    rows = [_as_row(i, ex) for i, ex in enumerate(examples)]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    nll_sums, token_counts = [0.0] * len(rows), [0] * len(rows)
    device = next(model.parameters()).device
    pad_id = getattr(model.config, "pad_token_id", None)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                input_ids, attention_mask, labels = (
                    t.to(device) for t in _collate([rows[i] for i in batch], pad_id or 0)
                )
                logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
                sums, counts = _labelled_nll(logits, labels)
                for i, nll, count in zip(batch, sums.tolist(), counts.tolist()):
                    nll_sums[i], token_counts[i] = nll, count
    finally:
        model.train(was_training)
    return {"nll_sums": nll_sums, "token_counts": token_counts}


def _as_row(index: int, example: Mapping[str, Any]) -> tuple[list[int], list[int], list[int]]:
    """(input_ids, attention_mask, labels) of one example as lists, checked."""
    if "input_ids" not in example or "labels" not in example:
        raise ChatcloneError(f"score_nll: example {index} needs 'input_ids' and 'labels'")
    ids, labels = _ints(example["input_ids"]), _ints(example["labels"])
    mask = _ints(example["attention_mask"]) if example.get("attention_mask") is not None else [1] * len(ids)
    if not ids or len(labels) != len(ids) or len(mask) != len(ids):
        raise ChatcloneError(
            f"score_nll: example {index} has {len(ids)} input_ids, {len(labels)} labels "
            f"and {len(mask)} attention_mask values (need the same non-zero length)"
        )
    return ids, mask, labels


def _ints(values: Any) -> list[int]:
    return [int(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]


def _collate(rows: list[tuple[list[int], list[int], list[int]]], pad_id: int):
    """Right-padded (input_ids, attention_mask, labels) tensors: padding is unattended and unlabelled."""
    import torch

    width = max(len(ids) for ids, _, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for r, (ids, mask, labs) in enumerate(rows):
        input_ids[r, : len(ids)] = torch.tensor(ids)
        attention_mask[r, : len(ids)] = torch.tensor(mask)
        labels[r, : len(ids)] = torch.tensor(labs)
    return input_ids, attention_mask, labels


def _labelled_nll(logits, labels):
    """Per row: summed NLL (float64) of the labelled next tokens, and how many there are."""
    import torch
    import torch.nn.functional as F

    targets = labels[:, 1:]
    scored = targets != IGNORE_INDEX
    row_of = scored.nonzero(as_tuple=True)[0]
    losses = F.cross_entropy(logits[:, :-1][scored].float(), targets[scored], reduction="none")
    sums = torch.zeros(labels.shape[0], dtype=torch.float64, device=labels.device)
    sums.index_add_(0, row_of, losses.double())
    return sums.cpu(), scored.sum(dim=1).cpu()
