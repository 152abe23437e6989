"""Find a clone (a train run's checkpoint, or the bare base for comparison) and load it for generation.

`locate` reads only manifests and small JSON files, so a missing run, checkpoint or a mismatched adapter fails in
a second, before any weights load. `load_clone` then loads the tokenizer of the run's tokenize_dataset run (the
exact chat template the model was trained with) and the model: base + LoRA adapter, a merged or fully fine-tuned
model, or the base alone.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from chatclone import runs
from chatclone.chat_records import USER, read_records, split_file
from chatclone.config.generation import BASE_RUN, Checkpoint, CloneStageConfig, Device
from chatclone.errors import ChatcloneError
from chatclone.formatting import Style
from chatclone.generation.prompt import PromptBuilder, PromptFormat
from chatclone.modeling import load_model, load_tokenizer, same_model

TRAIN_STAGE = "train"
SPEAKER_RECORDS = 2000  # records of train.jsonl read to find the target's partners
ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class CloneSpec:
    """Everything about a clone that is known before loading weights."""

    kind: str  # adapter | merged | full | base
    run_dir: Path  # the train run (with run=base: the run whose prompt format is borrowed)
    weights: Path | None  # the checkpoint folder; None for the base
    base_model: str
    data_dir: Path  # the run's tokenize_dataset run
    model_info: dict
    format: PromptFormat
    partners: list[str] = field(default_factory=list)  # other speakers in the training data, most frequent first

    @property
    def target(self) -> str:
        return self.format.target

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "run": str(self.run_dir),
            "weights": str(self.weights) if self.weights else None,
            "base_model": self.base_model,
            "dataset": str(self.data_dir),
            "target": self.target,
            "system_prompt": self.format.style.system_prompt,
            "model_group": self.model_info.get("group"),
        }


@dataclass
class Clone:
    spec: CloneSpec
    model: Any
    tokenizer: Any
    prompts: PromptBuilder
    stop_ids: list[int]
    pad_id: int
    device: str


def locate(cfg: CloneStageConfig) -> CloneSpec:
    """The clone `cfg` asks for, checked without loading any weights."""
    base_only = cfg.run == BASE_RUN
    run_dir = runs.resolve_input(cfg.format_run if base_only else cfg.run, Path(cfg.outputs_root), TRAIN_STAGE)
    manifest = runs.read_manifest(run_dir)
    summary = manifest.get("summary", {})
    base = summary.get("base_model")
    if not base or not manifest.get("inputs"):
        raise ChatcloneError(
            "the train run's manifest has no base_model or dataset input (not a train run?)",
            path=run_dir / runs.MANIFEST,
        )
    _check_requested_base(cfg.base_model, base)
    return clone_spec(
        run_dir, None if base_only else cfg.checkpoint, base, Path(manifest["inputs"][0]), summary.get("model", {})
    )


def clone_spec(run_dir: Path, checkpoint: Checkpoint | None, base: str, data_dir: Path, model_info: dict) -> CloneSpec:
    """The clone in `run_dir` from what a train run knows (also before its manifest exists, as train.py's end-of-run
    evaluation needs): its checkpoint (None = the bare base), base model, dataset run and tokenize model info."""
    kind, weights = ("base", None) if checkpoint is None else _checkpoint(Path(run_dir), checkpoint)
    if kind == "adapter":
        _check_adapter_base(weights, base)
    fmt, data_manifest = _prompt_format(Path(data_dir), model_info)
    return CloneSpec(
        kind, Path(run_dir), weights, base, Path(data_dir), model_info, fmt, _partners(data_manifest, fmt.target)
    )


def _checkpoint(run_dir: Path, checkpoint: Checkpoint) -> tuple[str, Path]:
    folder = run_dir / checkpoint.value
    if not folder.is_dir():
        have = [c.value for c in Checkpoint if (run_dir / c.value).is_dir()]
        how = {
            "best": "only preset=regularized keeps a best/",
            "merged": "train with export.merge=true",
            "final": "the run did not finish",
        }[checkpoint.value]
        raise ChatcloneError(
            f"checkpoint={checkpoint.value}: this train run has no {checkpoint.value}/ ({how}); "
            f"it has: {', '.join(have) or 'no checkpoint'}",
            path=run_dir,
        )
    if (folder / ADAPTER_CONFIG).is_file():
        return "adapter", folder
    if (folder / "config.json").is_file():
        return ("merged" if checkpoint is Checkpoint.merged else "full"), folder
    raise ChatcloneError("holds neither a LoRA adapter (adapter_config.json) nor a model (config.json)", path=folder)


def _check_requested_base(requested: str | None, base: str) -> None:
    if requested is not None and not same_model(requested, base):
        raise ChatcloneError(
            f"base_model={requested}, but this run was trained on {base}: an adapter only fits "
            "the base it was trained on (leave base_model out to use the run's own)"
        )


def _check_adapter_base(weights: Path, base: str) -> None:
    try:
        adapter_base = json.loads((weights / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as error:
        raise ChatcloneError(f"unreadable adapter config: {error}", path=weights / ADAPTER_CONFIG) from None
    if adapter_base and not same_model(adapter_base, base):
        raise ChatcloneError(
            f"this adapter was trained on {adapter_base}, but the run's manifest says its base is "
            f"{base}: the adapter does not belong to this run's base model",
            path=weights / ADAPTER_CONFIG,
        )


def _prompt_format(data_dir: Path, model_info: dict) -> tuple[PromptFormat, dict]:
    """How the run's training data was rendered, from its tokenize_dataset run."""
    if not (data_dir / "tokenizer").is_dir():
        raise ChatcloneError(
            "the train run's dataset run is missing its tokenizer/ (the chat template the model "
            "was trained with); was it moved or deleted?",
            path=data_dir,
        )
    manifest = runs.read_manifest(data_dir)
    summary, config = manifest.get("summary", {}), manifest.get("config", {})
    formatting, model = config.get("formatting", {}), config.get("model", {})
    style = Style(
        system_prompt=summary.get("system_prompt", ""),
        system_role=model.get("system_role", True),
        alternating_roles=model.get("alternating_roles", False),
        speaker_names=formatting.get("speaker_names", True),
        merge_separator=formatting.get("merge_separator", "\n"),
    )
    template = data_dir / "tokenizer" / "chat_template.jinja"
    template_text = template.read_text(encoding="utf-8") if template.is_file() else None
    fmt = PromptFormat(
        summary.get("target") or "the target",
        style,
        template_text or "",
        model_info.get("end_of_turn") or "",
        int(model_info.get("max_length") or 1024),
    )
    return fmt, manifest


def _partners(data_manifest: dict, target: str) -> list[str]:
    """The target's partners in the training data, most frequent first (from the process_messages run)."""
    inputs = data_manifest.get("inputs") or []
    train = Path(inputs[0]) / split_file("train") if inputs else None
    if train is None or not train.is_file():
        return []
    counts = Counter(
        m.name for record in islice(read_records(train), SPEAKER_RECORDS) for m in record.messages if m.role == USER
    )
    return [name for name, _ in counts.most_common() if name and name != target and ":" not in name]


def load_clone(spec: CloneSpec, cfg: CloneStageConfig) -> Clone:
    """Tokenizer (with the training chat template) and model, on the device, in eval mode."""
    tokenizer = load_tokenizer(spec.data_dir / "tokenizer")
    fmt = spec.format
    if not fmt.template:  # an older tokenizer folder with the template inside tokenizer_config.json
        template = tokenizer.chat_template
        fmt = PromptFormat(
            fmt.target, fmt.style, template if isinstance(template, str) else "", fmt.end_of_turn, fmt.max_length
        )
        spec.format = fmt
    if not fmt.template or not fmt.end_of_turn:
        raise ChatcloneError("the dataset run records no chat template or end-of-turn token", path=spec.data_dir)
    device = _device(cfg.device)
    model = _load_model(spec, cfg, device)
    if cfg.fast_decode and device == "cpu":
        from chatclone.generation.fastdecode import enable_fast_decode

        enable_fast_decode(model)
    if cfg.compile_decode:
        from chatclone.generation.fastdecode import compile_decode_steps

        compile_decode_steps(model)
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise ChatcloneError(
            f"the clone's tokenizer has {len(tokenizer)} tokens but the model has {rows} embeddings: "
            "the weights are not the ones this run trained",
            path=spec.weights or spec.base_model,
        )
    stops, pad = stop_and_pad_ids(spec.model_info, tokenizer)
    return Clone(spec, model, tokenizer, PromptBuilder(tokenizer, fmt), stops, pad, device)


def stop_and_pad_ids(info: dict, tokenizer: Any) -> tuple[list[int], int]:
    """The token ids a reply stops at (end of turn, eos) and the pad id, from the tokenize run's model info."""
    stops = [
        i
        for i in dict.fromkeys([info.get("end_of_turn_id"), info.get("eos_token_id"), tokenizer.eos_token_id])
        if isinstance(i, int)
    ]
    pad = info.get("pad_token_id") if isinstance(info.get("pad_token_id"), int) else stops[0]
    return stops, pad


def _device(choice: Device) -> str:
    import torch

    if choice is Device.cuda and not torch.cuda.is_available():
        raise ChatcloneError("device=cuda, but no CUDA device is available: use device=auto or device=cpu")
    return "cuda" if choice is not Device.cpu and torch.cuda.is_available() else "cpu"


def _load_model(spec: CloneSpec, cfg: CloneStageConfig, device: str) -> Any:
    dtype = cfg.dtype or spec.model_info.get("dtype") or "float32"
    if spec.kind in ("merged", "full"):
        model = load_model(spec.weights, dtype=dtype)
    else:
        model = load_model(spec.base_model, dtype=dtype)  # resolve_model: a deleted embedded cache is re-converted
        if spec.kind == "adapter":
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(spec.weights), is_trainable=False)
            if cfg.fuse_adapter:
                model = model.merge_and_unload()
    return model.to(device).eval()
