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
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from chatclone.formatting.labels import IGNORE


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
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            input_ids[row, :n] = torch.as_tensor(f["input_ids"])
            labels[row, :n] = torch.as_tensor(f["labels"])
            attention[row, :n] = 1
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
        return _keep_labelled(batch) if self.labelled_logits else batch


def _keep_labelled(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`logits_to_keep`: flat positions whose next token is labelled (position j predicts token j + 1 of its row);
    `labels`: [IGNORE, then their targets]. The leading IGNORE makes the Trainer's count of labelled tokens right
    whether it counts `labels[..., 1:]` (causal LMs) or all of `labels`."""
    labels = batch["labels"]
    predicts = torch.zeros_like(labels, dtype=torch.bool)
    predicts[:, :-1] = labels[:, 1:] != IGNORE
    keep = predicts.flatten().nonzero().flatten()
    targets = labels.flatten()[keep + 1]
    return {**batch, "logits_to_keep": keep, "labels": torch.cat([torch.tensor([IGNORE]), targets])[None]}


def labelled_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
    """The Trainer's `compute_loss_func` with labelled logits: summed cross-entropy over the kept logits, divided by
    the labelled tokens of the whole accumulated batch (a per-batch mean when the Trainer does not count them)."""
    logits, targets = outputs.logits[0].float(), labels[0, 1:].to(outputs.logits.device)
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
