"""Batches from the tokenized dataset: dynamic padding by position, never by token id, and logits only where a
label is.

Padding positions get attention 0 and label -100 because they are padding, whatever the pad id is: with
pad == eos (SmolLM2, GPT-2), masking by id would also mask every real end-of-turn token, and the model would
never learn to stop.

Labelled logits (`trainer.labelled_logits=true`, the default): only the target's turns carry labels (typically
20-40 % of the tokens), yet a causal LM computes the 49k-vocabulary output layer, and its float32 logits and
loss, at every position, padding included: the single largest cost of a small model's step. The collator lists
the flat positions (row * width + column) whose next token is labelled; while the loss is computed, a forward
hook flattens the decoder's hidden states to one row, and the model's own `logits_to_keep` argument keeps just
those positions. The loss is the same mean over labelled tokens (tests/test_batching.py checks loss and
gradients against the full computation for every architecture).

Other turns at a reduced weight (`trainer.other_turns_weight=w`, train split only): a row carrying `other_weight`
w > 0 is labelled on every real token, the target's labelled tokens at loss weight 1 and every other token (the
other speakers' turns, the template, the system prompt) at w; the batch gets `loss_weights`, one per label after
the leading IGNORE, and the loss is the weighted mean: sum(w_i * nll_i) / sum(w_i) over the accumulated batch.
w = 0 (no column) is exactly the target-only loss; w = 1 is every token alike, as the seeds' no-masking recipe.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from chatclone.formatting.labels import IGNORE

OTHER_WEIGHT = "other_weight"  # per-row column of the train split (trainer.other_turns_weight)
LOSS_WEIGHTS = "loss_weights"


@dataclass
class PadCollator:
    pad_token_id: int
    pad_to_multiple_of: int = 1
    labelled_logits: bool = False

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        width = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
        attention = torch.zeros((len(features), width), dtype=torch.long)
        weights = torch.zeros((len(features), width), dtype=torch.float32)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            input_ids[row, :n] = torch.as_tensor(f["input_ids"])
            labels[row, :n] = torch.as_tensor(f["labels"])
            attention[row, :n] = 1
            other = float(f.get(OTHER_WEIGHT) or 0.0)
            weights[row, :n] = torch.where(labels[row, :n] != IGNORE, 1.0, other)
            if other > 0:
                labels[row, :n] = input_ids[row, :n]
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
        weighted = any(float(f.get(OTHER_WEIGHT) or 0.0) > 0 for f in features)
        if weighted and not self.labelled_logits:
            raise ValueError("other_weight rows need PadCollator(labelled_logits=True)")
        if not self.labelled_logits:
            return batch
        return _keep_labelled(batch, weights if weighted else None)


def _keep_labelled(batch: dict[str, torch.Tensor], weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """`logits_to_keep`: flat positions whose next token is labelled (position j predicts token j + 1 of its row);
    `labels`: [IGNORE, then their targets]. The leading IGNORE makes the Trainer's count of labelled tokens right
    whether it counts `labels[..., 1:]` (causal LMs) or all of `labels`. With `weights` (one per token), also
    `loss_weights`: the weight of each target, in the same order."""
    labels = batch["labels"]
    predicts = torch.zeros_like(labels, dtype=torch.bool)
    predicts[:, :-1] = labels[:, 1:] != IGNORE
    keep = predicts.flatten().nonzero().flatten()
    targets = labels.flatten()[keep + 1]
    out = {**batch, "logits_to_keep": keep, "labels": torch.cat([torch.tensor([IGNORE]), targets])[None]}
    if weights is not None:
        out[LOSS_WEIGHTS] = weights.flatten()[keep + 1]
    return out


def labelled_loss(
    outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None, loss_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """The Trainer's `compute_loss_func` with labelled logits: summed cross-entropy over the kept logits, divided by
    the labelled tokens of the whole accumulated batch (a per-batch mean when the Trainer does not count them).
    With `loss_weights`: the weighted sum, divided by the accumulated batch's total weight (which
    LabelledLogitsTrainer passes as `num_items_in_batch`; this batch's total when it is not given)."""
    logits, targets = outputs.logits[0].float(), labels[0, 1:].to(outputs.logits.device)
    if loss_weights is not None:
        weights = loss_weights.to(logits.device)
        loss = (torch.nn.functional.cross_entropy(logits, targets, reduction="none") * weights).sum()
        denominator = num_items_in_batch if num_items_in_batch is not None else weights.sum().clamp(min=1e-12)
        return loss / (denominator.to(loss.device) if isinstance(denominator, torch.Tensor) else denominator)
    loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    denominator = num_items_in_batch if num_items_in_batch is not None else max(len(targets), 1)
    if isinstance(denominator, torch.Tensor):
        denominator = denominator.to(loss.device)
    return loss / denominator


@contextmanager
def flat_hidden_states(model: Any) -> Iterator[None]:
    """While active, the decoder's last hidden states come out as one row [1, batch * width, hidden], so that a
    1-D `logits_to_keep` of flat positions selects across the whole batch."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model

    def flatten(module: Any, args: Any, output: Any) -> Any:
        hidden = output.last_hidden_state
        output.last_hidden_state = hidden.reshape(1, -1, hidden.shape[-1])
        return output

    handle = base.get_decoder().register_forward_hook(flatten)
    try:
        yield
    finally:
        handle.remove()
