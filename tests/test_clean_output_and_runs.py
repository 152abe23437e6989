"""Clean stdout on every machine, bitsandbytes only for qlora, untouchable finished runs, unreadable manifests,
and config values checked before anything loads.

The scripts run as subprocesses with a `sitecustomize.py` hook on PYTHONPATH that, once Hydra has configured the
job's logging, logs the warning bitsandbytes logs at import on a CPU with AVX512-BF16 (whatever this CPU is), plus
an unknown third-party log record and warning, and at exit lists the modules the run imported.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import subprocess
import warnings
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from rich.console import Console

import chatclone.config  # noqa: F401  (registers the config schemas)
from chatclone import logs, runs
from chatclone.config.train import DTYPES, SCHEDULERS
from chatclone.errors import ChatcloneError
from tests.conftest import SHARED, TARGET_USERNAME, compose, make_config, run_script, train_tiny_run

BNB_LOGGER = "bitsandbytes.backends.cpu.ops"
BNB_WARNING = (
    "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already "
    "`pip install kernels` and the kernels >= 0.11.1"
)
UNKNOWN_RECORD, UNKNOWN_WARNING = "unknown third-party log record", "unknown third-party warning"
LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+\]", re.MULTILINE)  # the log format's timestamp

SITECUSTOMIZE = f"""
import atexit, logging, logging.config, os, sys, warnings

_configure = logging.config.DictConfigurator.configure


def configure(self):
    _configure(self)
    if "file" in self.config.get("handlers", {{}}):  # a job's logging (Hydra's own has no file handler)
        logging.getLogger({BNB_LOGGER!r}).warning({BNB_WARNING!r}, "No module named 'kernels'")
        logging.getLogger("somelib.io").warning({UNKNOWN_RECORD!r})
        warnings.warn({UNKNOWN_WARNING!r}, UserWarning)


logging.config.DictConfigurator.configure = configure


@atexit.register
def _imported_modules():
    with open(os.environ["CHATCLONE_TEST_MODULES"], "w", encoding="utf-8") as f:
        f.write("\\n".join(sorted(name for name, module in sys.modules.items() if module is not None)))
"""


@pytest.fixture(scope="session")
def hook_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hook")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return folder


def hooked(hook: Path, modules: Path) -> dict[str, str]:
    """The environment that runs a script with `hook`'s sitecustomize.py, listing its imported modules in `modules`."""
    return {
        "PYTHONPATH": os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p),
        "CHATCLONE_TEST_MODULES": str(modules),
    }


def imported(modules: Path) -> set[str]:
    return set(modules.read_text(encoding="utf-8").split("\n"))


def assert_routed(result: subprocess.CompletedProcess, log_file: Path) -> None:
    """The unknown record reaches stderr and the run's log, the unknown warning stderr, neither stdout; the
    bitsandbytes record (logged by the hook with the unknown one, so it did fire) goes nowhere."""
    log = log_file.read_text(encoding="utf-8")
    assert UNKNOWN_RECORD in result.stderr and UNKNOWN_RECORD in log and UNKNOWN_WARNING in result.stderr
    assert UNKNOWN_RECORD not in result.stdout and UNKNOWN_WARNING not in result.stdout
    for text in (result.stdout, result.stderr, log):
        assert "gemm_4bit_forward" not in text
    assert not LOG_LINE.search(result.stdout), result.stdout


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one `error: ...` line of a refused run (whatever else libraries print on stderr), never a traceback."""
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    return line


@pytest.fixture(scope="session")
def lora_root(dm_tokenized: Path, tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """outputs_root holding one finished train run (a LoRA adapter on the tiny Llama)."""
    root = tmp_path_factory.mktemp("lora-outputs")
    train_tiny_run(root, dm_tokenized / "tokenize_dataset" / "run", tiny_llama)
    return root


# --- stdout carries only what the script is for ---------------------------------------------------------------


def test_piped_chat_prints_exactly_the_replies(lora_root, hook_dir, tmp_path):
    run_dir, modules = tmp_path / "run", tmp_path / "modules.txt"
    result = run_script(
        "inference",
        f"outputs_root={lora_root}",
        "sampling.max_new_tokens=6",
        "seed=0",
        f"hydra.run.dir={run_dir}",
        env=hooked(hook_dir, modules),
        stdin="hey\nsaturday?\n",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    turns = [json.loads(line) for line in (run_dir / "conversation.jsonl").read_text(encoding="utf-8").splitlines()]
    replies = [t for t in turns if t["by"] == "model"]
    assert len(replies) == 2

    # exactly the conversation as shown: each piped line echoed, each reply (a max_new_tokens cut marked with …)
    def shown(turn: dict) -> str:
        text = turn["text"] + ("…" if turn.get("stopped") == "max_new_tokens" else "")
        return f"{turn['speaker']}: " + text.replace("\n", "\n" + " " * (len(turn["speaker"]) + 2)) + "\n"

    assert result.stdout == "".join(shown(t) for t in turns)
    assert_routed(result, run_dir / "inference.log")
    names = imported(modules)
    assert "peft" in names and not any(n.split(".")[0] == "bitsandbytes" for n in names)


def test_a_stage_warning_goes_to_stderr_once_and_to_the_log_never_stdout(tmp_path):
    """process_messages on a TXT export with reading.timezone unset warns that its dates were read as UTC."""
    run_dir = tmp_path / "run"
    result = run_script(
        "process_messages",
        f"input={SHARED / 'Direct Messages - Orrin [1118608583297251434].txt'}",
        f"target={TARGET_USERNAME}",
        "progress=false",
        f"hydra.run.dir={run_dir}",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "UTC offset" not in result.stdout and "warning:" not in result.stdout
    assert [line.startswith("warning: ") for line in result.stderr.splitlines() if "UTC offset" in line] == [True]
    log = (run_dir / "process_messages.log").read_text(encoding="utf-8")
    assert "UTC offset" in log
    assert "next: python tokenize_dataset.py" in result.stdout  # the summary stays on stdout
    # ...and is in the run's log too, once (what the user saw), without being shown twice on stderr
    for shown in ("messages kept", "next: python tokenize_dataset.py"):
        assert log.count(shown) == 1 and shown not in result.stderr, shown
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert max(files, key=lambda p: p.stat().st_mtime_ns).name == "manifest.json"  # the log closed before it


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_train_imports_bitsandbytes_only_for_qlora(method, dm_tokenized, tiny_llama, hook_dir, tmp_path):
    run_dir, modules = tmp_path / "run", tmp_path / "modules.txt"
    result = run_script(
        "train",
        f"outputs_root={tmp_path}",
        f"input={dm_tokenized / 'tokenize_dataset' / 'run'}",
        f"model.name_or_path={tiny_llama}",
        f"method={method}",
        "trainer.max_steps=1",
        "wandb.mode=disabled",
        "trainer.save_strategy=no",
        f"hydra.run.dir={run_dir}",
        env=hooked(hook_dir, modules),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert runs.read_manifest(run_dir)["summary"]["method"] == method
    assert f"trained smollm2 with {method}" in result.stdout  # the stage's summary stays on stdout
    assert_routed(result, run_dir / "train.log")
    names = imported(modules)
    assert "peft" in names and "transformers.trainer" in names
    assert ("bitsandbytes" in names) is (method == "qlora")


def test_a_logged_console_records_each_line_it_shows_unstyled(caplog):
    shown = io.StringIO()
    console = Console(file=logs.LoggedStream(shown), force_terminal=True, width=40)
    with caplog.at_level(logging.INFO, logger=logs.CONSOLE_LOGGER):
        console.print("[bold red]two[/] lines\nof text")
        console.file.write("a partial line")
        assert [r.getMessage() for r in caplog.records] == ["two lines", "of text"]
        console.file.write(" ends here\n\n")
    assert "\x1b[" in shown.getvalue()  # the terminal gets the styling, the log does not
    assert [r.getMessage() for r in caplog.records] == ["two lines", "of text", "a partial line ends here"]
    assert all(getattr(r, logs.SHOWN) for r in caplog.records)  # so stderr's handler does not print them again


def test_known_harmless_records_are_dropped_and_others_pass():
    harmless = logs.KnownHarmless()

    def record(name: str, msg: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, ("No module named 'kernels'",), None)

    assert not harmless.filter(record(BNB_LOGGER, BNB_WARNING))
    assert harmless.filter(record(BNB_LOGGER, "some other bitsandbytes problem: %s"))
    assert harmless.filter(record("somelib.io", BNB_WARNING))  # the same text from another logger is news


def test_known_harmless_warnings_are_ignored_and_others_logged():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    py_warnings = logging.getLogger("py.warnings")
    py_warnings.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.resetwarnings()
            logs.silence_known_warnings()
            warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)
            warnings.warn(
                "`torch.jit.script_method` is deprecated. Please switch to `torch.compile`.", DeprecationWarning
            )
            warnings.warn("`is_gradient_checkpointing` is deprecated", UserWarning)  # another category: news
            warnings.warn(UNKNOWN_WARNING, FutureWarning)
    finally:
        logging.captureWarnings(False)
        py_warnings.removeHandler(handler)
    logged = stream.getvalue()
    assert "torch.jit" not in logged and "FutureWarning: `is_gradient" not in logged
    assert "UserWarning: `is_gradient_checkpointing` is deprecated" in logged and UNKNOWN_WARNING in logged


# --- a finished run dir never changes ---------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under folder (files and folders) with its content's hash."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in folder.rglob("*")
    }


def test_a_refused_run_leaves_the_finished_run_byte_identical(tmp_path):
    run_dir = tmp_path / "run"
    args = [f"input={SHARED}", f"target={TARGET_USERNAME}", "progress=false", f"hydra.run.dir={run_dir}"]
    first = run_script("process_messages", *args, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert OmegaConf.load(run_dir / ".hydra" / "overrides.yaml") == args[:-1]  # as Hydra: no hydra.* overrides
    assert OmegaConf.load(run_dir / ".hydra" / "config.yaml").target == TARGET_USERNAME
    assert OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.job.name == "process_messages"
    before = snapshot(run_dir)
    second = run_script("process_messages", *args, "split=random", "cleaning=minimal", timeout=300)
    assert second.returncode == 2 and second.stdout == ""
    assert second.stderr.splitlines() == [
        f"error: {run_dir}: this run dir already holds a finished run; refusing to overwrite it"
    ]
    assert snapshot(run_dir) == before


@pytest.mark.slow
def test_multirun_jobs_keep_their_hydra_record_and_hydra_logs_on_stderr(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_script(
        "process_messages",
        "-m",
        f"input={SHARED}",
        f"target={TARGET_USERNAME}",
        "progress=false",
        "split=temporal,random",
        f"hydra.sweep.dir={sweep}",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for job, split in (("0", "temporal"), ("1", "random")):
        assert f"split={split}" in OmegaConf.load(sweep / job / ".hydra" / "overrides.yaml")
        assert runs.read_manifest(sweep / job)["config"]["split"]["strategy"] == split
    assert "[HYDRA]" in result.stderr and "[HYDRA]" not in result.stdout


# --- unreadable manifests ---------------------------------------------------------------------------------------


def finished_run(root: Path, name: str) -> Path:
    run_dir = runs.start_run(root / "process_messages" / name)
    runs.finish_run(run_dir, "process_messages", make_config([SHARED]), inputs=[str(SHARED)], outputs=[], summary={})
    return run_dir


@pytest.mark.parametrize("content", ['{"stage": "process_messages", "finished', "[1, 2]", "\udcff"])
def test_latest_skips_an_unreadable_manifest_with_a_warning(content, tmp_path, caplog):
    good = finished_run(tmp_path, "good")
    bad = tmp_path / "process_messages" / "z-bad"
    bad.mkdir()
    (bad / runs.MANIFEST).write_bytes(content.encode("utf-8", "surrogateescape"))
    with caplog.at_level(logging.WARNING, logger="chatclone.runs"):
        assert runs.resolve_input("latest", tmp_path, "process_messages") == good
    [warning] = caplog.records
    assert str(bad / runs.MANIFEST) in warning.getMessage() and "unreadable manifest" in warning.getMessage()
    with pytest.raises(ChatcloneError) as info:
        runs.resolve_input(str(bad), tmp_path, "process_messages")
    message = str(info.value)
    assert message.startswith(f"{bad / runs.MANIFEST}: unreadable manifest") and "\n" not in message


def test_an_unreadable_manifest_through_a_script_is_one_line(tmp_path):
    bad = tmp_path / "process_messages" / "bad"
    bad.mkdir(parents=True)
    (bad / runs.MANIFEST).write_text('{"stage": "process_mess', encoding="utf-8")
    explicit = run_script(
        "tokenize_dataset",
        f"outputs_root={tmp_path}",
        f"input={bad}",
        f"hydra.run.dir={tmp_path / 'run1'}",
        timeout=300,
    )
    assert error_line(explicit).startswith(f"error: {bad / runs.MANIFEST}: unreadable manifest")
    latest = run_script(
        "tokenize_dataset", f"outputs_root={tmp_path}", f"hydra.run.dir={tmp_path / 'run2'}", timeout=300
    )
    assert "no finished process_messages run found" in error_line(latest)
    [warning] = [line for line in latest.stderr.splitlines() if "[chatclone.runs][WARNING]" in line]
    assert f"`latest` skips {bad / runs.MANIFEST}: unreadable manifest" in warning


# --- config values checked before anything loads ----------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, key, hint",
    [
        (["trainer.lr_scheduler=cosin"], "trainer.lr_scheduler", "linear, cosine, cosine_with_restarts"),
        (["trainer.lr_scheduler=cosine_with_min_lr"], "trainer.lr_scheduler", "use one of"),
        (["trainer.lr_scheduler=reduce_lr_on_plateau"], "trainer.lr_scheduler", "trainer.eval_strategy"),
        (["trainer.warmup_ratio=-0.1"], "trainer.warmup_ratio", "[0, 1)"),
        (["trainer.warmup_ratio=1.5"], "trainer.warmup_ratio", "[0, 1)"),
        (["trainer.warmup_ratio=1"], "trainer.warmup_ratio", "[0, 1)"),  # transformers would read it as 1 step
        (["trainer.logging_steps=0"], "trainer.logging_steps", "at least 1"),
        (["trainer.eval_strategy=steps", "trainer.eval_steps=0"], "trainer.eval_steps", "at least 1"),
        (["trainer.save_strategy=steps", "trainer.save_steps=-5"], "trainer.save_steps", "at least 1"),
        (["trainer.eval_batch_size=0"], "trainer.eval_batch_size", "at least 1"),
        (["trainer.weight_decay=-0.01"], "trainer.weight_decay", ">= 0"),
        (["preset=regularized", "trainer.early_stopping_patience=0"], "trainer.early_stopping_patience", "at least 1"),
        (["trainer.seed=-1"], "trainer.seed", "[0, 2**32)"),
        (["trainer.num_workers=-1"], "trainer.num_workers", ">= 0"),
        (["method.alpha=0"], "method.alpha", "> 0"),
        (["method=qlora", "method.compute_dtype=float8"], "method.compute_dtype", "float32, bfloat16, float16"),
        (["method=qlora", "method.quant_type=int4"], "method.quant_type", "nf4, fp4"),
        (["export.merge=true", "export.merged_dtype=fp16"], "export.merged_dtype", "float32, bfloat16, float16, auto"),
    ],
)
def test_train_values_that_fail_late_are_checked_first(overrides, key, hint):
    with pytest.raises(ChatcloneError) as info:
        compose("train", overrides).check()
    assert str(info.value).startswith(f"{key}: ") and hint in str(info.value)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_offered_scheduler_is_one_transformers_runs(scheduler):
    from transformers import SchedulerType

    assert SchedulerType(scheduler).value == scheduler
    eval_on = ["trainer.eval_strategy=epoch"] if scheduler == "reduce_lr_on_plateau" else []
    compose("train", [f"trainer.lr_scheduler={scheduler}", "trainer.warmup_ratio=0", *eval_on]).check()


def test_offered_dtypes_are_torch_dtypes():
    import torch

    assert all(isinstance(getattr(torch, name), torch.dtype) for name in DTYPES)


def test_a_bad_train_value_fails_in_seconds_with_one_line(tmp_path):
    result = run_script(
        "train", f"outputs_root={tmp_path}", "trainer.lr_scheduler=cosin", f"hydra.run.dir={tmp_path / 'run'}"
    )
    # named before the dataset is looked for (there is none under outputs_root)
    assert error_line(result).startswith("error: trainer.lr_scheduler: is 'cosin'; use one of linear, cosine")


@pytest.mark.parametrize(
    "cleaning, key",
    [
        ({"max_chars": -1}, "cleaning.max_chars"),
        ({"max_chars": 0}, "cleaning.max_chars"),
        ({"min_chars": 50, "max_chars": 10}, "cleaning.min_chars"),
        ({"min_chars": -1}, "cleaning.min_chars"),
    ],
)
def test_cleaning_length_checks_name_the_wrong_key(cleaning, key):
    with pytest.raises(ChatcloneError) as info:
        make_config([SHARED], cleaning=cleaning).check()
    assert str(info.value).startswith(f"{key}=")
