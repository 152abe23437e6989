"""How often the bot may speak: a cooldown per channel, a cap on replies per minute across all channels, and one
generation at a time (a bounded queue; a message that finds it full gets the "busy" reaction instead of a reply).

These sit on top of discord.py's own handling of Discord's rate limits (HTTP 429s are waited out and retried by
discord.py), which is left as it is: these limits keep a clone from flooding a channel, Discord's keep the bot
account within the API's rules.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

COOLDOWN, CAP = "cooldown", "cap"
WINDOW_S = 60.0


class Limits:
    """Per-channel cooldown and a global per-minute cap, on an injected clock (seconds, monotonic)."""

    def __init__(self, cooldown_s: float, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.cooldown_s, self.per_minute, self.clock = cooldown_s, per_minute, clock
        self.last: dict[int, float] = {}
        self.recent: deque[float] = deque()

    def take(self, channel_id: int) -> str | None:
        """None, and the reply is counted, if one may go out in `channel_id` now; else why not (cooldown | cap)."""
        now = self.clock()
        while self.recent and now - self.recent[0] >= WINDOW_S:
            self.recent.popleft()
        last = self.last.get(channel_id)
        if last is not None and now - last < self.cooldown_s:
            return COOLDOWN
        if len(self.recent) >= self.per_minute:
            return CAP
        self.last[channel_id] = now
        self.recent.append(now)
        return None

    def wait(self, channel_id: int) -> float:
        """Seconds until `channel_id`'s cooldown ends (0 when it has)."""
        last = self.last.get(channel_id)
        return 0.0 if last is None else max(0.0, self.cooldown_s - (self.clock() - last))


class OneAtATime:
    """Jobs run one after another by a single worker (one generation at a time); at most `size` wait."""

    def __init__(self, size: int):
        self.queue: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue(maxsize=size)
        self.running = 0
        self.failed = 0

    def offer(self, job: Callable[[], Awaitable[None]]) -> bool:
        """Queue `job`; False (nothing queued) when the queue is full."""
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            return False
        return True

    async def work(self, on_error: Callable[[BaseException], None] | None = None) -> None:
        """Run queued jobs forever, one at a time; a failing job is reported to `on_error` and the next one runs."""
        while True:
            job = await self.queue.get()
            self.running += 1
            try:
                await job()
            except Exception as error:  # noqa: BLE001  (one bad reply must not stop the bot)
                self.failed += 1
                if on_error is not None:
                    on_error(error)
            finally:
                self.running -= 1
                self.queue.task_done()
