"""What every script shares: find the Hydra run dir, run one stage, turn bad input into one line + exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from chatclone.errors import ChatcloneError


def run_stage(stage: Callable[..., object], cfg: object) -> object:
    """Call `stage(cfg, run_dir)` in the current Hydra run dir; ChatcloneError -> `error: ...`, exit 2."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        return stage(cfg, run_dir)
    except ChatcloneError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
