"""Benchmark: the exported clone in llama.cpp next to chatclone's own fast_decode path, and what quantising costs.

Usage:
    python benchmarks/bench_export.py                          # trains a 1-step adapter on the bundled sample
    python benchmarks/bench_export.py --run outputs/train/<run> --tokens 64 --repeats 3
    python benchmarks/bench_export.py --with-llama-cpp   # also llama.cpp (installs llama-cpp-python, ~20 min once)
    python benchmarks/bench_export.py --quantizations F16,Q8_0,Q4_0 --no-agreement
What it does:
  1. exports the run with export_model (each of --quantizations), timing each export;
  2. agreement: each GGUF loaded back with transformers (`from_pretrained(dir, gguf_file=...)`), teacher-forced on
     the merged model's own greedy continuation of the prompts: top-1 agreement with the merged float32 model and
     the largest logit difference (--no-agreement skips it: each 135M GGUF takes transformers ~1 min to load);
  3. decode tokens/s on the same prompts (`short`: one message; `long`: the longest training conversation), the
     end of turn suppressed so every reply is exactly --tokens long, median of --repeats: chatclone's defaults
     (benchmarks/bench_generate.py's `fused` contender: adapter merged, fast_decode), and with --with-llama-cpp
     llama.cpp through llama-cpp-python on each exported file, with the same thread count.
llama-cpp-python has no wheel on PyPI: it compiles llama.cpp (~20 minutes on the 2-core machine). --with-llama-cpp
installs the pinned version (pyproject's `llama-cpp` extra) into its own venv (--llama-venv, default
~/.cache/chatclone/llama-cpp-venv), once, and prints the compile time; it is never part of `make test`.
"""

from __future__ import annotations

import argparse
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
LLAMA_CPP = "llama-cpp-python==0.3.36"  # pyproject.toml's `llama-cpp` extra


def main() -> None:
    from chatclone.config.export_model import QUANTIZATIONS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a finished train run dir (default: train a 1-step adapter)")
    parser.add_argument(
        "--quantizations", default="F16,Q8_0,Q4_0", help="comma-separated, from: " + ", ".join(QUANTIZATIONS)
    )
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per reply")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-agreement", action="store_true", help="skip loading each GGUF back with transformers")
    parser.add_argument("--with-llama-cpp", action="store_true", help="also time llama.cpp (installs it, ~20 min)")
    parser.add_argument("--llama-venv", type=Path, default=Path.home() / ".cache" / "chatclone" / "llama-cpp-venv")
    parser.add_argument("--llama-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.llama_worker:
        return _llama_worker(args.llama_worker)
    quants = args.quantizations.split(",")
    if unknown := set(quants) - set(QUANTIZATIONS):
        parser.error(f"unknown quantization(s) {', '.join(sorted(unknown))}; choose from {', '.join(QUANTIZATIONS)}")
    if args.tokens < 2 or args.repeats < 1:
        parser.error("--tokens must be at least 2 and --repeats at least 1")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_generate

    python = _llama_python(args.llama_venv) if args.with_llama_cpp else None  # the long install first, if asked
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or bench_generate._train_tiny_adapter(Path(tmp))
        files = {q: _export(run, q, Path(tmp)) for q in quants}
        prompts = _prompts(run, args.tokens)
        print(
            f"run {run}; {args.tokens} new tokens per reply, median of {args.repeats}; threads {_threads()}, "
            f"load average {os.getloadavg()[0]:.1f}\n"
        )
        if not args.no_agreement:
            _agreement(run, files, prompts, args.tokens)
        print(f"{'contender':28} {'prompt':7} {'tokens':>7} {'first token s':>14} {'decode tok/s':>13}")
        ours = bench_generate._measure(run, "fused", args.tokens, args.repeats)["prompts"]
        for length in prompts:
            r = ours[length]
            print(
                f"{'chatclone fused+fast_decode':28} {length:7} {r['prompt_tokens']:7d} {r['first_token_s']:14.3f} "
                f"{r['decode_tokens_per_s']:13.1f}",
                flush=True,
            )
        for quant, path in files.items() if python else ():
            for length, r in _llama(python, path, prompts, args.tokens, args.repeats).items():
                print(
                    f"{'llama.cpp ' + quant:28} {length:7} {r['prompt_tokens']:7d} {r['first_token_s']:14.3f} "
                    f"{r['decode_tokens_per_s']:13.1f}",
                    flush=True,
                )


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _export(run: Path, quantization: str, tmp: Path) -> Path:
    from rich.console import Console

    from chatclone.config import compose
    from chatclone.stages.export_model import export_model

    cfg = compose("export_model", [f"run={run}", f"outputs_root={tmp}", f"quantization={quantization}"])
    started = time.perf_counter()
    info = export_model(cfg, tmp / "export_model" / quantization, console=Console(file=io.StringIO()))
    print(
        f"exported {quantization}: {info['bytes'] / 2**20:.1f} MiB in {time.perf_counter() - started:.1f} s "
        f"(template checked on {info['template_checked_turns']} turns)",
        file=sys.stderr,
    )
    return tmp / "export_model" / quantization / info["file"]


def _prompts(run: Path, tokens: int) -> dict[str, list[int]]:
    """The token ids of bench_generate's prompts (short, long), rendered by chatclone exactly as it generates."""
    import bench_generate

    from chatclone.config import compose
    from chatclone.generation.clone import locate
    from chatclone.generation.prompt import PromptBuilder
    from chatclone.modeling import load_tokenizer

    spec = locate(compose("inference", [f"run={run}"]))
    builder = PromptBuilder(load_tokenizer(spec.data_dir / "tokenizer"), spec.format)
    out = {}
    for length, messages in {
        "short": bench_generate.SHORT,
        "long": bench_generate._long_conversation(spec.data_dir),
    }.items():
        history = [builder.message(m["name"], m["content"]) for m in messages]
        out[length], _ = builder.fit(history, spec.target, spec.format.max_length - tokens)
    return out


def _agreement(run: Path, files: dict[str, Path], prompts: dict[str, list[int]], tokens: int) -> None:
    """Each GGUF, loaded by transformers, teacher-forced on the merged model's greedy continuation."""
    import torch
    from transformers import AutoModelForCausalLM

    from chatclone.config import compose
    from chatclone.generation.clone import locate
    from chatclone.stages.export_model import merged_model

    merged = merged_model(locate(compose("inference", [f"run={run}"])))
    with torch.no_grad():
        sequences = {
            k: merged.generate(torch.tensor([ids]), max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
            for k, ids in prompts.items()
        }
        reference = {k: merged(s).logits for k, s in sequences.items()}
    print(f"{'export':7} {'MiB':>7} {'load s':>7} {'top-1 agreement':>16} {'max |logit diff|':>17}")
    for quant, path in files.items():
        started = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32, local_files_only=True
        ).eval()
        load_s, same, total, worst = time.perf_counter() - started, 0, 0, 0.0
        with torch.no_grad():
            for k, seq in sequences.items():
                n = len(prompts[k])
                a, b = reference[k][0, n - 1 : -1], model(seq).logits[0, n - 1 : -1]
                same, total = same + int((a.argmax(-1) == b.argmax(-1)).sum()), total + a.shape[0]
                worst = max(worst, float((a - b).abs().max()))
        print(
            f"{quant:7} {path.stat().st_size / 2**20:7.1f} {load_s:7.1f} {same / total:15.1%} {worst:17.3f}", flush=True
        )
    print()


def _llama_python(venv: Path) -> Path:
    """The venv's python with llama-cpp-python installed (compiled once: the time is printed)."""
    python = venv / "bin" / "python"
    if (
        python.is_file()
        and subprocess.run([str(python), "-c", "import llama_cpp"], capture_output=True).returncode == 0
    ):
        return python
    print(
        f"installing {LLAMA_CPP} into {venv} (compiles llama.cpp: ~20 minutes on 2 cores)...",
        file=sys.stderr,
        flush=True,
    )
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    started = time.perf_counter()
    subprocess.run([str(python), "-m", "pip", "install", "--no-cache-dir", LLAMA_CPP], check=True, stdout=sys.stderr)
    print(f"llama-cpp-python compiled and installed in {time.perf_counter() - started:.0f} s", flush=True)
    return python


def _llama(python: Path, path: Path, prompts: dict[str, list[int]], tokens: int, repeats: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump(
            {"model": str(path), "prompts": prompts, "tokens": tokens, "repeats": repeats, "threads": _threads()}, spec
        )
    try:
        result = subprocess.run(
            [str(python), __file__, "--llama-worker", spec.name], check=True, capture_output=True, text=True
        )
    finally:
        os.unlink(spec.name)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _llama_worker(spec_path: Path) -> None:
    """Inside the llama.cpp venv (llama_cpp and the standard library only): time exactly `tokens` greedy tokens."""
    from llama_cpp import Llama

    spec = json.loads(spec_path.read_text())
    llm = Llama(model_path=spec["model"], n_ctx=2048, n_threads=spec["threads"], verbose=False)
    out = {}
    for length, ids in spec["prompts"].items():
        firsts, rates = [], []
        for attempt in range(spec["repeats"] + 1):  # the first is a warm-up
            started, first, count = time.perf_counter(), None, 0
            for _ in llm.generate(ids, temp=0.0, top_k=1, reset=True):  # generate() never stops at the end of turn
                count += 1
                first = first or time.perf_counter()
                if count == spec["tokens"]:
                    break
            if attempt:
                firsts.append(first - started)
                rates.append((count - 1) / (time.perf_counter() - first))
        out[length] = {
            "prompt_tokens": len(ids),
            "first_token_s": statistics.median(firsts),
            "decode_tokens_per_s": statistics.median(rates),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--llama-worker"]:  # inside the llama.cpp venv, which has no chatclone dependencies
        _llama_worker(Path(sys.argv[2]))
    else:
        sys.path.insert(0, str(ROOT))
        main()
