"""Who speaks: the author table of an export set, and the target, chosen by user id or username."""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass, field

from chatclone.errors import ChatcloneError
from chatclone.exports.records import ChannelExport, Message


@dataclass
class Author:
    ids: set[str] = field(default_factory=set)
    usernames: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    messages: int = 0
    is_bot: bool = False


@dataclass
class Target:
    query: str
    ids: set[str]
    usernames: set[str]  # lower-case
    names: set[str]

    def __call__(self, m: Message) -> bool:
        if m.author_id is not None and self.ids:
            return m.author_id in self.ids
        return m.username.lower() in self.usernames


def author_table(channels: list[ChannelExport]) -> dict[str, Author]:
    """Authors keyed by user id (or username where the format has none), with message counts."""
    table: dict[str, Author] = {}
    for channel in channels:
        counts = Counter((m.author_id, m.username, m.display, m.is_bot) for m in channel.messages)
        for (author_id, username, display, is_bot), n in counts.items():
            author = table.setdefault(author_id or username.lower(), Author())
            author.ids.update([author_id] if author_id else [])
            author.usernames.add(username)
            author.names.add(display)
            author.messages += n
            author.is_bot |= is_bot
    return _merge_same_username(table)


def _merge_same_username(table: dict[str, Author]) -> dict[str, Author]:
    """TXT authors have no id: fold them into the id'd author with the same username."""
    by_username = {u.lower(): key for key, a in table.items() if a.ids for u in a.usernames}
    for key in [k for k, a in table.items() if not a.ids]:
        owner = by_username.get(key)
        if owner is not None:
            extra = table.pop(key)
            table[owner].messages += extra.messages
            table[owner].names |= extra.names
    return table


def resolve_target(query: str | None, table: dict[str, Author]) -> Target:
    """The target's identities; a clear error listing the top authors when it is missing or silent."""
    if query is None or str(query).strip() == "":
        raise ChatcloneError("no target given: pass target=<user id or username>. " + top_authors(table))
    wanted = _strip_legacy(str(query).strip().lower())
    for author in table.values():
        if wanted in author.ids or wanted in {_strip_legacy(u.lower()) for u in author.usernames}:
            return Target(
                query=str(query),
                ids=set(author.ids),
                names=set(author.names),
                usernames={u.lower() for u in author.usernames},
            )
    raise ChatcloneError(
        f"target '{query}' never speaks in these exports (match is by user id or "
        f"username, never by nickname).{did_you_mean(str(query).strip(), table)} " + top_authors(table)
    )


def did_you_mean(query: str, table: dict[str, Author]) -> str:
    """` Did you mean target=tamsin.vale (display name Tamsin)?` for a display name, or a username or id one typo
    away; "" when nothing is close."""
    wanted = query.lower()
    authors = sorted(table.values(), key=lambda a: -a.messages)
    named = [a for a in authors if wanted in {n.lower() for n in a.names}]
    if not named:
        handles = {u.lower(): a for a in authors for u in [*a.usernames, *a.ids]}
        named = [handles[h] for h in difflib.get_close_matches(wanted, list(handles), n=3, cutoff=0.75)]
    if not named:
        return ""
    unique = [a for i, a in enumerate(named) if all(a is not b for b in named[:i])]
    options = [
        f"target={_handle(a)} ({'display name ' + ', '.join(sorted(a.names)) if a.names else 'no name'})"
        for a in unique
    ]
    return f" Did you mean {' or '.join(options)}?"


def _handle(author: Author) -> str:
    """What to pass as target: the username (unique), else the id."""
    return min(author.usernames) if author.usernames else min(author.ids)


def _strip_legacy(username: str) -> str:
    """`name#1234` and `name` name the same legacy account."""
    head, _, disc = username.rpartition("#")
    return head if head and disc.isdigit() and len(disc) == 4 else username


def top_authors(table: dict[str, Author], n: int = 10) -> str:
    ranked = sorted(table.values(), key=lambda a: -a.messages)[:n]
    rows = [
        f"{'/'.join(sorted(a.ids)) or '(no id in TXT)'} {'/'.join(sorted(a.usernames))} "
        f"({', '.join(sorted(a.names))}{', bot' if a.is_bot else ''}): {a.messages} messages"
        for a in ranked
    ]
    return "Top authors: " + "; ".join(rows) if rows else "The exports hold no messages."
