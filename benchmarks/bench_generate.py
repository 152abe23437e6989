"""Benchmark: first-token latency and tokens/s of the embedded SmolLM2 clone, with and without its LoRA adapter.

Usage:
    python benchmarks/bench_generate.py                         # trains a 1-step adapter on the bundled sample
    python benchmarks/bench_generate.py --run outputs/train/<run> --tokens 64 --repeats 3
    python benchmarks/bench_generate.py --contenders fused,compiled
Contenders, each in its own process, through chatclone's own generation path (prompt rendering, stop criteria,
streamer) with the end-of-turn token suppressed so that every reply is exactly --tokens long:
  base           the embedded model alone (run=base)
  adapter        base + LoRA adapter, unmerged (fuse_adapter=false): extra LoRA matmuls every layer
  fused          base + adapter merged in memory at load, fast_decode (bfloat16 one-token steps): the defaults
  fp32           the same, float32 throughout (fast_decode=false): the baseline
  merged         the merged/ checkpoint from disk (train.py export.merge=true)
  compiled       fused + compile_decode=true: one-token steps through torch.compile with a static KV cache (its
                 compile happens in the untimed warm-up reply: the `warm-up s` column)
Prompts: `short` (one message), `long` (the longest sample conversation), both fresh (no KV cache), and `next turn`
(the chat's next message after a reply to `long`: the reply's KV cache is reused, as in a chat session). Median over
--repeats of first token (s), decode tokens/s (after the first token) and end-to-end tokens/s; `same` = how many of
the greedy tokens match the fused model's. Target: first token < 1 s, >= 20 tokens/s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "fused": [],
    "fp32": ["fast_decode=false"],
    "adapter": ["fuse_adapter=false"],
    "merged": ["checkpoint=merged"],
    "base": ["run=base"],
    "compiled": ["compile_decode=true"],
}
# the first contender run is the reference for `same` (fused by default).
SHORT = [{"name": "Orrin", "content": "hey are you still up for saturday?"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a train run dir with final/ and merged/ (default: train one)")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per reply")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--contenders", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS)
    )
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if unknown := set(args.contenders.split(",")) - set(VARIANTS):
        parser.error(f"unknown contender(s) {', '.join(sorted(unknown))}; choose from {', '.join(VARIANTS)}")
    if args.worker:
        return _worker(args.worker[0], Path(args.worker[1]), args.tokens, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or _train_tiny_adapter(Path(tmp))
        print(
            f"run {run}; {args.tokens} new tokens per reply, median of {args.repeats}; torch threads "
            f"{_threads()}, load average {os.getloadavg()[0]:.1f}\n"
        )
        print(
            f"{'contender':8} {'prompt':10} {'load s':>7} {'warm-up s':>9} {'tokens':>7} {'first token s':>14} "
            f"{'decode tok/s':>13} {'e2e tok/s':>10} {'same':>6}"
        )
        reference: dict = {}
        for name in args.contenders.split(","):
            result = _measure(run, name, args.tokens, args.repeats)
            for length, r in result["prompts"].items():
                same = _same_prefix(r["ids"], reference.setdefault(length, r["ids"])) if r["ids"] else "-"
                print(
                    f"{name:8} {length:10} {result['load_s']:7.1f} {_seconds(r.get('warmup_s')):>9} "
                    f"{r['prompt_tokens']:7d} {r['first_token_s']:14.3f} {r['decode_tokens_per_s']:13.1f} "
                    f"{r['tokens_per_s']:10.1f} "
                    f"{same!s:>6}",
                    flush=True,
                )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _same_prefix(ids: list[int], reference: list[int]) -> str:
    same = next((i for i, (a, b) in enumerate(zip(ids, reference)) if a != b), min(len(ids), len(reference)))
    return f"{same}/{len(reference)}"


def _train_tiny_adapter(tmp: Path) -> Path:
    """process_messages -> tokenize_dataset -> 1 LoRA step (batch 2) with merged/, on the bundled sample."""
    from rich.console import Console

    from chatclone.config import compose
    from chatclone.stages.process_messages import process_messages
    from chatclone.stages.tokenize_dataset import tokenize_dataset
    from chatclone.stages.train import train

    quiet, started = Console(file=io.StringIO()), time.perf_counter()
    processing = compose("process_messages", ["target=tamsin.vale", "progress=false"])
    processing.input = str(ROOT / "examples" / "sample_exports")  # set after composing: a path needs no quoting
    process_messages(processing, tmp / "process_messages" / "run", console=quiet)
    tokenizing = compose("tokenize_dataset", ["progress=false", "num_proc=1"])
    tokenizing.input = str(tmp / "process_messages" / "run")
    tokenize_dataset(tokenizing, tmp / "tokenize_dataset" / "run", console=quiet)
    cfg = compose(
        "train",
        [
            f"outputs_root={tmp}",
            "trainer.max_steps=1",
            "trainer.batch_size=2",
            "wandb.mode=disabled",
            "trainer.save_strategy=no",
            "export.merge=true",
            "export.merged_dtype=float32",
        ],
    )
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs: keep stdout for the table
        train(cfg, tmp / "train" / "run", console=quiet)
    print(f"trained a 1-step adapter in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return tmp / "train" / "run"


def _measure(run: Path, name: str, tokens: int, repeats: int) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--worker", name, str(run), "--tokens", str(tokens), "--repeats", str(repeats)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _worker(name: str, run: Path, tokens: int, repeats: int) -> None:
    """Load one contender and time greedy replies of exactly `tokens` tokens to a short and a long prompt (fresh:
    no KV cache kept between replies), and the first token of a chat's next turn after the long one (cache kept)."""
    from transformers import SuppressTokensLogitsProcessor

    from chatclone.config import compose
    from chatclone.generation.clone import load_clone, locate
    from chatclone.generation.generate import Generator

    cfg = compose(
        "inference",
        [
            f"run={run}",
            f"format_run={run}",
            "sampling=greedy",
            "sampling.repetition_penalty=1.0",
            f"sampling.max_new_tokens={tokens}",
            *VARIANTS[name],
        ],
    )
    started = time.perf_counter()
    clone = load_clone(locate(cfg), cfg)
    load_s = time.perf_counter() - started
    no_stop = [SuppressTokensLogitsProcessor(clone.stop_ids, device="cpu")]
    fresh = Generator(clone, cfg.sampling, [], no_stop, False)
    out = {}
    for length, messages in {"short": SHORT, "long": _long_conversation(clone.spec.data_dir)}.items():
        history = [clone.prompts.message(m["name"], m["content"]) for m in messages]
        ids, _ = clone.prompts.fit(history, clone.spec.target, clone.spec.format.max_length - tokens)
        started = time.perf_counter()
        raw = fresh.generate(ids)[0][len(ids) :].tolist()  # warm-up
        warmup_s = time.perf_counter() - started
        replies = [fresh.turn(ids, clone.spec.target, n=1, on_text=lambda text: None)[0] for _ in range(repeats)]
        out[length] = {"prompt_tokens": len(ids), "ids": raw, "warmup_s": warmup_s, **_medians(replies)}
    out["next turn"] = _next_turn(clone, cfg, no_stop, history, repeats)
    print(json.dumps({"load_s": load_s, "prompts": out}))


def _next_turn(clone, cfg, no_stop: list, history: list[dict], repeats: int) -> dict:
    """A chat's next turn after a reply to the long conversation: the KV cache of that reply is reused."""
    from chatclone.generation.generate import Generator

    target, budget = clone.spec.target, clone.spec.format.max_length - cfg.sampling.max_new_tokens
    firsts, prompt_tokens = [], 0
    for _ in range(repeats):
        chat = Generator(clone, cfg.sampling, [], no_stop)
        ids, _ = clone.prompts.fit(history, target, budget)
        reply = chat.turn(ids, target, n=1, on_text=lambda text: None)[0]
        turn = history + [clone.prompts.message(target, reply.text), clone.prompts.message("Orrin", "ok see you then")]
        ids, _ = clone.prompts.fit(turn, target, budget)
        firsts.append(chat.turn(ids, target, n=1, on_text=lambda text: None)[0])
        prompt_tokens = len(ids)
    return {"prompt_tokens": prompt_tokens, "ids": [], **_medians(firsts)}


def _medians(replies: list) -> dict:
    return {
        "first_token_s": statistics.median(r.first_token_s for r in replies),
        "tokens_per_s": statistics.median(r.tokens / r.seconds for r in replies),
        "decode_tokens_per_s": statistics.median((r.tokens - 1) / (r.seconds - r.first_token_s) for r in replies),
    }


def _long_conversation(data_dir: Path) -> list[dict]:
    """The longest conversation of the run's training data, as `{name, content}` messages."""
    from chatclone import runs
    from chatclone.chat_records import ASSISTANT, read_records, split_file

    train = Path(runs.read_manifest(data_dir)["inputs"][0]) / split_file("train")
    longest = max(read_records(train), key=lambda r: sum(len(m.content) for m in r.messages))
    messages = longest.messages
    while messages and messages[-1].role == ASSISTANT:  # end on a partner's turn: the target replies
        messages = messages[:-1]
    return [{"name": m.name, "content": m.content} for m in messages]


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
