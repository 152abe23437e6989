"""`make demo`: the committed style corpus, the Makefile's commands as valid compositions of each script's config, and
inference.py mode=compare (the base model's and the clone's replies to the same messages, side by side, then both
held-out perplexities) on the tiny trained clone, with its bad inputs. The whole demo is not run here (minutes)."""

from __future__ import annotations

import io
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

import chatclone.config  # noqa: F401
from chatclone import runs
from chatclone.config.commandline import free_text_keys, plain_text_overrides, quote, schema_of
from chatclone.errors import ChatcloneError
from chatclone.stages.evaluate_clone import evaluate_clone
from chatclone.stages.inference import inference
from chatclone.stylecorpus import FILE_NAME, write_style_corpus
from tests.conftest import ROOT, compose, quiet, run_script
from tests.test_generation import read_jsonl

CORPUS = ROOT / "examples" / "style_corpus" / FILE_NAME
MESSAGES = ["hey, are you free saturday?", "what are you up to tonight?", "Tamsin: you there?\nOrrin: pub quiz later?"]
PERPLEXITY_LINE = re.compile(
    r"^held-out perplexity of (.+)'s real replies \((\d+) validation tokens\): base "
    r"([\d.]+) vs clone ([\d.]+) \((\d+) % (lower|higher)\)$"
)


def demo_steps() -> list[tuple[str, list[str]]]:
    """(script, argv) of each `step $(PY) <script>.py ...` line of the Makefile's demo, split as the shell does."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    variables = dict(re.findall(r"^(\w+) :?= (.*)$", makefile, flags=re.MULTILINE))
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    steps = []
    for script, args in re.findall(r"step \$\(PY\) (\w+)\.py(.*?);", recipe):
        args = re.sub(r"\$\((\w+)\)", lambda m: variables[m.group(1)], args)
        steps.append((script, shlex.split(args)))
    return steps


def compare(root: Path, run_dir: Path, overrides: list[str]) -> tuple[dict, str]:
    cfg = compose(
        "inference", [f"outputs_root={root}", "mode=compare", "sampling.max_new_tokens=5", "seed=0", *overrides]
    )
    out = io.StringIO()
    summary = inference(cfg, run_dir, stdout=out, stderr=io.StringIO(), console=quiet())
    return summary, out.getvalue()


@pytest.fixture(scope="module")
def compared(clone_root, tmp_path_factory) -> tuple[Path, dict, str]:
    run_dir = tmp_path_factory.mktemp("compare") / "run"
    summary, stdout = compare(clone_root, run_dir, [f"messages=[{','.join(quote(m) for m in MESSAGES)}]"])
    return run_dir, summary, stdout


# --- the corpus and the Makefile --------------------------------------------------------------------------------


def test_the_committed_corpus_is_what_stylecorpus_writes(tmp_path):
    info = write_style_corpus(tmp_path / FILE_NAME, n_messages=2000, seed=0)
    assert CORPUS.read_bytes() == (tmp_path / FILE_NAME).read_bytes()
    assert info["target"]["username"] == "mossy.wren" and CORPUS.stat().st_size < 2.2e6


def test_demo_runs_the_four_scripts_on_the_style_corpus():
    steps = dict(demo_steps())
    assert list(steps) == ["process_messages", "tokenize_dataset", "train", "inference"]
    assert "input=examples/style_corpus" in steps["process_messages"]
    assert "target=mossy.wren" in steps["process_messages"] and "model.max_length=128" in steps["tokenize_dataset"]
    assert "trainer.max_steps=40" in steps["train"] and "mode=compare" in steps["inference"]


@pytest.mark.parametrize("script, args", demo_steps())
def test_each_demo_command_composes_and_passes_its_checks(script, args):
    """Each step's arguments as the script reads them (free text quoted as the script does, then Hydra's compose),
    with the config's own value checks: the demo cannot fail on a typo in the Makefile."""
    overrides = plain_text_overrides(args, free_text_keys(schema_of(script)))
    cfg = compose(script, overrides)
    cfg.check()
    if script == "process_messages":
        assert (ROOT / cfg.inputs[0] / FILE_NAME).is_file() and cfg.target == "mossy.wren"
    if script == "train":
        assert cfg.trainer.max_steps * cfg.trainer.batch_size * cfg.trainer.gradient_accumulation_steps == 160
    if script == "inference":
        assert cfg.mode.value == "compare" and cfg.sampling.greedy and len(cfg.messages) == 4
        assert all(m.endswith("?") and "," not in m for m in cfg.messages)  # whole messages, not split


def test_messages_on_the_command_line(tmp_path):
    """`--cfg job`: what inference.py would run with, nothing loaded."""

    def job(*args: str) -> dict:
        result = run_script("inference", "mode=compare", *args, "--cfg", "job")
        assert result.returncode == 0, result.stderr
        return yaml.safe_load(result.stdout)

    assert job('messages=["hey, you up?","what\'s up"]')["messages"] == ["hey, you up?", "what's up"]
    assert job("messages=are you free?")["messages"] == ["are you free?"]


# --- mode=compare on the tiny clone -----------------------------------------------------------------------------


def test_compare_prints_both_replies_for_the_same_messages(compared):
    run_dir, summary, stdout = compared
    rows = read_jsonl(run_dir / "generations.jsonl")
    shown = [r for r in rows if r["shown"]]
    assert [(r["model"], r["message"]) for r in shown] == [(m, i) for m in ("base", "clone") for i in range(3)]
    base, clone = ([r["prompt"] for r in shown if r["model"] == m] for m in ("base", "clone"))
    assert (
        base
        == clone
        == [
            "Orrin: hey, are you free saturday?",
            "Orrin: what are you up to tonight?",
            "Tamsin: you there?\nOrrin: pub quiz later?",
        ]
    )
    header = stdout.splitlines()[:4]
    assert any("message" in line and "base model" in line and "clone (Tamsin)" in line for line in header)
    for words in ("saturday?", "tonight?", "quiz"):  # single words: the table wraps a cell's lines
        assert words in stdout
    assert summary["mode"] == "compare" and summary["messages"] == 3 and summary["replies"] == 6
    manifest = runs.read_manifest(run_dir)
    assert manifest["outputs"] == ["generations.jsonl"] and manifest["summary"]["perplexity_clone"] > 0


def test_the_perplexity_line_is_the_summary_and_ends_stdout(compared):
    _, summary, stdout = compared
    match = PERPLEXITY_LINE.match(stdout.rstrip("\n").splitlines()[-1])
    assert match, stdout
    target, tokens, base, clone, percent, direction = match.groups()
    assert target == "Tamsin" and int(tokens) == summary["perplexity_tokens"] > 0
    assert (float(base), float(clone)) == (round(summary["perplexity_base"], 2), round(summary["perplexity_clone"], 2))
    change = summary["perplexity_clone"] / summary["perplexity_base"] - 1
    assert int(percent) == round(abs(change) * 100) and direction == ("lower" if change < 0 else "higher")


def test_perplexities_are_the_ones_evaluate_clone_reports(compared, clone_root, tmp_path):
    _, summary, _ = compared
    cfg = compose(
        "evaluate_clone",
        [
            f"outputs_root={clone_root}",
            "eval.max_contexts=1",
            "sampling.max_new_tokens=2",
            "wandb.mode=disabled",
            "progress=false",
        ],
    )
    metrics = evaluate_clone(cfg, tmp_path / "eval", console=quiet())
    for ours, theirs in (("perplexity_base", "base"), ("perplexity_clone", "fine_tuned")):
        assert summary[ours] == pytest.approx(metrics["models"][theirs]["perplexity"]["perplexity"], rel=1e-6)
    assert summary["perplexity_tokens"] == metrics["models"]["base"]["perplexity"]["tokens"]


# --- bad input: one line, before any model loads ------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["mode=compare"], "messages: mode=compare needs one or more non-empty messages"),
        (["mode=compare", "messages=[' ']"], "messages: mode=compare needs"),
        (["mode=prompt", "prompt=hi", "messages=[hi]"], "messages: only mode=compare"),
        (["mode=chat", "messages=[hi]"], "messages: only mode=compare"),
        (["mode=compare", "messages=[hi]", "prompt=hey"], "prompt: mode=compare answers each of messages"),
        (["mode=compare", "messages=[hi]", "run=base"], "run=base: mode=compare puts the base model next to"),
        (["mode=compare", "messages=[hi]", "sampling.num_return_sequences=2"], "one reply per model and message"),
    ],
)
def test_bad_compare_values_are_refused_by_the_check(overrides, message):
    with pytest.raises(ChatcloneError, match=re.escape(message)):
        compose("inference", overrides).check()


def test_bad_compare_input_fails_before_any_model_loads(clone_root, tmp_path, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("chatclone.generation.running.load_clone", no_loading)
    cases = {
        "messages=[hi,'Orrin:']": r"messages\[1\] 'Orrin:': prompt is empty",
        f"run={_run_without_validation_targets(clone_root, tmp_path)}": "validation split has no target turns",
        f"run={tmp_path / 'nope'}": "no such run dir",
    }
    for i, (override, message) in enumerate(cases.items()):
        overrides = [override] if override.startswith("messages") else ["messages=[hi]", override]
        with pytest.raises(ChatcloneError, match=message):
            compare(clone_root, tmp_path / f"x{i}", overrides)
        assert not (tmp_path / f"x{i}" / runs.MANIFEST).exists()


def test_the_script_prints_one_line(clone_root, tmp_path):
    result = run_script("inference", "mode=compare", f"outputs_root={clone_root}", f"hydra.run.dir={tmp_path / 'cli'}")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: messages: mode=compare needs")


def _run_without_validation_targets(root: Path, tmp_path: Path) -> Path:
    """A copy of the train run over a copy of its dataset whose validation split labels nothing."""
    from datasets import load_from_disk

    source = Path(runs.read_manifest(root / "train" / "run")["inputs"][0])
    data = tmp_path / "tok"
    shutil.copytree(source, data, ignore=shutil.ignore_patterns("dataset"))
    dataset = load_from_disk(str(source / "dataset"))
    dataset["validation"] = dataset["validation"].map(lambda r: {"labels": [-100] * len(r["labels"])})
    dataset.save_to_disk(str(data / "dataset"))
    run = tmp_path / "train-run"
    shutil.copytree(root / "train" / "run", run)
    manifest = run / runs.MANIFEST
    manifest.write_text(manifest.read_text(encoding="utf-8").replace(str(source), str(data)), encoding="utf-8")
    return run
