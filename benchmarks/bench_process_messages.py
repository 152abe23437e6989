"""Benchmark: process_messages on a synthetic 1,000,000-message DCE JSON export vs a naive json.load reader.

Usage:
    python benchmarks/bench_process_messages.py                 # 1,000,000 messages (~700 MB file)
    python benchmarks/bench_process_messages.py --messages 100000
Each contender runs in its own process, so peak RSS (ru_maxrss) is its own. Targets for process_messages on
the 2-core reference machine: >= 50,000 messages/s and peak RSS under 1 GiB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONTENDERS = {
    "chatclone process_messages (read+clean+segment+split+write)": """
from chatclone.config.process_messages import ProcessMessagesConfig
from chatclone.stages.process_messages import process_messages
from rich.console import Console
cfg = ProcessMessagesConfig(input=[EXPORT], target="tamsin.vale", progress=False)
process_messages(cfg, Path(RUN_DIR), console=Console(file=open("/dev/null", "w")))
""",
    "chatclone streamed reader only": """
from chatclone.exports.json_reader import read_json
from chatclone.exports.sources import ReadOptions
_, messages = read_json(Path(EXPORT), ReadOptions())
count = sum(1 for _ in messages)
""",
    "naive json.load reader (baseline)": """
import json
from datetime import datetime
doc = json.load(open(EXPORT, encoding="utf-8"))
rows = [(m["author"]["id"], m["author"]["name"], datetime.fromisoformat(m["timestamp"]).timestamp(), m["content"])
        for m in doc["messages"]]
""",
}

RUNNER = """
import resource, sys, time
from pathlib import Path
EXPORT, RUN_DIR = sys.argv[1], sys.argv[2]
start = time.perf_counter()
{body}
seconds = time.perf_counter() - start
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="keep the synthetic export at this path (reused if present)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        export = args.keep or Path(tmp) / "Synthetic Server - general [900000000000000001].json"
        if not export.exists():
            _generate(export, args.messages)
        size_mb = export.stat().st_size / 1e6
        print(f"synthetic export: {args.messages:,} messages, {size_mb:,.0f} MB\n")
        print(f"{'contender':60} {'seconds':>8} {'messages/s':>12} {'peak RSS':>10}")
        for i, (name, body) in enumerate(CONTENDERS.items()):
            seconds, rss_kb = _measure(body, export, Path(tmp) / f"run{i}")
            print(f"{name:60} {seconds:8.1f} {args.messages / seconds:12,.0f} {rss_kb / 1024**2:8.2f} GiB", flush=True)


def _generate(export: Path, n: int) -> None:
    from chatclone.synthetic import write_dce_json

    start = time.perf_counter()
    write_dce_json(export, n)
    print(f"generated in {time.perf_counter() - start:.0f} s")


def _measure(body: str, export: Path, run_dir: Path) -> tuple[float, int]:
    code = RUNNER.format(body=body)
    out = subprocess.run(
        [sys.executable, "-c", code, str(export), str(run_dir)], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[-2]), int(out[-1])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
