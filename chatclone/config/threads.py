"""The `threads` key of every script that runs a model (train, inference, generate_from_prompt,
simulate_conversation, evaluate_clone): how many CPU threads torch computes with. chatclone/threads.py applies it
(and says why `auto` decides what it does); conf/*.yaml give the reason for the default.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatclone.threads import AUTO, parse_threads


@dataclass
class ThreadsConfig:
    """Mixed into each schema that runs a model, so the key, its default and its check have one home."""
    threads: str = AUTO                  # auto | a whole number >= 1 (torch's CPU threads)

    def check_threads(self) -> None:
        parse_threads(self.threads)
