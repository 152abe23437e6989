"""The transformers Trainer, computing logits only where a label is (see chatclone.training.batching)."""

from __future__ import annotations

from typing import Any

from transformers import Trainer

from chatclone.training.batching import flat_hidden_states, labelled_loss


class LabelledLogitsTrainer(Trainer):
    """A Trainer for batches from `PadCollator(labelled_logits=True)`: the decoder's hidden states are flattened
    while the loss is computed (training and evaluation alike), and `labelled_loss` scores the kept logits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, compute_loss_func=labelled_loss, **kwargs)

    def compute_loss(self, model: Any, inputs: dict, return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        with flat_hidden_states(self.accelerator.unwrap_model(model)):
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
