"""Should a message get a reply, and from which clone. The bot is opt-in twice over: it speaks only where the config
lists (guilds, channels, DMs with `dms=true`), and there only when addressed:

- **by name**: the message starts with the clone's name and a comma, colon, `!` or `?` (`tamsin, are you coming?`,
  `Tamsin: ...`), is the name alone, starts with a greeting and the name (`hey tamsin ...`) or ends with a comma and
  the name (`are you coming, tamsin?`). A name inside a sentence (`I saw tamsin yesterday`) is not a call;
- **by a reply** to one of the bot's messages: the clone whose label that message carries answers;
- **by a mention** of the bot: the clone named in the message answers, else the first clone;
- **in a direct message** (with `dms=true`): every message is to the bot; the clone named answers, else the first.

`!forget` (or `/forget`) starts a channel's context afresh. Other bots, this bot itself and system messages are never
answered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chatclone.bot.records import ChannelMessage
from chatclone.bot.replies import read_label

FORGET_COMMAND = "!forget"
GREETINGS = ("hey", "hi", "hello", "yo", "oi", "ok", "okay", "so")
REPLY, FORGET = "reply", "forget"


@dataclass(frozen=True)
class Places:
    """Where the bot may speak. Empty guilds and channels and dms=false: nowhere."""

    guilds: frozenset[int] = frozenset()
    channels: frozenset[int] = frozenset()
    dms: bool = False

    @classmethod
    def of(cls, guilds: list, channels: list, dms: bool) -> "Places":
        return cls(frozenset(int(g) for g in guilds), frozenset(int(c) for c in channels), dms)

    def allow(self, guild_id: int | None, channel_id: int, parent_id: int | None = None) -> bool:
        if guild_id is None:
            return self.dms
        return (
            guild_id in self.guilds
            or channel_id in self.channels
            or (parent_id is not None and parent_id in self.channels)
        )

    def allows(self, m: ChannelMessage) -> bool:
        return self.allow(m.guild_id, m.channel_id, m.parent_id)


@dataclass(frozen=True)
class Addressed:
    action: str  # reply | forget
    clone: str | None  # who replies (None for forget)
    how: str  # name | reply | mention | dm | forget


class Addressing:
    """Decides for one bot account (`bot_id`) speaking as the clones `names` (the first is the default)."""

    def __init__(self, names: list[str], bot_id: int, ai_label: str, places: Places):
        self.names, self.bot_id, self.ai_label, self.places = list(names), bot_id, ai_label, places
        alternatives = "|".join(re.escape(n) for n in sorted(self.names, key=len, reverse=True))
        greeting = "|".join(GREETINGS)
        self._start = re.compile(rf"^@?({alternatives})(?:\s*[,:!?]|\s*$)", re.IGNORECASE)
        self._greeting = re.compile(rf"^(?:{greeting})\s+@?({alternatives})\b", re.IGNORECASE)
        self._end = re.compile(rf",\s*@?({alternatives})\s*[?!.]*\s*$", re.IGNORECASE)
        self._canonical = {n.casefold(): n for n in self.names}

    def decide(self, m: ChannelMessage) -> Addressed | None:
        """What to do about `m`: reply as a clone, forget the channel's context, or nothing (None)."""
        if m.author_id == self.bot_id or m.is_bot or m.system or not self.places.allows(m):
            return None
        text = m.content.strip()
        if text.casefold().split(" ")[0] == FORGET_COMMAND:
            return Addressed(FORGET, None, FORGET)
        named = self.called(text)
        if named is not None:
            return Addressed(REPLY, named, "name")
        if m.reply_to is not None and m.reply_to_author == self.bot_id:
            labelled = read_label(m.reply_to_content or "", self.names, self.ai_label)
            if labelled is not None:
                return Addressed(REPLY, labelled[0], "reply")
        if self.bot_id in m.mentions:
            return Addressed(REPLY, self.named_anywhere(text) or self.names[0], "mention")
        if m.is_dm:  # a direct message to the bot is addressed to it (dms=true was checked above)
            return Addressed(REPLY, self.named_anywhere(text) or self.names[0], "dm")
        return None

    def called(self, text: str) -> str | None:
        """The clone a message calls by name (see the module's docstring), or None."""
        text = re.sub(r"<@!?\d+>", "", text).strip()  # `<@bot> tamsin, ...`: the mention is not the call
        for pattern in (self._start, self._greeting, self._end):
            match = pattern.search(text)
            if match:
                return self._canonical[match.group(1).casefold()]
        return None

    def named_anywhere(self, text: str) -> str | None:
        """The first clone whose name appears as a word anywhere in `text` (a mention's tie-break)."""
        found = [
            (m.start(), n)
            for n in self.names
            for m in [re.search(rf"(?<!\w){re.escape(n)}(?!\w)", text, re.IGNORECASE)]
            if m
        ]
        return min(found)[1] if found else None

    def clone_named(self, name: str) -> str | None:
        """A clone by its name, any case (the `/as` command's argument)."""
        return self._canonical.get(name.strip().casefold())
