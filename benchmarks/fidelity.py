"""Benchmark: does fine-tuning make the clone sound like the target? chatclone's recipe vs the seeds' recipes.

Usage:
    python benchmarks/fidelity.py                     # 4000-message style corpus, 40 LoRA steps per recipe
    python benchmarks/fidelity.py --steps 80 --messages 6000
    python benchmarks/fidelity.py --out outputs/bench_fidelity/<earlier run>   # resume: finished runs are reused
Data: the synthetic style corpus (chatclone.stylecorpus, target mossy.wren) through process_messages and
tokenize_dataset for the embedded SmolLM2-135M-Instruct. Every recipe gets the same data, the same number of
optimizer steps (batch --batch-size, lr 2e-4, LoRA r=16) and the same evaluation (evaluate_clone: held-out
perplexity of the target's real replies; style attribution of replies generated for validation contexts):
  chatclone          the default LoRA recipe: labels only on the target's turns
  selfchatbot-style  no loss masking: labels on every token (everybody's turns, the template, the system prompt)
  CatGPT-style       preset=overfit (no dropout, no validation), same step budget
Target: the chatclone recipe's held-out perplexity clearly below the base model's, and its attribution rate clearly
above the base model's. The run dirs stay under --out for inspection (report.md of each evaluation); running again
with the same --out resumes: finished runs (with manifest.json) are reused, unfinished ones are redone.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = (("chatclone (labels on the target's turns)", []),
           ("selfchatbot-style (labels on every token)", ["all-tokens"]),
           ("CatGPT-style (preset=overfit)", ["preset=overfit"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per recipe")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--messages", type=int, default=4000, help="size of the synthetic style corpus")
    parser.add_argument("--max-length", type=int, default=128, help="model.max_length when tokenizing")
    parser.add_argument("--max-contexts", type=int, default=70,
                        help="validation contexts replied to (70 = all of the default corpus's; attribution rates "
                             "over 24 sampled replies moved by +-15 points between runs)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_fidelity" /
                        datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
    args = parser.parse_args()
    same_settings_as_before(args)
    started = time.perf_counter()
    data_dir = tokenized_corpus(args.out, args.messages, args.max_length)
    inputs = {"default": data_dir, "all-tokens": all_token_labels(data_dir, args.out / "tokenize_dataset" / "all")}
    print(f"{args.steps} steps of batch {args.batch_size} per recipe, windows of <= {args.max_length} tokens, "
          f"embedded SmolLM2-135M + LoRA r=16; {args.max_contexts} validation contexts, sampling=default "
          f"(max_new_tokens {args.max_new_tokens}, seed 0); work dir {args.out}\n", flush=True)
    rows, extremes = [], None
    for i, (name, recipe) in enumerate(RECIPES):
        data = inputs["all-tokens" if "all-tokens" in recipe else "default"]
        overrides = [o for o in recipe if "=" in o]
        run, seconds = train_recipe(args, data, overrides, f"recipe{i}")
        metrics = evaluate_run(args, run, with_base=i == 0)
        if i == 0:
            extremes = metrics
            rows.append(("base model (no fine-tuning)", None, metrics, "base"))
        rows.append((name, seconds, metrics, "fine_tuned"))
        print(f"  {name}: trained in {seconds:.0f} s, evaluated ({time.perf_counter() - started:.0f} s so far)",
              flush=True)
    print_table(rows, extremes, args.steps)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


def compose(config: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    import chatclone.config  # noqa: F401

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return OmegaConf.to_object(hydra_compose(config_name=config, overrides=overrides))


def quiet():
    from rich.console import Console

    return Console(file=io.StringIO())


def same_settings_as_before(args: argparse.Namespace) -> None:
    """Resuming reuses finished runs: refuse an --out that holds runs made with other settings."""
    settings = {key: value for key, value in vars(args).items() if key != "out"}
    record = args.out / "benchmark_args.json"
    if record.is_file() and json.loads(record.read_text(encoding="utf-8")) != settings:
        sys.exit(f"{record}: this --out holds runs made with {record.read_text(encoding='utf-8').strip()}, not "
                 f"{json.dumps(settings)}: use a new --out, or the same settings to resume")
    args.out.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(settings), encoding="utf-8")


def finished(run_dir: Path) -> bool:
    """Whether a run of an earlier, interrupted benchmark finished; an unfinished one is removed to be redone."""
    if (run_dir / "manifest.json").is_file():
        return True
    shutil.rmtree(run_dir, ignore_errors=True)
    return False


def tokenized_corpus(out: Path, n_messages: int, max_length: int) -> Path:
    from chatclone.stages.process_messages import process_messages
    from chatclone.stages.tokenize_dataset import tokenize_dataset
    from chatclone.stylecorpus import FILE_NAME, write_style_corpus

    if finished(out / "tokenize_dataset" / "run"):
        return out / "tokenize_dataset" / "run"
    for stage in ("exports", "process_messages"):
        shutil.rmtree(out / stage, ignore_errors=True)
    (out / "exports").mkdir(parents=True)
    corpus = write_style_corpus(out / "exports" / FILE_NAME, n_messages=n_messages)
    process_messages(compose("process_messages", [f"input={out / 'exports'}", "progress=false",
                                                  f"target={corpus['target']['username']}"]),
                     out / "process_messages" / "run", console=quiet())
    tokenize_dataset(compose("tokenize_dataset", [f"input={out / 'process_messages' / 'run'}", "progress=false",
                                                  "num_proc=1", f"model.max_length={max_length}"]),
                     out / "tokenize_dataset" / "run", console=quiet())
    return out / "tokenize_dataset" / "run"


def all_token_labels(data_dir: Path, out: Path) -> Path:
    """A copy of the tokenize run whose train split has labels on every token (no loss masking, as selfchatbot).
    Validation keeps the target-only labels: the held-out perplexity is measured on the same tokens for every recipe."""
    from datasets import load_from_disk

    if finished(out):
        return out
    dataset = load_from_disk(str(data_dir / "dataset"))
    dataset["train"] = dataset["train"].map(lambda row: {"labels": row["input_ids"]})
    dataset.save_to_disk(str(out / "dataset"))
    shutil.copytree(data_dir / "tokenizer", out / "tokenizer")
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    manifest["summary"]["labels"] = "every token of the train split (benchmarks/fidelity.py)"
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out


def train_recipe(args, data_dir: Path, overrides: list[str], name: str) -> tuple[Path, float]:
    from chatclone.stages.train import train

    run = args.out / "train" / name
    if finished(run):
        return run, json.loads((run / "metrics.json").read_text(encoding="utf-8"))["train"]["train_runtime"]
    cfg = compose("train", [f"input={data_dir}", f"outputs_root={args.out}", f"trainer.max_steps={args.steps}",
                            f"trainer.batch_size={args.batch_size}", "trainer.gradient_accumulation_steps=1",
                            "trainer.save_strategy=no", "trainer.logging_steps=10", "wandb.mode=disabled",
                            *overrides])
    metrics = train(cfg, run, console=quiet())
    gc.collect()
    return run, metrics["train"]["train_runtime"]


def evaluate_run(args, run: Path, with_base: bool) -> dict:
    from chatclone.stages.evaluate_clone import evaluate_clone

    out = args.out / "evaluate_clone" / run.name
    if finished(out):
        return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    cfg = compose("evaluate_clone", [f"run={run}", f"outputs_root={args.out}", f"eval.base={str(with_base).lower()}",
                                     f"eval.max_contexts={args.max_contexts}", "wandb.mode=disabled",
                                     f"sampling.max_new_tokens={args.max_new_tokens}"])
    metrics = evaluate_clone(cfg, out, console=quiet())
    gc.collect()
    return metrics


def print_table(rows: list, extremes: dict, steps: int) -> None:
    from chatclone.evaluation.fidelity import caveat
    from chatclone.metrics.rates import format_rate

    print(f"\n{'model':44} {'train s':>8} {'held-out ppl':>13} {'attributed [95 % CI] n':>24} {'P(target)':>10} "
          f"{'mean chars':>11}")
    for name, seconds, metrics, key in rows:
        m = metrics["models"][key]
        print(f"{name:44} {'' if seconds is None else f'{seconds:.0f}':>8} {m['perplexity']['perplexity']:13.2f} "
              f"{format_rate(m['attribution']):>24} {m['attribution']['mean_target_prob']:10.3f} "
              f"{m['surface']['mean_chars']:11.1f}")
    target = extremes["target"]
    for label, part, chars in ((f"ceiling: {target}'s own held-out replies", "ceiling",
                                extremes["reference_surface"]["mean_chars"]),
                               ("floor: other speakers' held-out messages", "floor", None)):
        p = extremes[part]
        print(f"{label:44} {'':>8} {'':>13} {format_rate(p):>24} {p['mean_prob']:10.3f} "
              f"{'' if chars is None else f'{chars:.1f}':>11}")
    base, ours = extremes["models"]["base"], extremes["models"]["fine_tuned"]
    ppl = (base["perplexity"]["perplexity"], ours["perplexity"]["perplexity"])
    rate = (base["attribution"]["target_rate"], ours["attribution"]["target_rate"])
    check = extremes["attribution_check"]
    attribution = (f"attribution {rate[1]:.1%} vs base {rate[0]:.1%}: {'above' if rate[1] > rate[0] else 'NOT above'}"
                   " it" if check["separable"] else caveat(extremes["target"], check))
    print(f"\nchatclone recipe after {steps} steps: held-out perplexity {ppl[1]:.2f} vs base {ppl[0]:.2f} "
          f"({ppl[1] / ppl[0] - 1:+.0%}): {'below' if ppl[1] < ppl[0] else 'NOT below'} the base model's; "
          + attribution)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
