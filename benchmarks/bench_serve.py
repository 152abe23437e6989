"""Benchmark: serve.py under 1, 4 and 16 concurrent streaming clients, batched vs strictly sequential, and
inference.py's own figure on the same prompts.

Usage:
    python benchmarks/bench_serve.py                                   # trains a 1-step adapter on the embedded model
    python benchmarks/bench_serve.py --run outputs/train/<run> --clients 1 4 16 --tokens 48 --requests 3
    python benchmarks/bench_serve.py --clients 2 --tokens 8 --requests 1 --contenders batched   # a smoke check
Contenders, each a serve.py process of its own (port 0, threads=auto, no rate limit, a queue as long as needed):
  batched      max_batch=16: concurrent requests decode together (chatclone.serving.engine)
  sequential   max_batch=1: one request after another (the baseline)
  all-cores    batched with free_cores=0: torch's threads on every free core, none left to the server's event
               loop and scheduler (serve.py's default before free_cores=1)
  inference    inference.py mode=prompt on each prompt, one process each: its own first-token and tokens/s
Each client sends --requests streamed chat completions one after the other (the prompts in turn, seeded, max_tokens
--tokens; a reply may end earlier at the clone's end of turn: tokens are counted from `usage`). Figures: requests/s
and aggregate tokens/s over the wall time of all clients; per-stream tokens/s (a reply's tokens over its time after
the first token, median); time to the first streamed token and whole-request latency (p50 / p95). Target: at 16
clients, aggregate tokens/s >= 4x one client's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PROMPTS = [
    "hey are you still up for saturday?",
    "what are you up to tonight?",
    "did you see the match?",
    "can you send me that recipe?",
]
CONTENDERS = {
    "batched": ["max_batch=16"],
    "sequential": ["max_batch=1"],
    "all-cores": ["max_batch=16", "free_cores=0"],
    "inference": None,
}


def whole(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a train run dir (default: train a 1-step adapter)")
    parser.add_argument("--clients", type=whole, nargs="+", default=[1, 4, 16])
    parser.add_argument("--tokens", type=whole, default=48, help="max_tokens of each request")
    parser.add_argument("--requests", type=whole, default=3, help="requests each client sends, one after another")
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS), default=list(CONTENDERS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.run is None:
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from bench_generate import _train_tiny_adapter

            run = _train_tiny_adapter(Path(tmp))
        else:
            run = args.run
        print(
            f"run {run}; max_tokens {args.tokens}, {args.requests} requests a client, load average "
            f"{os.getloadavg()[0]:.1f}\n"
        )
        print(
            f"{'contender':10} {'clients':>7} {'req/s':>6} {'agg tok/s':>9} {'stream tok/s':>12} "
            f"{'ttft p50':>8} {'ttft p95':>8} {'lat p50':>7} {'lat p95':>7} {'tokens':>6}"
        )
        for name in args.contenders:
            if name == "inference":
                _inference_row(run, args.tokens, Path(tmp))
                continue
            server = _start(run, CONTENDERS[name], Path(tmp) / name, max(args.clients))
            try:
                _stream(server[1], args.tokens, 0, 0)  # warm-up, untimed
                for clients in args.clients:
                    _row(name, clients, _load(server[1], clients, args.requests, args.tokens))
            finally:
                server[0].terminate()
                server[0].wait(timeout=60)


def _start(run: Path, extra: list[str], run_dir: Path, clients: int) -> tuple[subprocess.Popen, str]:
    command = [
        sys.executable,
        "serve.py",
        f"clones=[{run}]",
        "port=0",
        "limits.requests_per_minute=0",
        f"queue_size={max(32, clients)}",
        "limits.max_tokens=512",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in process.stdout:
        if match := re.search(r"at (http://\S+)/ \(OpenAI API", line):
            return process, match.group(1)
    raise SystemExit(f"serve.py did not start: {' '.join(command)}")


def _stream(url: str, tokens: int, client: int, index: int) -> dict:
    """One streamed request; its first-token time, latency and completion tokens."""
    import httpx

    body = {
        "model": None,
        "messages": [{"role": "user", "content": PROMPTS[(client + index) % len(PROMPTS)]}],
        "max_tokens": tokens,
        "seed": client * 100 + index,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    body["model"] = httpx.get(url + "/v1/models").json()["data"][0]["id"]
    started, first, used = time.perf_counter(), None, 0
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=600) as response:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[6:])
            if first is None and any(c["delta"].get("content") for c in data["choices"]):
                first = time.perf_counter() - started
            if data.get("usage"):
                used = data["usage"]["completion_tokens"]
    latency = time.perf_counter() - started
    return {"first": first or latency, "latency": latency, "tokens": used}


def _load(url: str, clients: int, requests: int, tokens: int) -> dict:
    results: list[dict] = []
    barrier = threading.Barrier(clients)

    def client(number: int) -> None:
        barrier.wait()
        for index in range(requests):
            results.append(_stream(url, tokens, number, index))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"wall": time.perf_counter() - started, "results": results}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _row(name: str, clients: int, load: dict) -> None:
    results, wall = load["results"], load["wall"]
    tokens = sum(r["tokens"] for r in results)
    streams = [r["tokens"] / (r["latency"] - r["first"]) for r in results if r["latency"] > r["first"]]
    firsts, latencies = [r["first"] for r in results], [r["latency"] for r in results]
    print(
        f"{name:10} {clients:>7} {len(results) / wall:>6.2f} {tokens / wall:>9.1f} "
        f"{statistics.median(streams) if streams else 0:>12.1f} {_pct(firsts, 0.5):>8.2f} {_pct(firsts, 0.95):>8.2f} "
        f"{_pct(latencies, 0.5):>7.2f} {_pct(latencies, 0.95):>7.2f} {tokens:>6}",
        flush=True,
    )


def _inference_row(run: Path, tokens: int, tmp: Path) -> None:
    """inference.py mode=prompt on each prompt: its own figures (first token, tokens/s), model loading excluded."""
    rows = []
    for index, prompt in enumerate(PROMPTS):
        run_dir = tmp / "inference" / str(index)
        subprocess.run(
            [
                sys.executable,
                "inference.py",
                f"run={run}",
                "mode=prompt",
                f"prompt={prompt}",
                f"sampling.max_new_tokens={tokens}",
                f"seed={index}",
                f"hydra.run.dir={run_dir}",
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        rows += [json.loads(line) for line in (run_dir / "generations.jsonl").read_text().splitlines()]
    firsts = [r["first_token_s"] or r["seconds"] for r in rows]
    speed = statistics.median(r["tokens_per_s"] for r in rows)
    print(
        f"{'inference':10} {1:>7} {len(rows) / sum(r['seconds'] for r in rows):>6.2f} {speed:>9.1f} "
        f"{speed:>12.1f} {_pct(firsts, 0.5):>8.2f} {_pct(firsts, 0.95):>8.2f} "
        f"{_pct([r['seconds'] for r in rows], 0.5):>7.2f} {_pct([r['seconds'] for r in rows], 0.95):>7.2f} "
        f"{sum(r['tokens'] for r in rows):>6}",
        flush=True,
    )


if __name__ == "__main__":
    main()
