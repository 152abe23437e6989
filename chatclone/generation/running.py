"""What the three generation stages share: check, find and load the clone, set up a session, write and finish."""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypedDict

from rich.console import Console

from chatclone import logs, runs
from chatclone.config.generation import BASE_RUN, STDIN_PROMPT, CloneStageConfig
from chatclone.generation.clone import Clone, CloneSpec, load_clone, locate
from chatclone.generation.generate import Generator, Reply
from chatclone.generation.records import GENERATIONS, describe, generation_rows, log_wandb, summarize, write_jsonl
from chatclone.generation.session import Printer, Session

FALLBACK_PARTNER = "Friend"  # a partner's name when the training data names none


@dataclass
class Streams:
    """Where a stage reads typed input and writes the conversation (stdout) and notes (stderr)."""

    stdin: TextIO
    out: TextIO
    err: TextIO

    @classmethod
    def of(cls, stdin: TextIO | None, stdout: TextIO | None, stderr: TextIO | None) -> "Streams":
        return cls(stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr)

    @property
    def interactive(self) -> bool:
        isatty = getattr(self.stdin, "isatty", None)
        return bool(isatty and isatty())


class StageIO(TypedDict, total=False):
    """The keyword arguments of every generation stage: its streams (None = the process's own), the console for
    notes (None = one on stderr), and a logits processor added to sampling (tests force replies with it)."""

    stdin: TextIO | None
    stdout: TextIO | None
    stderr: TextIO | None
    console: Console | None
    logits_processor: object


def start(cfg: CloneStageConfig, run_dir: Path, io: StageIO) -> tuple[Streams, Console, CloneSpec]:
    """A generation stage's first step: its streams and console, then `prepare`."""
    streams = Streams.of(io.get("stdin"), io.get("stdout"), io.get("stderr"))
    console = io.get("console") or logs.console(streams.err)
    return streams, console, prepare(cfg, run_dir)


def prepare(cfg: CloneStageConfig, run_dir: Path) -> CloneSpec:
    """Everything that can fail without weights: the config values and the clone's run, checkpoint and base."""
    cfg.check()
    runs.start_run(run_dir)
    return locate(cfg)


def read_prompt(prompt: str | None, streams: Streams) -> str | None:
    """prompt=- reads the whole of stdin."""
    if prompt != STDIN_PROMPT:
        return prompt
    text = streams.stdin.read()
    if not text.strip():
        from chatclone.errors import ChatcloneError

        raise ChatcloneError("prompt=-: stdin was empty")
    return text


def load(spec: CloneSpec, cfg: CloneStageConfig, console: Console) -> Clone:
    started = time.perf_counter()
    clone = load_clone(spec, cfg)
    what = {
        "adapter": f"+ LoRA adapter {spec.weights}" + (" (fused)" if cfg.fuse_adapter else ""),
        "merged": f"merged model {spec.weights}",
        "full": f"fully fine-tuned model {spec.weights}",
        "base": "the bare base model (no adapter)",
    }[spec.kind]
    console.print(
        f"{spec.target}: {spec.base_model} {what} on {clone.device} ({time.perf_counter() - started:.1f} s)",
        highlight=False,
    )
    if cfg.seed is not None:
        from transformers import set_seed

        set_seed(cfg.seed)
    return clone


def partners(spec: CloneSpec, wanted: list[str], count: int) -> list[str]:
    return list(wanted) or spec.partners[:count] or [FALLBACK_PARTNER]


def new_session(
    clone: Clone, cfg: CloneStageConfig, names: list[str], out: TextIO, logits_processor: object = None
) -> Session:
    """A session whose safety net knows `names` and every partner from the training data."""
    known = list(dict.fromkeys([*names, *clone.spec.partners]))
    generator = Generator(
        clone,
        cfg.sampling,
        [clone.spec.target, *known],
        logits_processor,
    )
    return Session(clone, generator, Printer(out), known, cfg.reply_attempts)


def rng(cfg: CloneStageConfig) -> random.Random:
    return random.Random(cfg.seed)


def finish(
    cfg: CloneStageConfig,
    run_dir: Path,
    stage: str,
    spec: CloneSpec,
    replies: list[Reply],
    outputs: list[str],
    extra: dict,
    console: Console,
    rows: list[dict] | None = None,
) -> dict:
    """generations.jsonl (`rows`, or one row per reply), the W&B table, manifest.json (last); returns the summary."""
    rows = generation_rows(replies, cfg, stage=stage) if rows is None else rows
    outputs = [*outputs, write_jsonl(run_dir, GENERATIONS, rows)]
    summary = {
        **summarize(replies),
        **extra,
        "clone": spec.describe(),
        "sampling": cfg.sampling.name,
        "base_only": cfg.run == BASE_RUN,
    }
    outputs += log_wandb(cfg, run_dir, stage, rows, {k: v for k, v in summary.items() if k != "clone"})
    inputs = [str(spec.run_dir)] if cfg.run != BASE_RUN else [spec.base_model, str(spec.run_dir)]
    runs.finish_run(run_dir, stage, cfg, inputs=inputs, outputs=outputs, summary=summary)
    speed = f", {summary['tokens_per_s']} tokens/s" if summary["tokens_per_s"] else ""
    console.print(f"{describe(summary)}{speed}; wrote {run_dir}", highlight=False)
    return summary
