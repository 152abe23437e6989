"""Shared test helpers: paths to the sample exports shipped in tests/fixtures, `compose` (chatclone.config.compose: a
script's config as the script builds it, conf/<script>.yaml composed by Hydra as the typed schema object; the one way
the tests build a config, so that every value a test does not set is the one a user gets), and `run_script`: a script
run the way a user runs it (its own process, its exit status and output)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from chatclone.config import compose  # noqa: F401  (the tests import it from here)
from chatclone.config.process_messages import ProcessMessagesConfig
from chatclone.modeling import embedded_model_dir

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


def run_script(
    name: str,
    *args: str,
    cwd: Path = ROOT,
    env: Mapping[str, str | None] | None = None,
    stdin: str = "",
    timeout: float = 120,
    launcher: Sequence[str] = (sys.executable,),
) -> subprocess.CompletedProcess:
    """`python <name>.py <args>` (`name` as "train" or "benchmarks/fidelity", a path under the repo root) in its own
    process, run from `cwd`, as a user types it; returns the finished process, its stdout and stderr captured as
    text (nothing is checked: the caller asserts on returncode, stdout and stderr).

    The script sees this process's environment with COLUMNS=200 (a wide terminal: rich wraps what it prints at the
    width, 80 columns when there is none, so a line a test reads stays one line) and `env` laid over it (a value of
    None removes that variable); `stdin` is what is piped in (empty by default: a script never waits on the terminal
    pytest runs in); after `timeout` seconds subprocess.TimeoutExpired fails the test; `launcher` is what runs the
    script instead of this Python (torchrun and its flags, say)."""
    environment = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [*launcher, str(ROOT / f"{name}.py"), *args],
        cwd=cwd,
        env={key: value for key, value in environment.items() if value is not None},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def make_config(inputs, target: str | None = TARGET_USERNAME, **sections) -> ProcessMessagesConfig:
    """process_messages' composed config for `inputs` (paths, set after composing: they need no quoting), with
    section fields overridden by keyword dicts."""
    cfg = compose("process_messages", ["progress=false"])
    cfg.input, cfg.target = [str(p) for p in inputs], target
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


def train_tiny_run(root: Path, dataset: Path, model: Path, *more: str, name: str = "run") -> Path:
    """A finished train run under `root`/train/`name`: 2 LoRA steps of `model` (the tiny Llama) on the
    tokenize_dataset run `dataset`, no W&B, no checkpoints; `more` overrides add to these. Returns the run dir."""
    from chatclone.stages.train import train

    cfg = compose(
        "train",
        [
            f"outputs_root={root}",
            f"input={dataset}",
            f"model.name_or_path={model}",
            "trainer.max_steps=2",
            "wandb.mode=disabled",
            "trainer.save_strategy=no",
            *more,
        ],
    )
    train(cfg, root / "train" / name, console=quiet())
    return root / "train" / name


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
    from chatclone.stages.process_messages import process_messages
    from chatclone.stages.tokenize_dataset import tokenize_dataset

    root = tmp_path_factory.mktemp("outputs")
    dm = ROOT / "examples" / "sample_exports" / f"{DM}.json"
    process_messages(make_config([dm]), root / "process_messages" / "run", console=quiet())
    cfg = compose(
        "tokenize_dataset",
        [
            f"input={root / 'process_messages' / 'run'}",
            "progress=false",
            "num_proc=1",
            f"model.name_or_path={tiny_llama}",
        ],
    )
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


@pytest.fixture(scope="session")
def clone_root(dm_tokenized: Path, tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """outputs_root holding one finished train run (final/ adapter and merged/) of the tiny Llama (the clone the
    generation, demo and Discord bot tests talk to)."""
    root = tmp_path_factory.mktemp("clone-outputs")
    dataset = dm_tokenized / "tokenize_dataset" / "run"
    train_tiny_run(root, dataset, tiny_llama, "export.merge=true", "export.merged_dtype=float32")
    return root
