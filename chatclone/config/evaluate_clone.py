"""Schema of evaluate_clone.py's config: which clone to score (as the generation scripts find and load one), how it
samples (the `sampling` group), and the `eval` section (shared with train.py's `eval.fidelity`).

Defaults and the reasons for them live in conf/evaluate_clone.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from chatclone.config.fidelity import FidelityConfig
from chatclone.config.generation import BASE_RUN, CloneStageConfig
from chatclone.config.wandb_config import WandbConfig
from chatclone.errors import ChatcloneError


@dataclass
class EvaluateCloneConfig(CloneStageConfig):
    seed: Optional[int] = 0  # the base and the clone draw from the same random stream
    wandb: WandbConfig = field(default_factory=WandbConfig)  # offline
    eval: FidelityConfig = field(default_factory=FidelityConfig)
    progress: bool = True  # the bar while replies are generated (on stderr); the log line is always written

    def check(self) -> None:
        super().check()
        self.eval.check()
        self.check_one_sequence("evaluate_clone scores one reply per validation context")
        if self.run == BASE_RUN:
            raise ChatcloneError(
                "run=base: evaluate_clone always scores the base model next to the clone; name the "
                "train run (run=latest or run=outputs/train/<run>)"
            )
