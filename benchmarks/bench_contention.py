"""Benchmark: LoRA training and greedy chat decoding with torch's default threads vs chatclone's `threads=auto`,
on an idle machine and beside a competing process, in one run.

Usage:
    python benchmarks/bench_contention.py                       # 2 rounds, idle and busy (about 5 minutes on 2 cores)
    python benchmarks/bench_contention.py --conditions idle busy late --rounds 3
    python benchmarks/bench_contention.py --load torch --steps 2 --tokens 12
Setup: the bundled sample through process_messages and tokenize_dataset, and a 1-step LoRA adapter on the embedded
SmolLM2-135M (as bench_generate.py trains it). Contenders, each in its own process:
  old   torch's defaults: one OpenMP thread per core, the runtime's own waiting (libgomp spins ~300,000 times at a
        barrier before it sleeps)
  new   chatclone's defaults, threads=auto (chatclone.threads.apply before torch is imported): the cores other
        processes leave free, GOMP_SPINCOUNT=10000 (a short spin, then sleep)
Conditions:
  idle  nothing started by the benchmark (other users' load is not controlled: see the load column)
  busy  one competing process on one core (--load), started before the contender (so `auto` sees it), killed after
  late  the competing process starts only after the contender chose its threads: only the wait policy helps
The competing process is bounded in time (--load-seconds) and killed when its contender ends, on Ctrl-C too.
Each contender process times --steps LoRA steps of 2 sequences through chatclone's Trainer (labelled logits), after
an untimed warm-up step, then one greedy chat reply of exactly --tokens tokens (the end-of-turn token suppressed;
fused adapter, fast_decode, as inference.py), after a short warm-up reply. Figures: medians over --rounds, run in
alternating order (the contenders and conditions reversed every other round) so that drift hits all alike.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = {"old": "torch defaults", "new": "threads=auto"}
CONDITIONS = ("idle", "busy", "late")
LOADS = {
    "spin": "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nprint('ready', flush=True)\n"
    "while time.monotonic() < end:\n    pass\n",
    "torch": "import sys, time\nimport torch\ntorch.set_num_threads(1)\na = torch.randn(384, 384)\n"
    "end = time.monotonic() + float(sys.argv[1])\nprint('ready', flush=True)\n"
    "while time.monotonic() < end:\n    a = torch.tanh(a @ a)\n",
}
SHORT = "hey are you still up for saturday?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=_positive, default=3, help="timed LoRA steps per process (after a warm-up)")
    parser.add_argument("--tokens", type=_positive, default=16, help="new tokens of the timed greedy reply")
    parser.add_argument("--rounds", type=_positive, default=2, help="runs of every contender in every condition")
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=["idle", "busy"])
    parser.add_argument(
        "--load",
        choices=list(LOADS),
        default="spin",
        help="the competing process: a Python busy loop, or a 1-thread torch matmul loop",
    )
    parser.add_argument(
        "--load-seconds",
        type=_positive,
        default=240,
        help="the competing process ends by itself after this long, whatever happens",
    )
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `finally` blocks kill the competing process
    if args.worker:
        return _worker(*args.worker, args)
    from chatclone.threads import usable_cpus

    with tempfile.TemporaryDirectory() as tmp:
        run = _setup(Path(tmp))
        print(
            f"{args.steps} LoRA steps of 2 sequences and a {args.tokens}-token greedy reply per process, embedded "
            f"SmolLM2-135M, {len(usable_cpus())} usable cores, competing load: {args.load}; median of "
            f"{args.rounds} round(s) in alternating order\n",
            flush=True,
        )
        results = _rounds(run, args)
    _report(results, args.conditions)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def _setup(tmp: Path) -> Path:
    """The train run (with its tokenize_dataset run) that every contender trains on and chats with. The setup's
    own training step uses `auto`'s thread count (torch.set_num_threads: nothing the contenders inherit)."""
    import torch

    from chatclone.threads import auto_threads, busy_cores, usable_cpus

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_generate import _train_tiny_adapter

    cpus = usable_cpus()
    torch.set_num_threads(auto_threads(len(cpus), busy_cores(cpus)))
    return _train_tiny_adapter(tmp)


def _rounds(run: Path, args: argparse.Namespace) -> dict:
    """{(condition, contender): [result, ...]}, each result from its own process."""
    results: dict = {}
    pairs = [(condition, name) for condition in args.conditions for name in CONTENDERS]
    for round_ in range(args.rounds):
        for condition, name in pairs if round_ % 2 == 0 else pairs[::-1]:
            result = _measure(run, name, condition, args)
            results.setdefault((condition, name), []).append(result)
            print(
                f"  round {round_ + 1}: {condition:4} {name}: {result['threads']} thread(s), train "
                f"{result['train_tokens_per_s']:.0f} tokens/s, decode {result['decode_tokens_per_s']:.2f} tokens/s, "
                f"load average {result['load']:.1f}",
                file=sys.stderr,
                flush=True,
            )
    return results


def _measure(run: Path, name: str, condition: str, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        name,
        condition,
        str(run),
        str(args.steps),
        "--tokens",
        str(args.tokens),
        "--load",
        args.load,
        "--load-seconds",
        str(args.load_seconds),
    ]
    load = os.getloadavg()[0]
    competitor = _start_load(args.load, args.load_seconds) if condition == "busy" else None
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=args.load_seconds + 60)
    finally:
        _stop(competitor)
    if done.returncode != 0:
        sys.exit(f"error: the {name} contender ({condition}) failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load": load}


def _start_load(kind: str, seconds: int) -> subprocess.Popen:
    """The competing process, busy on one core once it prints `ready`; it ends by itself after `seconds`."""
    process = subprocess.Popen([sys.executable, "-c", LOADS[kind], str(seconds)], stdout=subprocess.PIPE, text=True)
    try:
        process.stdout.readline()
    except BaseException:
        _stop(process)
        raise
    return process


def _stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.kill()
    if process is not None:
        process.wait()
        process.stdout.close()


def _worker(name: str, condition: str, run: str, steps: str, args: argparse.Namespace) -> None:
    """One contender: set its threads (before torch loads), then time training steps and one greedy reply."""
    sys.path.insert(0, str(ROOT))
    decision = None
    if name == "new":
        from chatclone import threads

        decision = threads.apply("auto")
    competitor = _start_load(args.load, args.load_seconds) if condition == "late" else None
    try:
        train = _time_training(Path(run), int(steps))
        decode = _time_decoding(Path(run), args.tokens)
    finally:
        _stop(competitor)
    import torch

    print(json.dumps({"threads": torch.get_num_threads(), "decision": decision, **train, **decode}))


def _time_training(run: Path, steps: int) -> dict:
    """`steps` LoRA steps (batch 2) through chatclone's Trainer, timed after an untimed first step."""
    import io

    from datasets import load_from_disk
    from transformers import TrainerCallback, TrainingArguments

    from chatclone import runs
    from chatclone.config.train import TrainConfig
    from chatclone.modeling import embedded_model_dir, load_tokenizer
    from chatclone.training.batching import PadCollator
    from chatclone.training.loop import LabelledLogitsTrainer
    from chatclone.training.models import build_model

    data_dir = Path(runs.read_manifest(run)["inputs"][0])
    tokenizer = load_tokenizer(data_dir / "tokenizer")
    model = build_model(TrainConfig(), str(embedded_model_dir()), len(tokenizer))
    collator, tokens, seconds = PadCollator(tokenizer.pad_token_id, labelled_logits=True), [], []

    def counting(features: list[dict]) -> dict:
        tokens.append(sum(len(f["input_ids"]) for f in features))
        return collator(features)

    class Clock(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            seconds.append(time.perf_counter() - self.started)

    args = TrainingArguments(
        output_dir=str(run / "bench"),
        max_steps=steps + 1,
        per_device_train_batch_size=2,
        learning_rate=2e-4,
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        report_to="none",
        save_strategy="no",
        logging_steps=1000,
        remove_unused_columns=False,
        dataloader_pin_memory=False,
        disable_tqdm=True,
        seed=0,
        use_cpu=True,
    )
    dataset = load_from_disk(str(data_dir / "dataset"))["train"]
    trainer = LabelledLogitsTrainer(
        model=model, args=args, train_dataset=dataset, data_collator=counting, callbacks=[Clock()]
    )
    sys.stdout, stdout = io.StringIO(), sys.stdout  # the Trainer prints its logs: stdout carries the result line
    try:
        result = trainer.train()
    finally:
        sys.stdout = stdout
    timed_tokens = sum(tokens[1 : steps + 1])  # batch 1 is the warm-up step (the dataloader may fetch one ahead)
    return {"train_tokens_per_s": timed_tokens / sum(seconds[1:]), "step_s": seconds[1:], "loss": result.training_loss}


def _time_decoding(run: Path, tokens: int) -> dict:
    """One greedy reply of exactly `tokens` tokens to a short message, after a 4-token warm-up reply."""
    from dataclasses import replace

    from transformers import SuppressTokensLogitsProcessor

    from chatclone.config import compose
    from chatclone.generation.clone import load_clone, locate
    from chatclone.generation.generate import Generator

    cfg = compose(
        "inference",
        [
            f"run={run}",
            "sampling=greedy",
            "sampling.repetition_penalty=1.0",
            f"sampling.max_new_tokens={tokens}",
        ],
    )
    clone = load_clone(locate(cfg), cfg)
    no_stop = [SuppressTokensLogitsProcessor(clone.stop_ids, device="cpu")]
    ids, _ = clone.prompts.fit([clone.prompts.message("Orrin", SHORT)], clone.spec.target, 256)
    target = clone.spec.target
    warm = Generator(
        clone,
        replace(cfg.sampling, max_new_tokens=4),
        [],
        no_stop,
        False,
    )
    warm.turn(ids, target, n=1, on_text=lambda text: None)
    chat = Generator(clone, cfg.sampling, [], no_stop, False)
    reply = chat.turn(ids, target, n=1, on_text=lambda text: None)[0]
    return {
        "decode_tokens_per_s": (reply.tokens - 1) / (reply.seconds - reply.first_token_s),
        "first_token_s": reply.first_token_s,
        "reply_tokens": reply.tokens,
    }


def _report(results: dict, conditions: list[str]) -> None:
    old, new = CONTENDERS["old"], CONTENDERS["new"]
    print(
        f"{'condition':9} {'workload':16} {old:>15} {new:>15} {'new/old':>8} {'threads old/new':>16} "
        f"{'each round old | new':>30}"
    )
    for condition in conditions:
        for key, label in (("train_tokens_per_s", "train tokens/s"), ("decode_tokens_per_s", "decode tokens/s")):
            rates = {name: [r[key] for r in results[(condition, name)]] for name in CONTENDERS}
            medians = {name: statistics.median(values) for name, values in rates.items()}
            threads = "/".join(
                ",".join(sorted({str(r["threads"]) for r in results[(condition, name)]})) for name in CONTENDERS
            )
            each = " | ".join(" ".join(f"{v:.1f}" for v in rates[name]) for name in CONTENDERS)
            print(
                f"{condition:9} {label:16} {medians['old']:15.1f} {medians['new']:15.1f} "
                f"{medians['new'] / medians['old']:7.2f}x {threads:>16} {each:>30}"
            )
    print(
        "\nload average at each start (others' load adds noise): "
        + "; ".join(f"{c} {n} " + " ".join(f"{r['load']:.1f}" for r in rs) for (c, n), rs in results.items())
    )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
