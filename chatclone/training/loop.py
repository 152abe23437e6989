"""The transformers Trainer, computing logits only where a label is (see chatclone.training.batching)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from chatclone.training.batching import LOSS_WEIGHTS, flat_hidden_states, labelled_loss


class LabelledLogitsTrainer(Trainer):
    """A Trainer for batches from `PadCollator(labelled_logits=True)`: the decoder's hidden states are flattened
    while the loss is computed (training and evaluation alike), and `labelled_loss` scores the kept logits. Batches
    with `loss_weights` (trainer.other_turns_weight) get the weighted loss, normalised by the total weight of the
    accumulated batch instead of its count of labelled tokens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, compute_loss_func=self._loss, **kwargs)
        self._weights: torch.Tensor | None = None

    def _loss(self, outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        return labelled_loss(outputs, labels, num_items_in_batch, loss_weights=self._weights)

    def _get_num_items_in_batch(self, batch_samples: list, device: Any) -> Any:
        if batch_samples and LOSS_WEIGHTS in batch_samples[0]:
            total = sum(batch[LOSS_WEIGHTS].sum() for batch in batch_samples)
            if self.args.average_tokens_across_devices and self.args.world_size > 1:
                total = self.accelerator.gather(total.to(device)).sum()
            return total.to(device)
        return super()._get_num_items_in_batch(batch_samples, device)

    def compute_loss(
        self, model: Any, inputs: dict, return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        self._weights = inputs.pop(LOSS_WEIGHTS, None)
        try:
            with flat_hidden_states(self.accelerator.unwrap_model(model)):
                return super().compute_loss(
                    model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
                )
        finally:
            self._weights = None
