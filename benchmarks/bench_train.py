"""Benchmark: chatclone's training loop vs a plain padded Trainer, same model, data and steps, in one run.

Usage:
    python benchmarks/bench_train.py                  # embedded SmolLM2 + LoRA r=16, 6 steps of 4 x 2 sequences,
                                                      # every contender twice (about 20 minutes on 2 cores)
    python benchmarks/bench_train.py --steps 4 --contenders chatclone random max_length
    python benchmarks/bench_train.py --sessions short  # DM-shaped data: mostly short conversations
Data: the synthetic style corpus (chatclone.stylecorpus) through process_messages and tokenize_dataset, windows of
up to the smollm2 group's max_length (512). --sessions long (default): group sessions that fill their windows;
short: a DM history's shape, most conversations a few turns, a few long ones.
Contenders (each in its own process, so peak RSS is its own; tokens/s counts real tokens, not padding):
  chatclone          the defaults: length-grouped batches, dynamic padding by position, logits and loss only where
                     the next token is labelled (trainer.labelled_logits=true), LoRA dropout masks from cheaper
                     random draws (method.fast_dropout=true)
  grouped            the same, with the model's own loss over full logits (trainer.labelled_logits=false)
  stock_dropout      the same as chatclone with peft's nn.Dropout (method.fast_dropout=false)
  random             the plain Trainer: random batches padded to the longest in the batch, logits and loss on every
                     position, peft's nn.Dropout
  max_length         the plain Trainer padded to model.max_length, as hobby scripts do (slow; not run by default)
tokens/s is the mean over the rounds. Target: chatclone >= 1.5x the plain padded Trainer's tokens/s.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = {
    "chatclone": "chatclone (grouped, labelled logits, fast dropout)",
    "grouped": "the same, full logits (labelled_logits=false)",
    "stock_dropout": "chatclone with nn.Dropout (fast_dropout=false)",
    "random": "plain Trainer (random batches, padded)",
    "max_length": "Trainer padded to max_length",
}

WORKER = """
import json, resource, sys, time
import torch
from datasets import load_from_disk
from transformers import Trainer, TrainingArguments
from chatclone.config.train import TrainConfig
from chatclone.modeling import embedded_model_dir, load_tokenizer
from chatclone.training.batching import PadCollator
from chatclone.training.loop import LabelledLogitsTrainer
from chatclone.training.models import build_model

data_dir, mode, steps, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
MAX_LENGTH = json.load(open(data_dir + "/manifest.json"))["summary"]["model"]["max_length"]
torch.manual_seed(0)
dataset = load_from_disk(data_dir + "/dataset")["train"]
tokenizer = load_tokenizer(data_dir + "/tokenizer")
cfg = TrainConfig()
cfg.method.fast_dropout = mode in ("chatclone", "grouped")
model = build_model(cfg, str(embedded_model_dir()), len(tokenizer))
collator = PadCollator(tokenizer.pad_token_id, labelled_logits=mode in ("chatclone", "stock_dropout"))
if mode == "max_length":
    class MaxLength(PadCollator):
        def __call__(self, features):
            batch = super().__call__(features)
            extra = MAX_LENGTH - batch["input_ids"].shape[1]
            pad = lambda t, v: torch.nn.functional.pad(t, (0, extra), value=v)
            return {"input_ids": pad(batch["input_ids"], self.pad_token_id), "labels": pad(batch["labels"], -100),
                    "attention_mask": pad(batch["attention_mask"], 0)}
    collator = MaxLength(tokenizer.pad_token_id)
real_tokens = []
original = collator.__call__
def counting(features):
    real_tokens.append(sum(len(f["input_ids"]) for f in features))
    return original(features)
args = TrainingArguments(output_dir=out, max_steps=steps, per_device_train_batch_size=4, gradient_accumulation_steps=2,
                         learning_rate=2e-4,
                         train_sampling_strategy="random" if mode in ("random", "max_length") else "group_by_length",
                         length_column_name="length", report_to="none", save_strategy="no", logging_steps=1000,
                         remove_unused_columns=False, dataloader_pin_memory=False, disable_tqdm=True, seed=0)
labelled = mode in ("chatclone", "stock_dropout")
trainer = (LabelledLogitsTrainer if labelled else Trainer)(model=model, args=args, train_dataset=dataset,
                                                           data_collator=counting)
start = time.perf_counter()
result = trainer.train()
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "loss": result.training_loss,
                  "tokens": sum(real_tokens[:steps * args.gradient_accumulation_steps]),
                  "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--messages", type=int, default=4000, help="size of the synthetic style corpus")
    parser.add_argument("--max-length", type=int, default=512, help="model.max_length when tokenizing")
    parser.add_argument("--sessions", choices=["long", "short"], default="long", help="the corpus's session shape")
    parser.add_argument(
        "--contenders",
        nargs="+",
        choices=list(NAMES),
        default=list(NAMES)[:4],
        help="which to run (the speed-up needs chatclone and random)",
    )
    parser.add_argument(
        "--rounds",
        type=_positive,
        default=2,
        help="runs per contender, in alternating order (ABCD DCBA ...) so drift in the machine's "
        "speed during the benchmark hits every contender alike",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = _tokenized_corpus(Path(tmp), args.messages, args.max_length, args.sessions)
        print(
            f"{args.steps} steps of batch 8 (4 x 2 accumulation), windows of <= {args.max_length} tokens, embedded "
            f"SmolLM2-135M + LoRA r=16, CPU; {args.sessions} sessions: {_length_summary(data_dir)}; "
            f"{args.rounds} round(s) in alternating order\n",
            flush=True,
        )
        runs = {mode: [] for mode in args.contenders}
        for round_ in range(args.rounds):
            for mode in args.contenders if round_ % 2 == 0 else args.contenders[::-1]:
                runs[mode].append(_measure(data_dir, mode, args.steps, Path(tmp) / f"{mode}-{round_}"))
                print(f"  round {round_ + 1}: {mode} {_rate(runs[mode][-1]):.1f} tokens/s", file=sys.stderr, flush=True)
        _report(runs)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def _rate(run: dict) -> float:
    return run["tokens"] / run["seconds"]


def _report(runs: dict[str, list[dict]]) -> None:
    import statistics

    print(
        f"{'contender':52} {'seconds':>8} {'tokens':>8} {'tokens/s':>9} {'each round':>16} {'peak RSS':>10} "
        f"{'mean loss':>10}"
    )
    rates = {mode: statistics.mean(_rate(r) for r in rs) for mode, rs in runs.items()}
    for mode, rs in runs.items():
        each = " / ".join(f"{_rate(r):.1f}" for r in rs)
        print(
            f"{NAMES[mode]:52} {statistics.mean(r['seconds'] for r in rs):8.1f} {rs[0]['tokens']:8d} "
            f"{rates[mode]:9.1f} {each:>16} {max(r['rss_kb'] for r in rs) / 1024**2:6.2f} GiB "
            f"{rs[0]['loss']:10.4f}"
        )
    if "chatclone" in rates and "random" in rates:
        print(f"\nspeed-up over the plain padded Trainer: {rates['chatclone'] / rates['random']:.2f}x")


def _length_summary(data_dir: Path) -> str:
    import statistics

    from datasets import load_from_disk

    lengths = load_from_disk(str(data_dir / "dataset"))["train"]["length"]
    return (
        f"{len(lengths)} training sequences, median {statistics.median(lengths):.0f} tokens, "
        f"{sum(n >= 480 for n in lengths) / len(lengths):.0%} of them >= 480"
    )


def _tokenized_corpus(tmp: Path, n_messages: int, max_length: int, sessions: str) -> Path:
    from rich.console import Console

    from chatclone.config.process_messages import ProcessMessagesConfig
    from chatclone.config.tokenize_dataset import TokenizeDatasetConfig
    from chatclone.stages.process_messages import process_messages
    from chatclone.stages.tokenize_dataset import tokenize_dataset
    from chatclone.stylecorpus import FILE_NAME, write_style_corpus

    quiet = Console(file=io.StringIO())
    corpus = write_style_corpus(tmp / FILE_NAME, n_messages=n_messages, sessions=sessions)
    process_messages(
        ProcessMessagesConfig(input=str(tmp / FILE_NAME), target=corpus["target"]["username"], progress=False),
        tmp / "pm",
        console=quiet,
    )
    cfg = TokenizeDatasetConfig(input=str(tmp / "pm"), progress=False)
    cfg.model.max_length = max_length
    tokenize_dataset(cfg, tmp / "tok", console=quiet)
    return tmp / "tok"


def _measure(data_dir: Path, mode: str, steps: int, out: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", WORKER, str(data_dir), mode, str(steps), str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
