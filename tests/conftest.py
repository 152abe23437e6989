"""Shared test helpers: paths to the team's shared samples and a config builder for process_messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatclone.modeling import embedded_model_dir

from chatclone.config.process_messages import ProcessMessagesConfig

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "sample_exports"
DM = "Direct Messages - Orrin [1118608583297251434]"
GUILD = "Lantern Hollow - Text Channels - general [888880580528273654]"
TARGET_ID = "607216646228391176"
TARGET_USERNAME = "tamsin.vale"


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/sample_exports is not beside the checkout")
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
