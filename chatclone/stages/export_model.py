"""export_model: a train run's clone as a GGUF file, an Ollama Modelfile and a README, checked before it is written."""

from __future__ import annotations

import hashlib
import re
from itertools import islice
from pathlib import Path
from typing import Any

from rich.console import Console

from chatclone import logs, runs
from chatclone.chat_records import read_records, split_file
from chatclone.config.export_model import ExportModelConfig
from chatclone.errors import ChatcloneError
from chatclone.export.bundle import modelfile, readme
from chatclone.export.chat_format import check_templates, go_template, jinja_template, turn_pieces
from chatclone.export.gguf_file import check_architecture, write_gguf
from chatclone.export.vocab import check_vocab, pre_tokenizer
from chatclone.generation.clone import CloneSpec, locate
from chatclone.generation.prompt import PromptBuilder
from chatclone.generation.running import partners
from chatclone.modeling import load_model, load_tokenizer

STAGE = "export_model"


UNCHECKED = (
    "note: the templates were compared with training on no validation turn: each follows a message from someone "
    "who is not a partner in the training data (the templates cannot name them), so this export's template is "
    "unchecked; validation conversations with the training data's partners would check it"
)


def export_model(cfg: ExportModelConfig, run_dir: Path, console: Console | None = None) -> dict:
    """Check everything that needs no weights, then merge, write the GGUF, the Modelfile, README.md, manifest.json."""
    console = console or logs.console()
    cfg.check()
    runs.start_run(run_dir)
    spec = locate(cfg)
    tokenizer_dir = spec.data_dir / "tokenizer"
    check_architecture(_model_config(spec), spec.weights or spec.base_model)
    check_vocab(tokenizer_dir)
    builder = PromptBuilder(load_tokenizer(tokenizer_dir), spec.format)
    pre_tokenizer(builder.tokenizer, tokenizer_dir)  # an unknown pre-tokenizer fails now, not after the merge
    user_name = _user_name(cfg, spec)
    names, pieces, system = _known_names(spec, user_name), turn_pieces(builder), spec.format.style.system_prompt
    template, jinja = go_template(pieces, names, user_name), jinja_template(pieces, names, user_name, system)
    compared = check_templates(template, jinja, builder, _validation(spec, cfg.check_conversations), user_name, names)
    if not compared:
        console.print(UNCHECKED, highlight=False, soft_wrap=True)
    name = cfg.name or _slug(spec.target)
    gguf_name = f"{name}-{cfg.quantization}.gguf"
    with runs.new_files(run_dir, gguf_name) as [partial]:
        summary = write_gguf(merged_model(spec), tokenizer_dir, partial, cfg.quantization, name, jinja)
    digest = _sha256(run_dir / gguf_name)
    stops = [spec.format.end_of_turn] + [f"\n{n}:" for n in [*_known_names(spec, user_name), spec.target]]
    example, _ = builder.render([builder.message(user_name or "", "hey, you up?")], spec.target)
    info = {
        "source_run": str(spec.run_dir),
        "checkpoint": spec.kind if spec.kind == "base" else cfg.checkpoint.value,
        "kind": spec.kind,
        "base_model": spec.base_model,
        "method": _method(spec),
        "quantization": cfg.quantization,
        "file": gguf_name,
        "sha256": digest,
        "bytes": (run_dir / gguf_name).stat().st_size,
        "tensors": summary.types,
        "parameters": summary.parameters,
        "target": spec.target,
        "user_name": user_name,
        "template_checked_turns": compared,
        "sampling": runs.plain(cfg.sampling),
    }
    files = {
        "Modelfile": modelfile(gguf_name, template, system, stops, cfg.sampling, spec.format.max_length),
        "chat_template.jinja": jinja + "\n",
        "prompt_example.txt": example,
        "README.md": readme(name, gguf_name, example, stops, user_name, info),
    }
    with runs.new_files(run_dir, *files) as paths:
        for path, text in zip(paths, files.values()):
            path.write_text(text, encoding="utf-8")
    console.print(
        f"exported {spec.target}'s clone ({spec.kind}, {cfg.quantization}, "
        f"{info['bytes'] / 2**20:.1f} MiB, template checked on {compared} turns) to {run_dir}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"next: cd {run_dir} && ollama create {name} -f Modelfile && ollama run {name}", highlight=False, soft_wrap=True
    )
    runs.finish_run(run_dir, STAGE, cfg, inputs=[str(spec.run_dir)], outputs=[gguf_name, *files], summary=info)
    return info


def _model_config(spec: CloneSpec) -> Any:
    from transformers import AutoConfig

    from chatclone.modeling import resolve_model

    folder = spec.weights if spec.kind in ("merged", "full") else spec.base_model
    source, kwargs = resolve_model(folder).from_pretrained_args()
    return AutoConfig.from_pretrained(source, **kwargs)


def merged_model(spec: CloneSpec) -> Any:
    """float32 weights: a merged/full checkpoint as saved, or the adapter merged into a freshly loaded unquantised
    base (for a qlora run too: the base it recorded, never 4-bit weights)."""
    if spec.kind in ("merged", "full"):
        return load_model(spec.weights, dtype="float32")
    model = load_model(spec.base_model, dtype="float32")
    if spec.kind == "adapter":
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(spec.weights), is_trainable=False).merge_and_unload()
    return model.eval()


def _method(spec: CloneSpec) -> str | None:
    try:
        return runs.read_manifest(spec.run_dir).get("summary", {}).get("method")
    except ChatcloneError:
        return None


def _user_name(cfg: ExportModelConfig, spec: CloneSpec) -> str | None:
    if not spec.format.style.speaker_names:
        return None
    user = cfg.user_name or partners(spec, [], 1)[0]
    if user == spec.target:
        raise ChatcloneError(f"user_name={user} is the target: the clone answers the target's partners")
    return user


def _known_names(spec: CloneSpec, user_name: str | None) -> list[str]:
    return list(dict.fromkeys([*([user_name] if user_name else []), *spec.partners]))


def _validation(spec: CloneSpec, count: int) -> list[list[dict]]:
    """Up to `count` validation conversations of the run's process_messages run (the template check)."""
    inputs = runs.read_manifest(spec.data_dir).get("inputs") or []
    path = Path(inputs[0]) / split_file("validation") if inputs else None
    if path is None or not path.is_file():
        raise ChatcloneError(
            "the dataset's process_messages run has no validation.jsonl to check the Modelfile template on",
            path=spec.data_dir,
        )
    return [
        [{"role": m.role, "name": m.name, "content": m.content} for m in record.messages]
        for record in islice(read_records(path), count)
    ]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "clone"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
