"""What every script shares: find the Hydra run dir, run one stage, turn bad input into one line + exit 2."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from pathlib import Path

from chatclone.errors import ChatcloneError

HYDRA_SUBDIR = ".hydra"
# A secret given on the command line (serve.py api_key=...) never reaches the run dir's record.
SECRET = re.compile(r"""(\bapi_key\s*[:=]\s*)(?!null\s*$)('[^']*'|"[^"]*"|[^\s,\]]+)""", re.MULTILINE)


def launch(main: Callable[[], None], script: str) -> None:
    """A script's entry point: registers the config schemas, lets its free-text keys take plain text (no Hydra
    quoting: config.accept_plain_text rewrites sys.argv), then calls its `@hydra.main` function."""
    from chatclone import config

    config.accept_plain_text(script)
    main()


def run_stage(stage: str | Callable[..., object], cfg: object, **kwargs: object) -> object:
    """Call `stage(cfg, run_dir, **kwargs)` in the current Hydra run dir; ChatcloneError -> `error: ...`, exit 2.

    `stage` is a stage's name (`train`: chatclone.stages.train.train), imported only after the config's `threads`
    are applied (chatclone.threads): the OpenMP runtime reads its wait policy when torch loads it. A run dir that
    already holds a finished run is refused before anything is written into it."""
    from hydra.core.hydra_config import HydraConfig

    from chatclone import runs
    from chatclone.logs import silence_known_warnings
    from chatclone.modeling import keep_bitsandbytes_unloaded

    silence_known_warnings()
    keep_bitsandbytes_unloaded()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        runs.start_run(run_dir)
        save_hydra_record(run_dir, cfg)
        if hasattr(cfg, "threads"):
            from chatclone import threads

            threads.apply(cfg.threads, cfg.free_cores)  # both keys of config.threads.ThreadsConfig
        if isinstance(stage, str):
            stage = getattr(importlib.import_module(f"chatclone.stages.{stage}"), stage)
        return stage(cfg, run_dir, **kwargs)
    except ChatcloneError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def save_hydra_record(run_dir: Path, cfg: object) -> Path:
    """.hydra/config.yaml, hydra.yaml and overrides.yaml, as Hydra writes them (the sweep tables read
    overrides.yaml). The scripts set hydra.output_subdir=null so that Hydra does not write them itself: it would,
    before the run dir is checked, into a finished run too. Each file is replaced atomically (DDP ranks share
    the run dir and all write the same record). An `api_key` value is written as `<redacted>`."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from chatclone import runs

    hydra = HydraConfig.instance().cfg  # {"hydra": ...}, what Hydra saves as hydra.yaml
    record = {
        "config.yaml": OmegaConf.to_yaml(cfg),
        "hydra.yaml": OmegaConf.to_yaml(hydra),
        "overrides.yaml": OmegaConf.to_yaml(hydra.hydra.overrides.task),
    }
    folder = Path(run_dir) / HYDRA_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in record.items():
        runs.replace_file(folder / name, SECRET.sub(r"\1<redacted>", text))
    return folder


def run_report(report: Callable[..., object], *args: object) -> object:
    """Call a read-only command (`report(*args)`: no run dir, nothing written); ChatcloneError -> `error: ...`,
    exit 2."""
    from chatclone.logs import silence_known_warnings

    silence_known_warnings()
    try:
        return report(*args)
    except ChatcloneError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
