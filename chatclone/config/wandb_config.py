"""Schema of the `wandb` section of every script that reports to W&B (train, the generation scripts,
evaluate_clone). chatclone/wandb_runs.py applies it; conf/*.yaml give each default and its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional


class WandbMode(str, Enum):
    online = "online"
    offline = "offline"
    disabled = "disabled"


@dataclass
class WandbConfig:
    mode: WandbMode = WandbMode.offline
    project: str = "chatclone"
    entity: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    log_samples: bool = False  # chat text is never logged unless this is true
