"""The `threads` and `free_cores` keys of every script that runs a model (train, inference, generate_from_prompt,
simulate_conversation, evaluate_clone, serve, discord_bot, export_model): how many CPU threads torch computes with,
and how many cores `auto` leaves to the process's other threads. chatclone/threads.py applies it
(and says why `auto` decides what it does); conf/*.yaml give the reason for the default.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatclone.errors import ChatcloneError

AUTO = "auto"


def parse_threads(value: object) -> int | None:
    """None for `auto`, else the forced count; anything else: one line naming the key."""
    text = str(value).strip()
    if text == AUTO:
        return None
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise ChatcloneError(
        f"threads={value}: use auto (the cores other processes leave free) or a whole number "
        ">= 1 (that many CPU threads)"
    )


def parse_free_cores(value: object) -> int:
    """The cores `threads=auto` keeps free (a whole number >= 0); anything else: one line naming the key."""
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    raise ChatcloneError(
        f"free_cores={value}: use a whole number >= 0 (cores threads=auto leaves to the process's own other "
        "threads, such as serve.py's event loop)"
    )


@dataclass
class ThreadsConfig:
    """Mixed into each schema that runs a model, so the key, its default and its check have one home."""

    threads: str = AUTO  # auto | a whole number >= 1 (torch's CPU threads)
    free_cores: int = 0  # threads=auto leaves this many of the usable cores to the process's other threads

    def check_threads(self) -> None:
        parse_threads(self.threads)
        parse_free_cores(self.free_cores)
