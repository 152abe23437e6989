"""What the bot posts: every message of a reply starts with the clone's name and a visible AI label
(`Tamsin (AI clone): ...`), and a long reply is split into messages within Discord's 2,000-character limit, at a
line break where one is near, else at a space, else anywhere. The label is read back from the channel's history,
so the bot knows which of its messages each clone wrote (chatclone.bot.context)."""

from __future__ import annotations

DISCORD_LIMIT = 2000  # characters in one Discord message
FORGET_NOTICE = "🧹 The AI clones forget this channel's conversation up to here."  # /forget's reply: a boundary


def label(name: str, ai_label: str) -> str:
    return f"{name} ({ai_label}):"


def reply_messages(name: str, text: str, ai_label: str, limit: int = DISCORD_LIMIT) -> list[str]:
    """The messages that post `text` as `name`, each labelled and at most `limit` characters; [] for no text."""
    head = label(name, ai_label) + " "
    room = limit - len(head)
    if room < 1:
        raise ValueError(f"the label {head!r} leaves no room in {limit} characters")
    return [head + chunk for chunk in split_text(text.strip(), room)]


def split_text(text: str, room: int) -> list[str]:
    """`text` in pieces of at most `room` characters, cut at the last line break in the second half of the room,
    else the last space there, else at `room`; blanks at the cuts are dropped, nothing else is lost."""
    pieces = []
    while len(text) > room:
        window = text[: room + 1]  # a cut right after the room's last character (at a blank) keeps it whole
        at = max(window.rfind("\n"), -1)
        if at < room // 2:
            at = window.rfind(" ")
        if at < room // 2:
            at = room
        pieces.append(text[:at].rstrip())
        text = text[at:].lstrip()
    return [p for p in [*pieces, text] if p]


def read_label(content: str, names: list[str], ai_label: str) -> tuple[str, str] | None:
    """(clone name, text) of a message the bot posted as one of `names`; None for any other text."""
    for name in sorted(names, key=len, reverse=True):
        head = label(name, ai_label)
        if content.startswith(head):
            return name, content[len(head) :].strip()
    return None


def is_forget_notice(content: str) -> bool:
    return content.strip() == FORGET_NOTICE
