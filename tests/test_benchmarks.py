"""Benchmark scripts refuse bad flags with one line, before any data is built or model loaded."""

from __future__ import annotations

import pytest

from tests.conftest import run_script


@pytest.mark.parametrize(
    "bench, flags, message",
    [
        ("bench_train", ["--rounds", "0"], "argument --rounds: must be a whole number >= 1, got '0'"),
        ("bench_train", ["--contenders", "chatclone", "nope"], "argument --contenders: invalid choice: 'nope'"),
        ("bench_train", ["--sessions", "medium"], "argument --sessions: invalid choice: 'medium'"),
        ("bench_contention", ["--rounds", "0"], "argument --rounds: must be a whole number >= 1, got '0'"),
        ("bench_contention", ["--tokens", "many"], "argument --tokens: must be a whole number >= 1, got 'many'"),
        ("bench_contention", ["--conditions", "idle", "noisy"], "argument --conditions: invalid choice: 'noisy'"),
        ("bench_contention", ["--load", "fire"], "argument --load: invalid choice: 'fire'"),
    ],
)
def test_bench_scripts_refuse_bad_flags(bench, flags, message):
    result = run_script(f"benchmarks/{bench}", *flags, timeout=60)
    assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1]
