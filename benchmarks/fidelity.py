"""Benchmark: does fine-tuning make the clone sound like the target? chatclone's recipe vs the seeds' recipes.

Usage:
    python benchmarks/fidelity.py                     # 4000-message style corpus, 40 LoRA steps per recipe
    python benchmarks/fidelity.py --steps 80 --messages 6000
    python benchmarks/fidelity.py --input path/to/exports --target 607216646228391176   # your own exports
    python benchmarks/fidelity.py --recipes chatclone,weighted-0.3 --screen   # perplexity only: fast screening
    python benchmarks/fidelity.py --recipe "lr-5e-4=trainer.learning_rate=5e-4" --screen   # an ad hoc recipe
    python benchmarks/fidelity.py --out outputs/bench_fidelity/<earlier run>   # resume: finished runs are reused
Data: without --input, the synthetic style corpus (chatclone.stylecorpus, target mossy.wren); with --input, the
DiscordChatExporter exports in that folder (or file) and --target (a user id or username), read-only. Either goes
through process_messages and tokenize_dataset for the embedded SmolLM2-135M-Instruct. Every recipe gets the same
data, the same number of optimizer steps (batch --batch-size, LoRA r=16, the method's lr unless the recipe says
otherwise) and the same evaluation (evaluate_clone: held-out perplexity of the target's real replies, context use,
and replies generated for validation contexts scored for detectability, style attribution, assistant-isms and
their shape). The recipes (--recipes picks some, in this order; --recipe NAME=OVERRIDES adds one, overrides
separated by spaces):
  chatclone          the default LoRA recipe: labels only on the target's turns
  no-masking         selfchatbot-style: labels on every token (everybody's turns, the template, the system prompt), at
                     the seeds' lr 2e-4
  overfit            CatGPT-style preset=overfit (no dropout, no validation), same step budget
  weighted-W         trainer.other_turns_weight=W: every token outside the target's turns at loss weight W
--screen trains and measures the held-out perplexity only, over --screen-sequences validation sequences (no
generation), for comparing many candidate recipes before the full evaluation of the few that matter.
--threads sets torch's CPU threads as the scripts' `threads=` key does (the benchmark calls the stages from Python,
so it applies the same thread count and OpenMP wait policy itself: without them, a busy core stalled every op).
Target: the chatclone recipe's held-out perplexity clearly below the base model's, and its replies harder to tell
from the real ones. The run dirs stay under --out for inspection (report.md of each evaluation); running again with
the same --out resumes: finished runs (with manifest.json) are reused, unfinished ones are redone.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import io
import json
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

from chatclone.config import compose

ROOT = Path(__file__).resolve().parents[1]
NO_MASKING = "all-tokens"  # a recipe entry meaning: train on the copy of the dataset labelled on every token
RECIPES = {
    "chatclone": ("chatclone (labels on the target's turns)", []),
    "no-masking": (
        "selfchatbot-style (labels on every token, the seeds' lr 2e-4)",
        [NO_MASKING, "trainer.learning_rate=2e-4"],
    ),
    "overfit": ("CatGPT-style (preset=overfit)", ["preset=overfit"]),
}
DEFAULT_RECIPES = "chatclone,no-masking,overfit"
# Settings that do not change what a named run is: another --recipes, --screen or --threads resumes the same --out.
SELECTION = ("out", "recipes", "recipe", "screen", "screen_sequences", "threads", "skip_base")


def recipe_table(args: argparse.Namespace) -> list[tuple[str, str, list[str]]]:
    """(key, label, overrides) of each recipe asked for, in order."""
    known, added = dict(RECIPES), []
    for extra in args.recipe:
        key, _, overrides = extra.partition("=")
        if not key or not overrides:
            sys.exit(f"--recipe {extra!r}: write NAME=OVERRIDES, e.g. lr-5e-4=trainer.learning_rate=5e-4")
        known[key] = (f"{key} ({overrides})", overrides.split())
        added.append(key)
    chosen, listed = [], [k.strip() for k in args.recipes.split(",") if k.strip()]
    for key in listed + [k for k in added if k not in listed]:  # a --recipe runs even when --recipes omits it
        if key.startswith("weighted-") and key not in known:
            weight = key.removeprefix("weighted-")
            known[key] = (f"other turns at loss weight {weight}", [f"trainer.other_turns_weight={weight}"])
        if key not in known:
            sys.exit(
                f"--recipes: unknown recipe {key!r} (known: {', '.join(known)}, weighted-W, or add one with "
                "--recipe NAME=OVERRIDES)"
            )
        chosen.append((key, *known[key]))
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--input",
        type=Path,
        default=None,
        help="DiscordChatExporter exports (folder or file) instead of the synthetic corpus",
    )
    parser.add_argument("--target", default=None, help="with --input: the user id or username to clone")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per recipe")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--messages", type=int, default=4000, help="size of the synthetic style corpus")
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="process_messages' split.validation_fraction (the newest share of the conversations): "
        "a smaller one makes the held-out perplexity pass cheaper on a big export",
    )
    parser.add_argument("--max-length", type=int, default=128, help="model.max_length when tokenizing")
    parser.add_argument(
        "--max-contexts",
        type=int,
        default=70,
        help="validation contexts replied to (70 = all of the default corpus's; attribution rates "
        "over 24 sampled replies moved by +-15 points between runs)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--recipes", default=DEFAULT_RECIPES, help=f"comma-separated (default {DEFAULT_RECIPES})")
    parser.add_argument("--recipe", action="append", default=[], help="NAME=OVERRIDES: one more recipe")
    parser.add_argument("--screen", action="store_true", help="train and measure held-out perplexity only")
    parser.add_argument(
        "--screen-sequences",
        type=int,
        default=60,
        help="--screen: validation sequences scored (evenly spread; the full table scores all)",
    )
    parser.add_argument(
        "--skip-base",
        action="store_true",
        help="do not score the base model (another run on the same --out does): no table at the end",
    )
    parser.add_argument(
        "--threads",
        default="auto",
        help="torch's CPU threads, as the scripts' threads= key (auto: the cores not busy at start)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "outputs" / "bench_fidelity" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    )
    args = parser.parse_args()
    if (args.input is None) != (args.target is None):
        sys.exit("--input and --target go together: the exports to read and whose voice to learn")
    if args.input is not None and not args.input.exists():
        sys.exit(f"--input {args.input}: no such file or folder")
    from chatclone import threads
    from chatclone.errors import ChatcloneError

    try:
        threads.parse_threads(args.threads)
    except ChatcloneError as error:
        sys.exit(f"--{error}")
    recipes = recipe_table(args)
    same_settings_as_before(args)
    threads.apply(args.threads)  # as every script does before torch loads: a busy core no longer stalls each op
    started = time.perf_counter()
    data_dir = tokenized_corpus(args)
    corpus = (
        f"{args.input} (target {args.target})" if args.input else f"synthetic style corpus ({args.messages} messages)"
    )
    print(
        f"{corpus}: {args.steps} steps of batch {args.batch_size} per recipe, windows of <= {args.max_length} "
        f"tokens, embedded SmolLM2-135M + LoRA r=16; {args.max_contexts} validation contexts, sampling=default "
        f"(max_new_tokens {args.max_new_tokens}, seed 0); work dir {args.out}\n",
        flush=True,
    )
    rows, extremes = [], None
    for i, (key, name, recipe) in enumerate(recipes):
        data = all_token_labels(data_dir, args.out / "tokenize_dataset" / "all") if NO_MASKING in recipe else data_dir
        run, seconds = train_recipe(args, data, [o for o in recipe if o != NO_MASKING], key)
        metrics = (screen_run if args.screen else evaluate_run)(args, run, with_base=i == 0 and not args.skip_base)
        if i == 0:
            extremes = metrics
            rows.append(("base model (no fine-tuning)", None, metrics, "base"))
        rows.append((name, seconds, metrics, "fine_tuned"))
        print(
            f"  {name}: trained in {seconds:.0f} s, {'screened' if args.screen else 'evaluated'} "
            f"({time.perf_counter() - started:.0f} s so far)",
            flush=True,
        )
    if args.skip_base:
        print("--skip-base: no table; run again on the same --out without it to print the table")
    else:
        (print_screen if args.screen else print_table)(rows, extremes, args.steps)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


def quiet():
    from rich.console import Console

    return Console(file=io.StringIO())


def same_settings_as_before(args: argparse.Namespace) -> None:
    """Resuming reuses finished runs: refuse an --out that holds runs made with other settings (the choice of
    recipes and --screen may change: each run is named by its recipe)."""
    settings = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in vars(args).items()
        if key not in SELECTION
    }
    record = args.out / "benchmark_args.json"
    if record.is_file():
        before = json.loads(record.read_text(encoding="utf-8"))
        if {k: v for k, v in before.items() if k not in SELECTION} != settings:
            sys.exit(
                f"{record}: this --out holds runs made with {record.read_text(encoding='utf-8').strip()}, not "
                f"{json.dumps(settings)}: use a new --out, or the same settings to resume"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(settings), encoding="utf-8")


def finished(run_dir: Path) -> bool:
    """Whether a run of an earlier, interrupted benchmark finished; an unfinished one is removed to be redone."""
    if (run_dir / "manifest.json").is_file():
        return True
    shutil.rmtree(run_dir, ignore_errors=True)
    return False


def tokenized_corpus(args: argparse.Namespace) -> Path:
    """process_messages and tokenize_dataset on --input (read where it is, never written) or on a freshly written
    synthetic style corpus."""
    from chatclone.stages.process_messages import process_messages
    from chatclone.stages.tokenize_dataset import tokenize_dataset

    out = args.out
    if finished(out / "tokenize_dataset" / "run"):
        return out / "tokenize_dataset" / "run"
    for stage in ("exports", "process_messages"):
        shutil.rmtree(out / stage, ignore_errors=True)
    if args.input is None:
        from chatclone.stylecorpus import FILE_NAME, write_style_corpus

        (out / "exports").mkdir(parents=True)
        corpus = write_style_corpus(out / "exports" / FILE_NAME, n_messages=args.messages)
        source, target = out / "exports", corpus["target"]["username"]
    else:
        source, target = args.input.resolve(), args.target
    process_messages(
        compose(
            "process_messages",
            [
                f"input={source}",
                "progress=false",
                f"target={target}",
                f"split.validation_fraction={args.validation_fraction}",
            ],
        ),
        out / "process_messages" / "run",
        console=quiet(),
    )
    tokenize_dataset(
        compose(
            "tokenize_dataset",
            [
                f"input={out / 'process_messages' / 'run'}",
                "progress=false",
                "num_proc=1",
                f"model.max_length={args.max_length}",
            ],
        ),
        out / "tokenize_dataset" / "run",
        console=quiet(),
    )
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
    cfg = compose(
        "train",
        [
            f"input={data_dir}",
            f"outputs_root={args.out}",
            f"trainer.max_steps={args.steps}",
            f"trainer.batch_size={args.batch_size}",
            "trainer.gradient_accumulation_steps=1",
            "trainer.save_strategy=no",
            "trainer.logging_steps=10",
            "wandb.mode=disabled",
            *overrides,
        ],
    )
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its logs: stdout is for the table
        metrics = train(cfg, run, console=quiet())
    gc.collect()
    return run, metrics["train"]["train_runtime"]


def evaluate_run(args, run: Path, with_base: bool) -> dict:
    from chatclone.stages.evaluate_clone import evaluate_clone

    out = args.out / "evaluate_clone" / (run.name + ("+base" if with_base else ""))
    if not with_base and finished(out.with_name(out.name + "+base")):
        out = out.with_name(out.name + "+base")
    if finished(out):
        return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    cfg = compose(
        "evaluate_clone",
        [
            f"run={run}",
            f"outputs_root={args.out}",
            f"eval.base={str(with_base).lower()}",
            f"eval.max_contexts={args.max_contexts}",
            "wandb.mode=disabled",
            f"sampling.max_new_tokens={args.max_new_tokens}",
        ],
    )
    metrics = evaluate_clone(cfg, out, console=quiet())
    gc.collect()
    return metrics


def screen_run(args, run: Path, with_base: bool) -> dict:
    """The held-out perplexity only (the clone's, and the base model's with `with_base`) over --screen-sequences
    validation sequences, as metrics.json's models section; kept in <out>/screen/."""
    from chatclone.evaluation.data import labelled_examples, spread
    from chatclone.evaluation.passes import perplexity_pass
    from chatclone.generation.clone import load_clone, locate

    path = args.out / "screen" / f"{run.name}{'+base' if with_base else ''}-{args.screen_sequences}.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    cfg = compose("evaluate_clone", [f"run={run}", f"outputs_root={args.out}", "wandb.mode=disabled"])
    spec = locate(cfg)
    examples = spread(labelled_examples(spec.data_dir)[0], args.screen_sequences)
    variants = [("base", dataclasses.replace(spec, kind="base", weights=None))] if with_base else []
    models = {}
    for name, variant in variants + [("fine_tuned", spec)]:
        clone = load_clone(variant, cfg)
        models[name] = {"perplexity": perplexity_pass(clone, examples, cfg.eval.batch_size)}
        del clone
        gc.collect()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"models": models}), encoding="utf-8")
    return {"models": models}


def _rate(r: dict | None) -> str:
    from chatclone.metrics.rates import format_rate

    return "—" if r is None else format_rate(r)


def model_cells(m: dict) -> list[str]:
    """One model's cells: ppl, detectability, attribution (rate, normalised), assistant-isms, context use, shape."""
    context, normal = m.get("context_use"), m["attribution"].get("normalised")
    return [
        f"{m['perplexity']['perplexity']:.2f}",
        _rate(m.get("detectability")),
        _rate(m["attribution"]),
        "" if normal is None else f"{normal:.2f}",
        _rate(m.get("assistant_isms")),
        "—" if context is None else f"{context['perplexity_ratio']:.3f} / {_rate(context['own_context_wins'])}",
        f"{m['surface']['mean_chars']:.1f}",
        f"{m['surface']['length_ks']:.2f}",
        f"{m['surface']['mean_lines']:.2f}",
    ]


COLUMNS = (
    "model",
    "train s",
    "held-out ppl",
    "detectability [95 % CI] n",
    "attributed to target [95 % CI] n",
    "normalised",
    "assistant-isms [95 % CI] n",
    "context: ppl other/own, own wins [95 % CI] n",
    "mean chars",
    "KS lengths",
    "lines/reply",
)


def print_table(rows: list, extremes: dict, steps: int) -> None:
    """The result as a markdown table (pasted into the README as it is), then the verdict."""
    from chatclone.evaluation.fidelity import caveat
    from chatclone.metrics.rates import format_auc

    print("\n| " + " | ".join(COLUMNS) + " |\n|---|" + "---:|" * (len(COLUMNS) - 1))
    for name, seconds, metrics, key in rows:
        seconds_cell = "" if seconds is None else f"{seconds:.0f}"
        print("| " + " | ".join([name, seconds_cell, *model_cells(metrics["models"][key])]) + " |")
    target, ref = extremes["target"], extremes["reference_surface"]
    print(
        f"| ceiling: {target}'s own held-out replies | | | | {_rate(extremes['ceiling'])} | 1 | "
        f"{_rate(extremes.get('reference_assistant_isms'))} | | {ref['mean_chars']:.1f} | | "
        f"{ref['mean_lines']:.2f} |"
    )
    print(f"| floor: other speakers' held-out messages | | | | {_rate(extremes['floor'])} | 0 | | | | | |")
    check, auc = extremes["attribution_check"], extremes.get("attribution_auc")
    print(
        f"\nstyle classifier ROC AUC (target vs others, real held-out messages): "
        f"{format_auc(auc) if auc else '—'}; "
        + ("attribution can rank models" if check["separable"] else caveat(target, check))
    )
    base, ours = extremes["models"]["base"], extremes["models"]["fine_tuned"]
    ppl = (base["perplexity"]["perplexity"], ours["perplexity"]["perplexity"])
    detected = (base.get("detectability") or {}).get("rate"), (ours.get("detectability") or {}).get("rate")
    print(
        f"first recipe after {steps} steps: held-out perplexity {ppl[1]:.2f} vs base {ppl[0]:.2f} "
        f"({ppl[1] / ppl[0] - 1:+.0%}); detectability {_pct(detected[1])} vs base {_pct(detected[0])}"
    )


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def print_screen(rows: list, extremes: dict, steps: int) -> None:
    base = extremes["models"]["base"]["perplexity"]["perplexity"]
    print(f"\n| model (screen: {steps} steps) | train s | held-out ppl | vs base |\n|---|---:|---:|---:|")
    for name, seconds, metrics, key in rows:
        ppl = metrics["models"][key]["perplexity"]["perplexity"]
        print(f"| {name} | {'' if seconds is None else f'{seconds:.0f}'} | {ppl:.2f} | {ppl / base - 1:+.1%} |")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
