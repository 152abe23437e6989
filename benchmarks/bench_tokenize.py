"""Benchmark: tokenization speed of tokenize_dataset's batched datasets.map (num_proc workers) vs a plain loop.

Usage:
    python benchmarks/bench_tokenize.py                       # 200,000 synthetic messages (about 2 minutes)
    python benchmarks/bench_tokenize.py --messages 1000000    # the 1M-message export
    python benchmarks/bench_tokenize.py --num-proc 1 2 4
A synthetic DCE export (chatclone.synthetic) goes through process_messages once; then each contender tokenizes
that run's train + validation splits with the embedded SmolLM2 tokenizer and the same ChatEncoder (identical
sequences and labels), each in its own process:
  - datasets.map: the stage's own path (JSONL -> Arrow file, then datasets.map batched over `batch_size`
    conversations with `num_proc` workers, output written as Arrow), per num_proc;
  - plain loop (baseline): one conversation at a time through ChatEncoder.encode, one process, kept in lists;
  - the whole tokenize_dataset stage (adds checks, stats, save_to_disk, tokenizer, histogram, manifest).
Reported: seconds, tokens/s (tokens of the output sequences) and conversations/s. Imports, the one-time model
conversion and transformers' lazy imports are done before timing. Worker processes only pay off with free cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MAP = """
from chatclone.chat_records import SPLITS, split_file
from chatclone.config.tokenize_dataset import TokenizeDatasetConfig
from chatclone.modeling import load_model_tokenizer
from chatclone.stages import tokenize_dataset as stage
cfg = TokenizeDatasetConfig(input=INPUT, progress=False, num_proc=NUM_PROC)
encoder = stage.build_encoder(load_model_tokenizer(cfg.model), cfg, PROMPT)
Path(OUT).mkdir()
tokens = sequences = 0
for split in SPLITS:
    ds = stage.tokenize_split(stage.read_split(Path(INPUT) / split_file(split), Path(OUT)), encoder, cfg, split)
    tokens += sum(ds["length"])
    sequences += sum(1 for n in ds["length"] if n)
"""

LOOP = """
from chatclone.chat_records import SPLITS, read_records, split_file
from chatclone.config.tokenize_dataset import TokenizeDatasetConfig
from chatclone.modeling import load_model_tokenizer
from chatclone.stages import tokenize_dataset as stage
cfg = TokenizeDatasetConfig(input=INPUT)
encoder = stage.build_encoder(load_model_tokenizer(cfg.model), cfg, PROMPT)
rows = {"input_ids": [], "labels": []}
for split in SPLITS:
    for record in read_records(Path(INPUT) / split_file(split)):
        for sequence in encoder.encode([m.to_json() for m in record.messages]).sequences:
            rows["input_ids"].append(sequence.input_ids)
            rows["labels"].append(sequence.labels)
tokens = sum(map(len, rows["input_ids"]))
sequences = len(rows["input_ids"])
"""

STAGE = """
from chatclone.config.tokenize_dataset import TokenizeDatasetConfig
from chatclone.stages.tokenize_dataset import tokenize_dataset
from rich.console import Console
cfg = TokenizeDatasetConfig(input=INPUT, progress=False, num_proc=NUM_PROC)
stats = tokenize_dataset(cfg, Path(OUT), console=Console(file=open(os.devnull, "w")))
tokens = sum(s["tokens"] for s in stats["splits"].values())
sequences = sum(s["sequences"] for s in stats["splits"].values())
"""

RUNNER = """
import json, os, sys, time
from pathlib import Path
INPUT, OUT, NUM_PROC = sys.argv[1], sys.argv[2], int(sys.argv[3])
PROMPT = "You are Tamsin. Reply exactly the way Tamsin texts."  # what the stage uses for the synthetic target
from chatclone.modeling import embedded_model_dir, load_tokenizer
import datasets, matplotlib.pyplot, chatclone.stages.tokenize_dataset  # imports are not what is measured...
load_tokenizer(embedded_model_dir())  # ...nor the one-time model conversion and transformers' lazy imports
start = time.perf_counter()
{body}
print(json.dumps({{"seconds": time.perf_counter() - start, "tokens": tokens, "sequences": sequences}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--num-proc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-loop", action="store_true", help="skip the per-example loop baseline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = _process_messages(Path(tmp), args.messages)
        conversations = sum(1 for split in ("train", "validation") for _ in open(run_dir / f"{split}.jsonl"))
        print(f"process_messages run: {conversations:,} conversations from {args.messages:,} messages\n")
        print(f"{'contender':44} {'seconds':>8} {'tokens/s':>10} {'conv/s':>8} {'sequences':>10} {'tokens':>11}")
        contenders = [(f"datasets.map batched, num_proc={n}", MAP, n) for n in args.num_proc]
        if not args.no_loop:
            contenders.append(("plain per-example loop (baseline)", LOOP, 1))
        contenders.append((f"whole tokenize_dataset stage, num_proc={max(args.num_proc)}", STAGE, max(args.num_proc)))
        for i, (name, body, num_proc) in enumerate(contenders):
            result = _measure(body, run_dir, Path(tmp) / f"out{i}", num_proc)
            seconds = result["seconds"]
            print(
                f"{name:44} {seconds:8.1f} {result['tokens'] / seconds:10,.0f} {conversations / seconds:8,.0f} "
                f"{result['sequences']:10,} {result['tokens']:11,}",
                flush=True,
            )


def _process_messages(tmp: Path, n: int) -> Path:
    from rich.console import Console

    from chatclone.config.process_messages import ProcessMessagesConfig
    from chatclone.stages.process_messages import process_messages
    from chatclone.synthetic import write_dce_json

    export = tmp / "Synthetic Server - general [900000000000000001].json"
    start = time.perf_counter()
    write_dce_json(export, n)
    run_dir = tmp / "process_messages"
    process_messages(
        ProcessMessagesConfig(input=[str(export)], target="tamsin.vale", progress=False),
        run_dir,
        console=Console(file=open("/dev/null", "w")),
    )
    print(f"synthetic export + process_messages: {time.perf_counter() - start:.0f} s")
    return run_dir


def _measure(body: str, run_dir: Path, out: Path, num_proc: int) -> dict:
    code = RUNNER.format(body=body)
    done = subprocess.run(
        [sys.executable, "-c", code, str(run_dir), str(out), str(num_proc)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
