"""Dropout with cheaper random numbers on a CPU (`method.fast_dropout`, on by default).

peft puts an `nn.Dropout(p)` before every LoRA adapter's first matrix (and some models, GPT-2 among them, have
dropout layers of their own). On a CPU, torch's dropout draws one random number per element from its (serial)
generator: profiled on the embedded SmolLM2 with LoRA r=16 on all seven projections, `aten::bernoulli_` alone took
16 % of a training step while the other core waited. `FastDropout` draws one 64-bit number per four elements and
keeps an element when its 16-bit slice is at least `p * 65536` above the slice's minimum: the same independent
keep/drop decision per element with probability p (exact to 1/65536), the same 1 / (1 - p) scaling, from the same
torch generator, so `trainer.seed` and the RNG state saved in checkpoints (resume) drive it as they drive
nn.Dropout. On other devices it is nn.Dropout.
"""

from __future__ import annotations

from typing import Any

import torch

_SLICES = 4  # 16-bit slices per 64-bit draw
_SLICE_VALUES = 1 << 16


class FastDropout(torch.nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.threshold = torch.iinfo(torch.int16).min + round(p * _SLICE_VALUES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return torch.nn.functional.dropout(x, self.p, self.training)
        n = x.numel()
        draws = torch.empty(-(-n // _SLICES), dtype=torch.int64).random_(torch.iinfo(torch.int64).min, None)
        slices = draws.view(torch.int16)[:n].view(x.shape)
        return torch.where(slices >= self.threshold, x * (1.0 / (1.0 - self.p)), 0.0)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_fast_dropout(model: Any) -> int:
    """Replace every nn.Dropout with p > 0 in the model (LoRA's, and the model's own, such as GPT-2's residual
    dropout) by FastDropout; returns how many."""
    found = [
        (name, module.p) for name, module in model.named_modules() if type(module) is torch.nn.Dropout and module.p > 0
    ]
    for name, p in found:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, FastDropout(p))
    return len(found)
