"""Benchmark scripts refuse bad flags with one line, before any data is built or model loaded."""

from __future__ import annotations

import pytest

from tests.conftest import run_script


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--rounds", "0"], "argument --rounds: must be a whole number >= 1, got '0'"),
        (["--contenders", "chatclone", "nope"], "argument --contenders: invalid choice: 'nope'"),
        (["--sessions", "medium"], "argument --sessions: invalid choice: 'medium'"),
    ],
)
def test_bench_train_refuses_bad_flags(flags, message):
    result = run_script("benchmarks/bench_train", *flags, timeout=60)
    assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--rounds", "0"], "argument --rounds: must be a whole number >= 1, got '0'"),
        (["--tokens", "many"], "argument --tokens: must be a whole number >= 1, got 'many'"),
        (["--conditions", "idle", "noisy"], "argument --conditions: invalid choice: 'noisy'"),
        (["--load", "fire"], "argument --load: invalid choice: 'fire'"),
    ],
)
def test_bench_contention_refuses_bad_flags(flags, message):
    result = run_script("benchmarks/bench_contention", *flags, timeout=60)
    assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1]
