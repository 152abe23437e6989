"""A Llama-architecture model (SmolLM2, Mistral, any Llama/Mistral hub model) as a GGUF file, with gguf-py only.

What llama.cpp's own converter (convert_hf_to_gguf.py, `LlamaModel`) does, for the models chatclone trains:
tensor names from `gguf.get_tensor_name_map(MODEL_ARCH.LLAMA, n_layers)`; `q_proj`/`k_proj` rows permuted back to
the interleaved rotary layout llama.cpp expects (`permute`, the converter's `LlamaModel.permute`); a tied `lm_head`
not written; 1-D tensors (norms) in F32 and every 2-D weight in the chosen type. `gguf.quantize` implements F16,
BF16, Q8_0 and Q4_0 here; the K-quants (Q4_K_M, ...) need llama.cpp's `llama-quantize` on the F16 file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatclone.config.export_model import check_quantization
from chatclone.errors import ChatcloneError

LLAMA_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")
# One line each: why the other architectures chatclone trains are not exported.
REFUSED_ARCHITECTURES = {
    "GPT2LMHeadModel": "GPT-2 is not exported: its fused c_attn and Conv1D (transposed) weights need their own "
    "mapping (MODEL_ARCH.GPT2), which this exporter does not have; convert merged/ with llama.cpp's "
    "convert_hf_to_gguf.py",
    "Phi3ForCausalLM": "Phi-3 is not exported: its fused qkv_proj/gate_up_proj weights and rope scaling factors "
    "need their own mapping (MODEL_ARCH.PHI3), which this exporter does not have; convert merged/ "
    "with llama.cpp's convert_hf_to_gguf.py",
}


@dataclass(frozen=True)
class GgufSummary:
    tensors: int
    types: dict[str, int]  # GGML type name -> number of tensors
    parameters: int


def check_architecture(config: Any, where: Path | str) -> None:
    """Refuse, with one line naming what is missing, a model this writer cannot export (from its config only)."""
    archs = list(getattr(config, "architectures", None) or [])
    arch = archs[0] if archs else type(config).__name__
    if arch in REFUSED_ARCHITECTURES:
        raise ChatcloneError(REFUSED_ARCHITECTURES[arch], path=where)
    if arch not in LLAMA_ARCHITECTURES:
        raise ChatcloneError(
            f"architecture {arch} is not exported (only {', '.join(LLAMA_ARCHITECTURES)}); convert "
            "the model with llama.cpp's convert_hf_to_gguf.py",
            path=where,
        )
    rope = _rope(config)
    if rope.get("rope_type", "default") != "default":
        raise ChatcloneError(
            f"rope_type {rope['rope_type']!r} is not exported (it needs rope scaling keys and "
            "factors this exporter does not write); convert with llama.cpp's convert_hf_to_gguf.py",
            path=where,
        )


def _rope(config: Any) -> dict:
    rope = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    if "rope_theta" not in rope and getattr(config, "rope_theta", None) is not None:
        rope["rope_theta"] = config.rope_theta
    return rope


def permute(weights: Any, n_head: int, n_head_kv: int | None) -> Any:
    """HF's rotary layout of q/k rows (halves) -> llama.cpp's (interleaved pairs), as its converter does."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_gguf(
    model: Any, tokenizer_dir: Path, path: Path, quantization: str, name: str, chat_template: str | None = None
) -> GgufSummary:
    """Write `model` (a loaded float model) with the tokenizer in `tokenizer_dir` as one GGUF file at `path`;
    `chat_template` replaces the tokenizer's own as `tokenizer.chat_template`."""
    import gguf

    from chatclone.export.vocab import add_vocab

    config = model.config
    check_architecture(config, tokenizer_dir)
    check_quantization(quantization)
    qtype = gguf.GGMLQuantizationType[quantization]
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    _add_hparams(writer, config, quantization)
    add_vocab(writer, tokenizer_dir, config, chat_template)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    types: dict[str, int] = {}
    parameters = 0
    for gguf_name, data in _tensors(model, config):
        parameters += data.size
        kind = qtype if data.ndim >= 2 else gguf.GGMLQuantizationType.F32
        if kind in (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0) and data.shape[-1] % 32:
            kind = gguf.GGMLQuantizationType.F16  # rows not a whole number of 32-value blocks (as the converter)
        writer.add_tensor(gguf_name, gguf.quants.quantize(data, kind), raw_dtype=kind)
        types[kind.name] = types.get(kind.name, 0) + 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return GgufSummary(sum(types.values()), types, parameters)


def _add_hparams(writer: Any, config: Any, quantization: str) -> None:
    import gguf

    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
    writer.add_rope_freq_base(float(_rope(config).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_file_type(int(gguf.LlamaFileType[f"MOSTLY_{quantization}"]))
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // heads:  # llama.cpp assumes hidden/heads otherwise
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)


def _tensors(model: Any, config: Any):
    """(GGUF name, float32 numpy array) for every weight llama.cpp reads; the tied lm_head is left out."""
    import gguf
    import torch

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for hf_name, tensor in model.state_dict().items():
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ChatcloneError(
                f"tensor {hf_name} has no llama.cpp name (MODEL_ARCH.LLAMA): the model has weights "
                "this exporter does not know"
            )
        data = tensor.detach().to(torch.float32).cpu().numpy()
        if hf_name.endswith("q_proj.weight") or hf_name.endswith("q_proj.bias"):
            data = permute(data, heads, heads)
        elif hf_name.endswith("k_proj.weight") or hf_name.endswith("k_proj.bias"):
            data = permute(data, heads, kv_heads)
        yield gguf_name, data
