"""export_model.py: the GGUF file (round trip through transformers, key by key against the wheel's own GGUF), the
Ollama Modelfile's template (byte for byte against chatclone's renderer) and bad input, on the tiny Llama clone."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import chatclone.config  # noqa: F401
from chatclone import runs
from chatclone.errors import ChatcloneError
from chatclone.export.chat_format import alternating_tail, go_template, ollama_messages, template_data, turn_pieces
from chatclone.export.gguf_file import check_architecture, write_gguf
from chatclone.export.gotemplate import render
from chatclone.generation.clone import locate
from chatclone.generation.prompt import PromptBuilder
from chatclone.modeling import embedded_gguf_path, load_tokenizer
from chatclone.stages.export_model import export_model, merged_model
from tests.conftest import compose, quiet, run_script, train_tiny_run


def train_run(root: Path, dm_tokenized: Path, model: Path, *more: str) -> Path:
    dataset = dm_tokenized / "tokenize_dataset" / "run"
    train_tiny_run(root, dataset, model, "eval.sample_contexts=0", "trainer.learning_rate=5e-2", *more)
    return root


@pytest.fixture(scope="module")
def lora_root(dm_tokenized: Path, tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """outputs_root with one finished LoRA train run of the tiny Llama (final/ is an adapter)."""
    return train_run(tmp_path_factory.mktemp("export-outputs"), dm_tokenized, tiny_llama)


def export(root: Path, *overrides: str, run_dir: Path | None = None) -> tuple[Path, dict]:
    cfg = compose("export_model", [f"outputs_root={root}", *overrides])
    run_dir = run_dir or root / "export_model" / "-".join(o.split("=")[1] for o in overrides if "=" in o) or "f16"
    return run_dir, export_model(cfg, run_dir, console=quiet())


@pytest.fixture(scope="module")
def exports(lora_root: Path) -> dict[str, tuple[Path, dict]]:
    """The LoRA clone exported as F16 through the stage (merged into a fresh base)."""
    return {"F16": export(lora_root, "quantization=F16", run_dir=lora_root / "export_model" / "F16")}


def gguf_model(run_dir: Path, info: dict):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        str(run_dir), gguf_file=info["file"], dtype=torch.float32, local_files_only=True
    ).eval()


def prompt_ids(root: Path, count: int = 3) -> tuple[list[list[int]], object]:
    """Token ids of the prompts for the first `count` target turns of the validation split (the DM has 3), as
    chatclone renders them for generation."""
    spec = locate(compose("inference", [f"outputs_root={root}"]))
    tokenizer = load_tokenizer(spec.data_dir / "tokenizer")
    builder = PromptBuilder(tokenizer, spec.format)
    validation = Path(runs.read_manifest(spec.data_dir)["inputs"][0]) / "validation.jsonl"
    ids = []
    for line in validation.read_text(encoding="utf-8").splitlines():
        messages = json.loads(line)["messages"]
        for k in range(1, len(messages)):
            if messages[k]["name"] == spec.target and len(ids) < count:
                ids.append(
                    tokenizer(builder.render(messages[:k], spec.target)[0], add_special_tokens=False)["input_ids"]
                )
    assert len(ids) == count
    return ids, spec


def test_f16_round_trip_matches_the_merged_model(lora_root, exports):
    """transformers reads the F16 file back: its logits stay within float16 rounding of the float32 merged model,
    and with the merged weights rounded to float16 (what F16 stores), the same 32 greedy tokens on every prompt
    (against the float32 model itself a near-tie of this random tiny model can flip one argmax)."""
    import copy

    import torch

    ids, spec = prompt_ids(lora_root)
    merged, exported = merged_model(spec), gguf_model(*exports["F16"])
    rounded = copy.deepcopy(merged)
    with torch.no_grad():
        for name, weight in rounded.named_parameters():
            if weight.ndim >= 2:
                weight.copy_(weight.to(torch.float16).to(torch.float32))
    worst, same, total = 0.0, 0, 0
    with torch.no_grad():
        for prompt in ids:
            x = torch.tensor([prompt])
            a, b = merged(x).logits, exported(x).logits
            worst = max(worst, float((a - b).abs().max()))
            same, total = same + int((a.argmax(-1) == b.argmax(-1)).sum()), total + a.shape[1]
            greedy = [
                m.generate(x, max_new_tokens=32, do_sample=False, min_new_tokens=32)[0].tolist()
                for m in (rounded, exported)
            ]
            assert greedy[0] == greedy[1] and len(greedy[0]) == len(prompt) + 32
    print(
        f"F16 export: max |logit difference| {worst:.2e} from the float32 merged model, top-1 agreement "
        f"{same / total:.1%} over {total} positions of {len(ids)} validation prompts; same 32 greedy tokens"
    )
    assert worst < 5e-2 and same / total > 0.95
    info = exports["F16"][1]
    assert info["kind"] == "adapter" and info["tensors"] == {"F32": 5, "F16": 16}  # output.weight too: not tied


def dequantised_model(path: Path, like):
    """`like` (a loaded HF model) with every weight replaced by the GGUF file's, dequantised and un-permuted: what
    llama.cpp computes with, as a torch model (transformers' own GGUF loader takes ~25 s a file here)."""
    import copy

    import torch
    from gguf import GGUFReader
    from gguf.quants import dequantize

    from chatclone.export.gguf_file import _tensors

    config, model = like.config, copy.deepcopy(like)
    stored = {t.name: dequantize(t.data, t.tensor_type) for t in GGUFReader(str(path)).tensors}
    names = {
        gguf_name: hf
        for hf, (gguf_name, _) in zip(
            [n for n in like.state_dict() if not (config.tie_word_embeddings and n == "lm_head.weight")],
            _tensors(like, config),
        )
    }
    state = {}
    for gguf_name, hf in names.items():
        data = stored[gguf_name].reshape(like.state_dict()[hf].shape)
        if hf.endswith(("q_proj.weight", "k_proj.weight")):
            heads = config.num_attention_heads if "q_proj" in hf else config.num_key_value_heads
            data = data.reshape(heads, data.shape[0] // heads // 2, 2, -1).swapaxes(1, 2).reshape(data.shape)
        state[hf] = torch.from_numpy(np.ascontiguousarray(data))
    model.load_state_dict(state, strict=False)
    return model.eval()


def test_quantised_exports_top1_agreement(lora_root, tmp_path):
    import torch

    ids, spec = prompt_ids(lora_root)
    merged = merged_model(spec)
    for quant, floor in (("Q8_0", 0.9), ("Q4_0", 0.0)):
        path = tmp_path / f"{quant}.gguf"
        summary = write_gguf(merged, spec.data_dir / "tokenizer", path, quant, "clone")
        model, same, total = dequantised_model(path, merged), 0, 0
        with torch.no_grad():
            for prompt in ids:
                x = torch.tensor([prompt])
                a, b = merged(x).logits.argmax(-1), model(x).logits.argmax(-1)
                same, total = same + int((a == b).sum()), total + a.numel()
        print(
            f"{quant} export of the tiny random clone: top-1 agreement with the merged model {same / total:.1%} "
            f"over {total} positions (the embedded model: benchmarks/bench_export.py)"
        )
        assert summary.types == {"F32": 5, quant: 16} and same / total >= floor


def test_export_dir_holds_gguf_modelfile_readme_and_manifest_with_sha256(exports):
    import hashlib

    run_dir, info = exports["F16"]
    manifest = runs.read_manifest(run_dir)
    assert manifest["stage"] == "export_model"
    assert manifest["outputs"] == [info["file"], "Modelfile", "chat_template.jinja", "prompt_example.txt", "README.md"]
    assert (
        (run_dir / "prompt_example.txt")
        .read_text(encoding="utf-8")
        .endswith("Orrin: hey, you up?<|im_end|>\n<|im_start|>assistant\n")
    )
    assert hashlib.sha256((run_dir / info["file"]).read_bytes()).hexdigest() == manifest["summary"]["sha256"]
    modelfile = (run_dir / "Modelfile").read_text(encoding="utf-8")
    assert f"FROM ./{info['file']}\n" in modelfile and 'PARAMETER stop """<|im_end|>"""' in modelfile
    assert 'PARAMETER stop """\nOrrin:"""' in modelfile and "PARAMETER temperature 1.0" in modelfile
    text = (run_dir / "README.md").read_text(encoding="utf-8")
    assert "ollama create" in text and "llama-cli -m" in text and info["sha256"] in text
    assert info["template_checked_turns"] > 0
    from gguf import GGUFReader

    jinja = (run_dir / "chat_template.jinja").read_text(encoding="utf-8")
    assert GGUFReader(str(run_dir / info["file"])).fields["tokenizer.chat_template"].contents() + "\n" == jinja


def modelfile_parts(path: Path) -> dict[str, list[str]]:
    """TEMPLATE, SYSTEM and PARAMETER stop values as Ollama's parser reads triple-quoted values."""
    text = path.read_text(encoding="utf-8")
    found: dict[str, list[str]] = {}
    for key, value in re.findall(r'^(TEMPLATE|SYSTEM|PARAMETER stop) """(.*?)"""$', text, re.S | re.M):
        found.setdefault(key, []).append(value)
    return found


def test_modelfile_and_jinja_templates_render_validation_conversations_byte_for_byte(lora_root, exports):
    run_dir, info = exports["F16"]
    parts = modelfile_parts(run_dir / "Modelfile")
    template, system = parts["TEMPLATE"][0], parts.get("SYSTEM", [""])[0]
    spec = locate(compose("inference", [f"outputs_root={lora_root}"]))
    builder = PromptBuilder(load_tokenizer(spec.data_dir / "tokenizer"), spec.format)
    assert system == spec.format.style.system_prompt and system
    validation = Path(runs.read_manifest(spec.data_dir)["inputs"][0]) / "validation.jsonl"
    from transformers.utils.chat_template_utils import _compile_jinja_template

    # the Jinja template (llama.cpp, LM Studio) gets whole histories: nothing merges same-role messages there
    jinja = _compile_jinja_template((run_dir / "chat_template.jinja").read_text(encoding="utf-8"))
    compared = 0
    for line in validation.read_text(encoding="utf-8").splitlines():
        messages = json.loads(line)["messages"]
        for k, message in enumerate(messages):
            history = alternating_tail([{**m, "content": m["content"].strip()} for m in messages[:k]], spec.target)
            if message["name"] != spec.target or not history:
                continue  # Ollama merges consecutive messages of one role before the template (README)
            expected = builder.render(history, spec.target)[0]
            got = render(template, template_data(ollama_messages(history, spec.target, "Orrin", system)))
            assert got == expected
            full = [{**m, "content": m["content"].strip()} for m in messages[:k]]
            plain = ollama_messages(full, spec.target, "Orrin", system, collate=False)
            assert jinja.render(messages=plain, add_generation_prompt=True) == builder.render(full, spec.target)[0]
            compared += 1
    assert compared >= 1
    # With two known partners: one written as `Name: text` by the client stays that speaker's; plain messages are
    # the default partner's (user_name) and get its name, as training wrote them.
    two = go_template(turn_pieces(builder), ["Orrin", "Pippa"], "Orrin")
    history = [
        {"role": "user", "name": "Pippa", "content": "quiz tonight?"},
        {"role": "assistant", "name": spec.target, "content": "yes!!"},
        {"role": "user", "name": "Orrin", "content": "count me in"},
    ]
    got = render(two, template_data(ollama_messages(history, spec.target, "Orrin", system)))
    assert got == builder.render(history, spec.target)[0]
    assert "Pippa: quiz tonight?" in got and "Orrin: count me in" in got and got.endswith("<|im_start|>assistant\n")


def test_go_template_subset_follows_go_semantics():
    template = (
        '{{ $s := .System }}{{ range .Messages }}{{ if eq .Role "user" }}[{{ if $s }}{{ $s }}|'
        '{{ $s = "" }}{{ end }}{{ if or (eq (printf "%.3s" .Content) "Ab:") }}{{ else }}Me: {{ end }}'
        '{{ .Content }}]{{ else if eq .Role "assistant" }}<{{ .Content }}>{{ else }}?{{ end }}{{ end }}'
        '{{ "\\u00e9{{\\"" }}'
    )
    messages = [
        {"Role": "user", "Content": "hi"},
        {"Role": "assistant", "Content": "yo"},
        {"Role": "user", "Content": "Ab: x"},
        {"Role": "tool", "Content": ""},
    ]
    got = render(template, {"System": "sys", "Messages": [{k.title(): v for k, v in m.items()} for m in messages]})
    assert got == '[sys|Me: hi]<yo>[Ab: x]?é{{"'
    with pytest.raises(ValueError):
        render("{{- .System }}", {})


@pytest.fixture(scope="module")
def embedded_export(embedded_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unmodified embedded base written as F16 (about 270 MB, once)."""
    import torch
    from transformers import AutoModelForCausalLM

    path = tmp_path_factory.mktemp("embedded-export") / "smollm2-F16.gguf"
    model = AutoModelForCausalLM.from_pretrained(str(embedded_dir), dtype=torch.float32, local_files_only=True)
    write_gguf(model, embedded_dir, path, "F16", "smollm2")
    return path


def test_embedded_base_export_matches_the_wheels_gguf_key_by_key(embedded_export):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    ours, wheel = GGUFReader(str(embedded_export)), GGUFReader(str(embedded_gguf_path()))
    keys = {k for k in wheel.fields if not k.startswith(("general.", "GGUF."))}
    assert keys == {k for k in ours.fields if not k.startswith(("general.", "GGUF."))}
    for key in sorted(keys):
        assert ours.fields[key].types == wheel.fields[key].types, key
        assert ours.fields[key].contents() == wheel.fields[key].contents(), key
    assert ours.fields["tokenizer.ggml.pre"].contents() == "smollm"
    assert ours.fields["tokenizer.ggml.add_bos_token"].contents() is False
    theirs = {t.name: t for t in wheel.tensors}
    assert sorted(theirs) == sorted(t.name for t in ours.tensors) and "output.weight" not in theirs
    for tensor in ours.tensors:
        other = theirs[tensor.name]
        assert list(tensor.shape) == list(other.shape), tensor.name
        a, b = dequantize(tensor.data, tensor.tensor_type), dequantize(other.data, other.tensor_type)
        # the cached model was dequantised from this Q4_1 file: only float16 rounding separates them
        assert float(np.abs(a - b).max()) <= 1e-3 * max(1.0, float(np.abs(b).max())), tensor.name


def test_qlora_run_is_exported_from_the_unquantised_base(dm_tokenized, tiny_llama, tmp_path):
    root = train_run(tmp_path, dm_tokenized, tiny_llama, "method=qlora")
    run_dir, info = export(root, "quantization=F16")
    assert info["method"] == "qlora" and info["kind"] == "adapter" and info["base_model"] == str(tiny_llama)
    assert info["tensors"] == {"F32": 5, "F16": 16}  # the merged float weights: no 4-bit tensor anywhere
    from gguf import GGUFReader

    assert {t.tensor_type.name for t in GGUFReader(str(run_dir / info["file"])).tensors} == {"F32", "F16"}


@pytest.mark.parametrize(
    "override, message",
    [
        ("quantization=Q5_5", "quantization=Q5_5: unknown; use one of F16, Q8_0, Q4_0, BF16"),
        ("quantization=Q4_K_M", "quantization=Q4_K_M: the K-quants need llama.cpp's llama-quantize"),
        ("checkpoint=best", "checkpoint=best: this train run has no best/"),
        ("user_name=a:b", "user_name: 'a:b' is not a speaker name"),
    ],
)
def test_bad_settings_fail_in_one_line(lora_root, tmp_path, override, message):
    with pytest.raises(ChatcloneError) as error:
        export(lora_root, override, run_dir=tmp_path / "out")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_unfinished_run_and_existing_export_are_refused(lora_root, exports, tmp_path):
    unfinished = tmp_path / "train" / "killed"
    shutil.copytree(lora_root / "train" / "run", unfinished)
    (unfinished / "manifest.json").unlink()
    with pytest.raises(ChatcloneError, match="not a finished chatclone run"):
        export(lora_root, f"run={unfinished}", run_dir=tmp_path / "a")
    with pytest.raises(ChatcloneError, match="already holds a finished run"):
        export(lora_root, "quantization=F16", run_dir=exports["F16"][0])
    half = tmp_path / "half"
    half.mkdir()
    (half / "clone-F16.gguf").write_bytes(b"")
    with pytest.raises(ChatcloneError, match="output file exists already"):
        export(lora_root, "name=clone", run_dir=half)


def test_gpt2_and_phi3_are_refused_naming_what_is_missing():
    from transformers import GPT2Config, Phi3Config

    for config, missing in (
        (GPT2Config(architectures=["GPT2LMHeadModel"]), "c_attn"),
        (Phi3Config(architectures=["Phi3ForCausalLM"]), "qkv_proj"),
    ):
        with pytest.raises(ChatcloneError, match=missing) as error:
            check_architecture(config, "model")
        assert "\n" not in str(error.value)


def test_script_refuses_a_k_quant_in_one_line(tmp_path):
    result = run_script("export_model", f"outputs_root={tmp_path}", "quantization=Q4_K_M")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].startswith("error: quantization=Q4_K_M: the K-quants need llama.cpp")
    help_text = run_script("export_model", "--help").stdout
    assert "python export_model.py" in help_text and "llama-quantize" in help_text
    assert "sampling: creative, default, focused, greedy   (now: default)" in help_text


def test_run_base_exports_the_bare_base_in_the_runs_format(lora_root, tmp_path):
    from gguf import GGUFReader

    run_dir, info = export(lora_root, "run=base", "quantization=BF16", run_dir=tmp_path / "base")
    assert info["kind"] == "base" and info["checkpoint"] == "base" and info["tensors"] == {"F32": 5, "BF16": 16}
    reader = GGUFReader(str(run_dir / info["file"]))
    assert reader.fields["general.file_type"].contents() == 32  # LlamaFileType.MOSTLY_BF16
    assert 'SYSTEM """' in (run_dir / "Modelfile").read_text(encoding="utf-8")


def test_a_mistral_architecture_model_is_written_as_llama(embedded_dir, tmp_path):
    """MistralForCausalLM goes out as llama.cpp's LLAMA architecture (as its converter writes it): same tensors."""
    import torch
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM

    from tests.tiny_models import build_tiny_model

    folder = build_tiny_model("mistral", tmp_path / "mistral", embedded_dir)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True).eval()
    summary = write_gguf(model, folder, tmp_path / "mistral.gguf", "F16", "mistral")
    assert summary.types == {"F32": 5, "F16": 16}
    assert GGUFReader(str(tmp_path / "mistral.gguf")).fields["general.architecture"].contents() == "llama"
    x = torch.tensor([list(range(1, 40))])
    with torch.no_grad():
        worst = float((model(x).logits - dequantised_model(tmp_path / "mistral.gguf", model)(x).logits).abs().max())
    assert worst < 5e-2
