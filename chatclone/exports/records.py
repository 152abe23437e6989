"""The normalised message every reader yields, whatever the export format."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum


class Kind(str, Enum):
    """What a message is, as far as training cares."""

    DEFAULT = "default"  # a person's own words (Default or Reply in DCE terms)
    SYSTEM = "system"  # pins, calls, joins, thread notices, group changes, numeric kinds
    COMMAND_RESPONSE = "command_response"  # a bot's answer to a slash or context-menu command
    FORWARD = "forward"  # a forwarded message: somebody else's words


@dataclass(slots=True)
class Message:
    """One message, normalised. Times are UTC epoch seconds."""

    channel: str  # channel key: the channel id, or the file path when no id is known
    id: int | None  # message snowflake (JSON, HTML); None for CSV/TXT
    author_id: str | None  # user id; None in TXT
    username: str  # `name`, or `name#1234` for legacy accounts and bots
    display: str  # server nickname / global display name; the username when unknown
    is_bot: bool
    kind: Kind
    ts: float
    content: str
    reply_to: int | None = None  # id of the replied-to message (JSON, HTML)
    attachments: int = 0  # number of attachments
    stickers: int = 0  # number of stickers
    forwarded: str | None = None  # text of a forwarded original (not the author's own words)
    order: int = 0  # position in its file, to break timestamp ties (TXT has minutes only)


@dataclass
class ChannelExport:
    """All messages of one channel, merged from every part and copy that was read."""

    key: str
    name: str  # human name, e.g. "Lantern Hollow / general" or "Direct Messages / Orrin"
    is_dm: bool
    format: str  # json, csv, txt or html: the format the messages were taken from
    files: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)


# CSV and TXT carry no message type: DCE's fallback sentences for system messages (2.38+) tell them apart.
SYSTEM_TEXT = re.compile(
    r"^(?:Pinned a message\.|Started a call that lasted [\d,.\u00a0 ]+ minutes?\.|Joined the server\.|"
    r"Started a thread\.|Left the group\.|Added .+ to the group\.|Added a recipient\.|"
    r"Removed .+ from the group\.|Removed a recipient\.|Changed the channel name: .*|Changed the channel icon\.)$"
)


def kind_from_text(content: str) -> Kind:
    """Kind of a message from a format without types (CSV, TXT): system sentences, else a person's words."""
    return Kind.SYSTEM if content and SYSTEM_TEXT.match(content) else Kind.DEFAULT
