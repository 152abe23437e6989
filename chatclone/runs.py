"""Run directories: each stage writes only inside its own, finishes with manifest.json, and the next
stage's `input=latest` finds the newest finished run of the stage before it."""

from __future__ import annotations

import json
import logging
import os
import platform
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

from chatclone import __version__
from chatclone.errors import ChatcloneError
from chatclone.threads import applied as applied_threads

MANIFEST = "manifest.json"
DEFAULT_OUTPUTS_ROOT = "outputs"  # every script's outputs_root default
log = logging.getLogger(__name__)


def start_run(run_dir: Path) -> Path:
    """Make sure the run dir exists and holds no finished run: nothing is ever overwritten."""
    run_dir = Path(run_dir)
    if (run_dir / MANIFEST).exists():
        raise ChatcloneError("this run dir already holds a finished run; refusing to overwrite it", run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def new_file(run_dir: Path, name: str) -> Path:
    """Path for a new output file in the run dir; an existing file is never replaced."""
    path = Path(run_dir) / name
    if path.exists():
        raise ChatcloneError("output file exists already; refusing to overwrite it", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def new_files(run_dir: Path, *names: str) -> Iterator[list[Path]]:
    """Temporary paths (`<name>.partial`) to write new output files to; they are renamed to their names
    only when the block succeeds, so a failure part-way never leaves a file that looks complete."""
    finals = [new_file(run_dir, name) for name in names]
    temps = [path.with_name(path.name + ".partial") for path in finals]
    try:
        for temp in temps:
            temp.unlink(missing_ok=True)  # left by a run that was killed
        yield temps
        for temp, final in zip(temps, finals):
            os.replace(temp, final)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


def replace_file(path: Path, text: str) -> Path:
    """Write `text` to `path` atomically (a temporary file beside it, then a rename): a reader sees the old file or
    the new one, never half of one, also when several processes (DDP ranks) write the same file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_json(run_dir: Path, name: str, data: object) -> Path:
    with new_files(run_dir, name) as (path,):
        with open(path, "x", encoding="utf-8") as f:
            json.dump(plain(data), f, indent=2, ensure_ascii=False)
            f.write("\n")
    return Path(run_dir) / name


def finish_run(run_dir: Path, stage: str, config: object, inputs: list[str], outputs: list[str], summary: dict) -> Path:
    """Write manifest.json, last and atomically: its presence means the run finished. The run's log file is closed
    first: a finished run dir never changes (later records still reach stderr)."""
    manifest = {
        "stage": stage,
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "chatclone_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "inputs": inputs,
        "outputs": outputs,
        "summary": summary,
        "config": config,
    }
    if (threads := applied_threads()) is not None:  # torch's CPU threads and OpenMP wait policy (chatclone.threads)
        manifest["threads"] = threads
    _close_log_files(Path(run_dir))
    return replace_file(Path(run_dir) / MANIFEST, json.dumps(plain(manifest), indent=2, ensure_ascii=False) + "\n")


def _close_log_files(run_dir: Path) -> None:
    """Detach and close the logging file handlers writing into `run_dir` (Hydra's `<script>.log`)."""
    root, folder = logging.getLogger(), run_dir.resolve()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).resolve().parent == folder:
            root.removeHandler(handler)
            handler.close()


def read_manifest(run_dir: Path) -> dict:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        raise ChatcloneError("not a finished chatclone run (no manifest.json): it failed or is still running", run_dir)
    return _load_manifest(path)


def _load_manifest(path: Path) -> dict:
    """The manifest as a dict; an unreadable one (truncated, hand-edited, not JSON) is one line naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ChatcloneError(f"unreadable manifest ({detail}): not a trustworthy finished run", path) from None
    if not isinstance(data, dict):
        raise ChatcloneError("unreadable manifest (not a JSON object): not a trustworthy finished run", path)
    return data


def resolve_input(value: str, outputs_root: Path, stage: str) -> Path:
    """`latest` -> the newest finished run of `stage`; otherwise a run dir, checked to be of `stage`."""
    if value == "latest":
        return latest_run(outputs_root, stage)
    run_dir = Path(value)
    if not run_dir.is_dir():
        raise ChatcloneError(f"no such run dir (expected a finished {stage} run)", run_dir)
    found = read_manifest(run_dir).get("stage")
    if found != stage:
        raise ChatcloneError(f"this is a {found} run, expected a {stage} run", run_dir)
    return run_dir


def latest_run(outputs_root: Path, stage: str) -> Path:
    """Newest finished run of a stage under outputs_root/stage (single runs and multirun jobs); a run with an
    unreadable manifest is skipped with a warning: it is not a trustworthy finished run."""
    root = Path(outputs_root) / stage
    finished = []
    for manifest in root.glob(f"**/{MANIFEST}"):
        try:
            data = _load_manifest(manifest)
        except ChatcloneError as error:
            log.warning("`latest` skips %s", error)
            continue
        if data.get("stage") == stage:
            finished.append((data.get("finished_at", ""), str(manifest.parent)))
    if not finished:
        raise ChatcloneError(f"no finished {stage} run found; run {stage}.py first or pass input=<run dir>", root)
    return Path(max(finished)[1])


def plain(value: object) -> object:
    """Dataclasses, enums and paths as JSON-friendly values."""
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def next_command(
    script: str,
    run_dir: Path,
    outputs_root: str | Path,
    stage: str,
    key: str = "input",
    extra: list[str] | tuple[str, ...] = (),
) -> str:
    """`python <script> ...`: the next stage, reading this finished run. Its `latest` default finds the run when
    the run lives under outputs_root/stage; otherwise the command names it (`key=<run dir>`)."""
    args = list(extra)
    if Path(run_dir).resolve().parent != (Path(outputs_root) / stage).resolve():
        args.insert(0, f"{key}={run_dir}")
    elif str(outputs_root) != DEFAULT_OUTPUTS_ROOT:
        args.insert(0, f"outputs_root={outputs_root}")
    return " ".join(["python", script, *(shlex.quote(a) for a in args)])
