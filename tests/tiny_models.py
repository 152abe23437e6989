"""Tiny random models of each supported architecture, for tests that must run real code paths in seconds.

Each model has 2 layers, hidden size 64 and the embedded tokenizer's vocabulary, and is saved together with that
tokenizer (ChatML template included), so it loads exactly like a real checkpoint folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_ARCHS = ("gpt2", "phi3", "mistral", "llama")
HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
MAX_POSITIONS = 512
INIT_RANGE = 0.2  # 10x the default: logits far from uniform, so a few LoRA steps visibly lower the loss


def tiny_config(arch: str, tokenizer: Any) -> Any:
    """A tiny config of `arch` ("gpt2", "phi3", "mistral" or "llama") sized for `tokenizer`'s vocabulary."""
    from transformers import GPT2Config, LlamaConfig, MistralConfig, Phi3Config

    token_ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if arch == "gpt2":
        return GPT2Config(
            vocab_size=len(tokenizer),
            n_embd=HIDDEN,
            n_layer=LAYERS,
            n_head=HEADS,
            n_positions=MAX_POSITIONS,
            initializer_range=INIT_RANGE,
            **token_ids,
        )
    common = {
        "vocab_size": len(tokenizer),
        "hidden_size": HIDDEN,
        "intermediate_size": 2 * HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "max_position_embeddings": MAX_POSITIONS,
        "initializer_range": INIT_RANGE,
        **token_ids,
    }
    configs = {"phi3": Phi3Config, "mistral": MistralConfig, "llama": LlamaConfig}
    if arch not in configs:
        raise ValueError(f"unknown tiny architecture {arch!r}; expected one of {TINY_ARCHS}")
    return configs[arch](**common)


def build_tiny_model(arch: str, out_dir: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """Save a tiny randomly initialised `arch` model plus the tokenizer from `tokenizer_dir` into `out_dir`.

    `tokenizer_dir` is normally `chatclone.modeling.embedded_model_dir()`. Returns `out_dir`.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, tokenizer), dtype=torch.float32)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
