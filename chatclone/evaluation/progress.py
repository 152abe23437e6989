"""Progress of the generation pass, the slow part of an evaluation (minutes on a CPU): a rich bar (replies done /
total, elapsed, time left) on the console it is given, and a plain line in the run's log every tenth of the way.

    with ReplyProgress("fine-tuned", total=48, console=Console(stderr=True)) as progress:
        generation_pass(..., progress=progress)     # calls progress(done) after each reply

console=None: no bar, the log lines only (`progress=false`).
"""

from __future__ import annotations

import logging
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

LOG = logging.getLogger("chatclone.evaluation")
LOG_STEPS = 10  # log lines per pass (at most; every reply when there are fewer)


class ReplyProgress:
    def __init__(self, label: str, total: int, console: Console | None):
        self.label, self.total = label, total
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("replies"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=console is None,
        )
        self.task = self.bar.add_task(f"{label}: generating", total=total)
        self.started = time.perf_counter()
        self.logged = 0

    def __enter__(self) -> ReplyProgress:
        self.bar.start()
        LOG.info("%s: generating %d replies", self.label, self.total)
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def __call__(self, done: int) -> None:
        self.bar.update(self.task, completed=done)
        if done * LOG_STEPS // self.total > self.logged * LOG_STEPS // self.total or done == self.total:
            self.logged = done
            LOG.info(self.line(done, time.perf_counter() - self.started))

    def line(self, done: int, elapsed: float) -> str:
        """'fine-tuned: 12/48 replies, 30 s elapsed, about 90 s left': the plain log line."""
        left = f"about {elapsed / done * (self.total - done):.0f} s left" if done < self.total else "done"
        return f"{self.label}: {done}/{self.total} replies, {elapsed:.0f} s elapsed, {left}"
