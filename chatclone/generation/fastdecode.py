"""Faster token-by-token decoding on a CPU: one-token steps multiply in bfloat16, the prompt stays in float32
(and, opt-in, `compile_decode_steps` compiles the one-token step).

Decoding one token reads every weight once, so a small model's decode speed on a CPU is set by memory bandwidth:
SmolLM2-135M's 540 MB of float32 weights take 63 ms a token at the 8.5 GB/s the reference machine streams
(16 tokens/s at best). A bfloat16 copy of each linear layer's weights halves that read, and on an AVX2 CPU a
bfloat16 matrix-vector product is 2.8x faster than the float32 one. Prompts (many tokens at once) are compute-bound
and bfloat16 matrix-matrix products are 5x slower there without AVX-512 BF16, so multi-token inputs keep the float32
weights. Measured on the embedded model: 97.5 % teacher-forced top-1 agreement with float32 over 240 greedy steps
(torch's dynamic int8, which also quantizes activations, gave 55 %); see benchmarks/bench_generate.py.
"""

from __future__ import annotations

from typing import Any

import torch


class DecodeLinear(torch.nn.Module):
    """A linear layer that keeps its float32 weight for prompts and batches, and uses a bfloat16 copy for one-token
    steps of one sequence."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight_bf16", linear.weight.detach().to(torch.bfloat16), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # bfloat16 only for one row (a matrix-vector product: 2.8x float32's speed here). A prompt takes the exact
        # float32 path, and so do batched one-token steps (several rows: serve.py, n candidates): bfloat16
        # matrix-matrix products are ~5x slower than float32 on CPUs without native bfloat16 (AVX2), which halved
        # serve.py's batched throughput (benchmarks/bench_serve.py).
        if x.dim() < 2 or x.numel() != x.shape[-1]:
            return torch.nn.functional.linear(x, self.weight, self.bias)
        y = torch.nn.functional.linear(x.to(torch.bfloat16), self.weight_bf16).to(x.dtype)
        return y if self.bias is None else y + self.bias


def enable_fast_decode(model: Any) -> int:
    """Swap every float32 nn.Linear of `model` (in place) for a DecodeLinear; the number swapped. Models in other
    dtypes (a GPU's bfloat16, a 4-bit base) are left alone."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear and child.weight.dtype == torch.float32:
                setattr(parent, name, DecodeLinear(child))
                swapped += 1
    return swapped


def compile_decode_steps(model: Any, cache_step: int = 128) -> None:
    """torch.compile the model's one-token steps, and have generation use static KV caches sized in multiples of
    `cache_step` positions, so that steps have few distinct shapes (one graph per cache size and batch size).
    Prompts stay eager: each prompt length would be a graph of its own. Each new shape costs a compile (about a
    minute on the 2-core reference machine, ~10-15 s once torch's inductor cache holds it, in later processes
    too); then about 1.5x the tokens/s of fast_decode alone, whose remaining cost is per-operation overhead that
    the compiled step no longer pays. A chat's turns no longer reuse the KV cache (a static cache is not cut back
    to a shared prefix): each turn processes its whole prompt."""
    eager = model.forward
    compiled = torch.compile(eager, dynamic=False)

    def forward(*args: Any, **kwargs: Any) -> Any:
        ids = kwargs.get("input_ids")
        return (compiled if ids is not None and ids.shape[-1] == 1 else eager)(*args, **kwargs)

    model.forward = forward
    model.static_cache_step = cache_step
