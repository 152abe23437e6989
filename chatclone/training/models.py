"""The model to train, per method: LoRA on a full-precision base, QLoRA on a 4-bit NF4 base, or every weight.

Merging an adapter always goes into a freshly loaded, unquantised base: merging into 4-bit weights
rounds the adapter away (the field's "merged model is worse than the adapter" bug).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from chatclone.config.train import Method, TrainConfig
from chatclone.errors import ChatcloneError
from chatclone.modeling import allow_bitsandbytes, load_model
from chatclone.training.dropout import use_fast_dropout


def check_method_supported(cfg: TrainConfig) -> None:
    """qlora needs bitsandbytes (the scripts keep it unloaded until then); say so before anything loads."""
    if cfg.method.name is not Method.qlora:
        return
    allow_bitsandbytes()
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ChatcloneError("method=qlora needs bitsandbytes (pip install bitsandbytes==0.50.2), or use method=lora")


def build_model(cfg: TrainConfig, base: str, vocab_size: int) -> Any:
    """Base model for the method, wrapped in a LoRA adapter for lora/qlora, with fast dropout when asked."""
    import torch

    quantization = _quantization(cfg) if cfg.method.name is Method.qlora else None
    dtype = cfg.model.dtype.value if quantization is None else getattr(torch, cfg.method.compute_dtype)
    extra = {"quantization_config": quantization, "device_map": _device_map()} if quantization else {}
    model = load_model(base, dtype=dtype, **extra)
    rows = model.get_input_embeddings().weight.shape[0]
    if vocab_size > rows:
        raise ChatcloneError(
            f"the dataset's tokenizer has {vocab_size} tokens but {base} has {rows} embeddings: "
            "the dataset was tokenized for another model"
        )
    if cfg.trainer.gradient_checkpointing:
        model.config.use_cache = False
    if quantization is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.trainer.gradient_checkpointing)
    if cfg.method.name is not Method.full:
        model = _with_lora(model, cfg)
    if cfg.method.fast_dropout:
        use_fast_dropout(model)
    return model


def _quantization(cfg: TrainConfig) -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=cfg.method.quant_type,
        bnb_4bit_use_double_quant=cfg.method.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, cfg.method.compute_dtype),
    )


def _device_map() -> Any:
    import os

    import torch

    if torch.cuda.is_available():
        return {"": int(os.environ.get("LOCAL_RANK", 0))}
    return {"": "cpu"}


def _with_lora(model: Any, cfg: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    targets = cfg.method.target_modules or list(cfg.model.lora_target_modules) or "all-linear"
    lora = LoraConfig(
        r=cfg.method.r,
        lora_alpha=cfg.method.alpha,
        lora_dropout=cfg.method.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
        bias="none",
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as error:
        raise ChatcloneError(
            f"LoRA target modules {targets} do not fit {type(model).__name__}: "
            f"{str(error).splitlines()[0][:200]}; set model.lora_target_modules or "
            "method.target_modules"
        ) from None


def merge_adapter(base: str, adapter_dir: Path, out_dir: Path, dtype: str) -> Path:
    """Merge a LoRA adapter into a freshly loaded full-precision base and save it (never into 4-bit weights)."""
    from peft import PeftModel

    model = load_model(base, dtype=dtype)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(out_dir)
    return out_dir
