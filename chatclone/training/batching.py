"""Batches from the tokenized dataset: dynamic padding by position, never by token id.

Padding positions get attention 0 and label -100 because they are padding, whatever the pad id is:
with pad == eos (SmolLM2, GPT-2), masking by id would also mask every real end-of-turn token, and the
model would never learn to stop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PadCollator:
    pad_token_id: int
    pad_to_multiple_of: int = 1

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        width = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        attention = torch.zeros((len(features), width), dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            input_ids[row, :n] = torch.as_tensor(f["input_ids"])
            labels[row, :n] = torch.as_tensor(f["labels"])
            attention[row, :n] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
