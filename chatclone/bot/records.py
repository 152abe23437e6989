"""The plain message the Discord glue (chatclone.bot.client) makes of a discord.Message: everything the policy
layer needs, nothing of discord.py, so the policy is tested on real message data without a network."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ChannelMessage:
    """One Discord message as the bot sees it. `content` is Discord's raw text (`<@id>`, `<:emoji:id>` tokens);
    times are UTC epoch seconds."""

    id: int
    channel_id: int
    author_id: int
    username: str  # the account name (`tamsin.vale`)
    display: str  # what the channel shows: server nickname, global name, else the username
    content: str
    ts: float
    is_bot: bool = False  # a bot account or a webhook (this bot included)
    system: bool = False  # pins, joins, thread notices, calls, ...
    guild_id: int | None = None  # None in a DM
    parent_id: int | None = None  # a thread's parent channel
    reply_to: int | None = None  # the id of the message this one replies to
    reply_to_author: int | None = None
    reply_to_content: str | None = None  # the replied-to message's text, when Discord sent it along
    mentions: dict[int, str] = field(default_factory=dict)  # user id -> display name of every user mentioned
    attachments: int = 0
    stickers: int = 0

    @property
    def is_dm(self) -> bool:
        return self.guild_id is None
