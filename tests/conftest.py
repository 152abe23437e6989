"""Shared test helpers: paths to the sample exports shipped in tests/fixtures and a config builder for process_messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatclone.modeling import embedded_model_dir

from chatclone.config.process_messages import ProcessMessagesConfig

ROOT = Path(__file__).resolve().parents[1]
# A copy of the team's ../shared/sample_exports (with its README of every quirk), so the suite needs nothing
# outside the checkout.
SHARED = ROOT / "tests" / "fixtures" / "sample_exports"
DM = "Direct Messages - Orrin [1118608583297251434]"
GUILD = "Lantern Hollow - Text Channels - general [888880580528273654]"
TARGET_ID = "607216646228391176"
TARGET_USERNAME = "tamsin.vale"


@pytest.fixture(scope="session")
def shared() -> Path:
    """The synthetic DiscordChatExporter samples (tests/fixtures/sample_exports)."""
    return SHARED


def make_config(inputs, target: str | None = TARGET_USERNAME, **sections) -> ProcessMessagesConfig:
    """A process_messages config as Hydra would build it, with section fields overridden by keyword dicts."""
    cfg = ProcessMessagesConfig(input=[str(p) for p in inputs], target=target, progress=False)
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(cfg, section), key, value)
    return cfg


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def target_turns(run_dir: Path) -> list[str]:
    """Contents of every trained target turn, train then validation."""
    out = []
    for name in ("train", "validation"):
        for record in read_jsonl(run_dir / f"{name}.jsonl"):
            out += [m["content"] for m in record["messages"] if m["role"] == "assistant" and m.get("train", True)]
    return out


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh cache root, so the conversion really runs (once per session, 30-60 s)."""
    return tmp_path_factory.mktemp("chatclone-cache")


@pytest.fixture(scope="session")
def embedded_dir(cache_root: Path) -> Path:
    """The embedded model converted into the session's cache root."""
    return embedded_model_dir(cache_root)


def quiet():
    """A rich console that prints nowhere, for stage calls in tests."""
    import io

    from rich.console import Console

    return Console(file=io.StringIO())


@pytest.fixture(scope="session")
def tiny_llama(embedded_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama (the embedded model's architecture) with the embedded tokenizer."""
    from tests.tiny_models import build_tiny_model

    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny") / "llama", embedded_dir)


@pytest.fixture(scope="session")
def dm_tokenized(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """outputs_root holding a process_messages and a tokenize_dataset run of the bundled DM for tiny_llama."""
    from chatclone.config.tokenize_dataset import TokenizeDatasetConfig
    from chatclone.stages.process_messages import process_messages
    from chatclone.stages.tokenize_dataset import tokenize_dataset

    root = tmp_path_factory.mktemp("outputs")
    dm = ROOT / "examples" / "sample_exports" / f"{DM}.json"
    process_messages(make_config([dm]), root / "process_messages" / "run", console=quiet())
    cfg = TokenizeDatasetConfig(input=str(root / "process_messages" / "run"), progress=False, num_proc=1)
    cfg.model.name_or_path = str(tiny_llama)
    tokenize_dataset(cfg, root / "tokenize_dataset" / "run", console=quiet())
    return root


@pytest.fixture(scope="session")
def serve_root(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """outputs_root with two finished train runs of the tiny Llama on the bundled DM, train/tamsin (target
    tamsin.vale) and train/orrin (orrin.byrd), for serve.py (tests/test_serve*.py)."""
    from tests.serving_helpers import train_tiny_clone

    root = tmp_path_factory.mktemp("serve-outputs")
    train_tiny_clone(root, tiny_llama, TARGET_USERNAME, "tamsin")
    train_tiny_clone(root, tiny_llama, "orrin.byrd", "orrin")
    return root
