"""What the bot does, without discord.py: who is addressed, whether a reply may go out, and the labelled messages
that answer a channel's history. chatclone.bot.client only translates discord.py's objects to and from this."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from chatclone.bot.addressing import Addressed, Addressing, Places
from chatclone.bot.backends import Backend
from chatclone.bot.clones import BotClone
from chatclone.bot.context import Context, channel_context
from chatclone.bot.limits import Limits
from chatclone.bot.records import ChannelMessage
from chatclone.bot.replies import reply_messages
from chatclone.config.discord_bot import DiscordBotConfig

CONVERSATIONS = "conversations.jsonl"  # written only with log_conversations=true
log = logging.getLogger("chatclone.bot")


class CloneService:
    """The bot's policy for one bot account speaking as `clones` through `backend`."""

    def __init__(
        self,
        cfg: DiscordBotConfig,
        clones: list[BotClone],
        backend: Backend | None,
        run_dir: Path,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg, self.backend, self.run_dir = cfg, backend, Path(run_dir)
        self.clones = {c.name: c for c in clones}
        self.names = list(self.clones)
        self.places = Places.of(cfg.guilds, cfg.channels, cfg.dms)
        self.limits = Limits(cfg.cooldown_s, cfg.replies_per_minute, clock)
        self.counts: Counter[str] = Counter()
        self.bot_id: int | None = None
        self.addressing: Addressing | None = None

    def connected(self, bot_id: int) -> None:
        """Once logged in: the bot account's own user id (its messages are read back as the clones')."""
        self.bot_id = bot_id
        self.addressing = Addressing(self.names, bot_id, self.cfg.ai_label, self.places)

    def decide(self, message: ChannelMessage) -> Addressed | None:
        return self.addressing.decide(message) if self.addressing is not None else None

    def admit(self, channel_id: int) -> str | None:
        """None if a reply may go out in the channel now (and it is counted); else why not (cooldown | cap)."""
        refused = self.limits.take(channel_id)
        if refused:
            self.counts[f"refused_{refused}"] += 1
        return refused

    def context(self, clone: str, history: list[ChannelMessage]) -> Context:
        return channel_context(history, clone, self.names, self.bot_id or 0, self.clones[clone].rules)

    def answer(self, clone: str, history: list[ChannelMessage]) -> list[str]:
        """The labelled messages (each within Discord's limit) that answer `history` as `clone`; [] when the
        conversation is empty after cleaning or the clone had nothing to say. Blocking: the glue runs it in a
        worker thread, one at a time."""
        context = self.context(clone, history)
        text = self.backend.reply(self.clones[clone], context) if context.messages else ""
        self.counts["replies" if text else "no_reply"] += 1
        if self.cfg.log_conversations:
            self._log(clone, history[-1], context, text)
        return reply_messages(clone, text, self.cfg.ai_label) if text else []

    def _log(self, clone: str, answered: ChannelMessage, context: Context, text: str) -> None:
        """log_conversations=true only: what was answered, the context given and the reply, one JSON line each."""
        row = {
            "time": time.time(),
            "clone": clone,
            "channel_id": answered.channel_id,
            "message_id": answered.id,
            "context": context.messages,
            "reply": text,
        }
        with open(self.run_dir / CONVERSATIONS, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def summary(self) -> dict:
        return {
            "clones": {c.name: {"id": c.id, "run": str(c.spec.run_dir)} for c in self.clones.values()},
            "backend": self.cfg.backend,
            "counts": dict(sorted(self.counts.items())),
            "log_conversations": self.cfg.log_conversations,
        }
