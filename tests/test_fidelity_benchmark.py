"""benchmarks/fidelity.py refuses bad arguments in one line, before any data or model is touched."""

from __future__ import annotations

import argparse
import importlib.util

import pytest

from tests.conftest import ROOT, run_script


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input", "tests/fixtures/sample_exports"], "--input and --target go together"),
        (["--target", "someone"], "--input and --target go together"),
        (["--input", "no/such/exports", "--target", "someone"], "--input no/such/exports: no such file or folder"),
        (["--recipes", "chatclone,nonsense"], "--recipes: unknown recipe 'nonsense'"),
        (["--recipe", "lonely"], "--recipe 'lonely': write NAME=OVERRIDES"),
        (["--threads", "many"], "--threads=many: use auto"),
    ],
)
def test_bad_arguments_fail_in_one_line(args, message, tmp_path):
    result = run_script("benchmarks/fidelity", *args, "--out", str(tmp_path / "out"))
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.strip().startswith(message) and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_another_selection_of_recipes_resumes_but_other_settings_are_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "benchmark_args.json").write_text(
        '{"input": null, "target": null, "steps": 40, "batch_size": 4, '
        '"messages": 4000, "max_length": 128, "max_contexts": 70, '
        '"max_new_tokens": 32, "recipes": "overfit", "screen": true}'
    )
    result = run_script("benchmarks/fidelity", "--steps", "41", "--out", str(out))
    assert result.returncode != 0 and "use a new --out, or the same settings to resume" in result.stderr


def test_a_recipe_added_with_recipe_runs_even_when_recipes_leaves_it_out():
    spec = importlib.util.spec_from_file_location("fidelity_benchmark", ROOT / "benchmarks" / "fidelity.py")
    fidelity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fidelity)
    args = argparse.Namespace(
        recipes="chatclone,no-masking",
        recipe=["lr1e-3=trainer.learning_rate=1e-3", "no-masking=trainer.other_turns_weight=1"],
    )
    table = fidelity.recipe_table(args)
    assert [key for key, _, _ in table] == ["chatclone", "no-masking", "lr1e-3"]
    assert table[1][2] == ["trainer.other_turns_weight=1"] and table[2][2] == ["trainer.learning_rate=1e-3"]
