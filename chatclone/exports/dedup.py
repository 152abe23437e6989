"""Each distinct message once: duplicates within a file, between copies and parts of a channel, and
between a renamed copy (no `[channel id]` in its name) and the channel it is a copy of.

Two messages are the same message when
- both have ids (JSON, HTML): the ids are equal (Discord snowflakes are unique);
- otherwise (CSV, TXT carry no ids): their *content key* is equal: (username, UTC minute, content).
  Every format names the username (`name`, or `name#1234` for legacy accounts), the content is the
  same text in all of them, and the minute is the finest time TXT has (JSON and CSV are truncated to it,
  as DCE truncates for TXT). Keys are matched as a multiset: a file holding "lol" twice in one minute
  matches two copies, never one, so two genuinely different messages are never merged. Within one file
  messages without ids are never merged (TXT's minutes make equal keys legitimate there).

A renamed copy is known only by its path, so its channel is found by its messages: it joins the channel
that holds most of its sampled messages when at least half the messages of the smaller of the two match;
its messages not in that channel are added to it (nothing lost), the rest counted as duplicates.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from chatclone.exports.records import ChannelExport, Message

SAMPLE = 2000  # messages of a renamed copy looked up to find its channel: one pass over all messages


def content_key(m: Message) -> tuple:
    """What identifies a message across formats without ids (see the module docstring)."""
    return m.username, int(m.ts // 60), m.content


@dataclass
class Duplicates:
    """Messages dropped as copies of one already taken, by where the copy was."""

    within_files: int = 0  # the same message id twice in one file
    across_files: int = 0  # in another file of the same channel (a re-export, an overlapping part)
    renamed_copies: int = 0  # in a file without a channel id that holds a channel read from elsewhere

    @property
    def total(self) -> int:
        return self.within_files + self.across_files + self.renamed_copies


@dataclass
class ChannelMerge:
    """One channel's messages taken file by file, each distinct message once."""

    duplicates: Duplicates
    messages: list[Message] = field(default_factory=list)
    ids: dict[int, int] = field(default_factory=dict)  # message id -> number of the file it came from
    keys: Counter = field(default_factory=Counter)  # content key -> most copies in any one file
    files: int = 0

    def add(self, messages: list[Message], more_files: bool) -> int:
        """Take one file's messages; how many it had. `more_files`: others follow (or came before)."""
        self.files += 1
        if not more_files and not self.ids:
            ids = {m.id for m in messages}
            if len(ids) == len(messages) or ids == {None}:  # the usual case, at set speed
                self.messages.extend(messages)
                return len(messages)
        number, ids, known, here = self.files, self.ids, self.keys, Counter()
        count = 0
        for count, m in enumerate(messages, start=1):
            if m.id is not None:
                first = ids.get(m.id)
                if first is not None:
                    if first == number:
                        self.duplicates.within_files += 1
                    else:
                        self.duplicates.across_files += 1
                    continue
                ids[m.id] = number
            elif more_files:
                key = content_key(m)
                here[key] += 1
                if here[key] <= known[key]:
                    self.duplicates.across_files += 1
                    continue
            self.messages.append(m)
        for key, n in here.items():
            if n > known[key]:
                known[key] = n
        return count


@dataclass
class Merged:
    """A renamed copy that joined the channel it holds messages of."""

    copy: ChannelExport
    into: ChannelExport
    duplicates: int  # its messages already in that channel
    added: int  # its messages that were not, now added to it


def merge_renamed_copies(
    channels: list[ChannelExport], copies: list[ChannelExport], duplicates: Duplicates
) -> tuple[list[ChannelExport], list[Merged], list[str]]:
    """Channels without a known id (`copies`, richest format first) that repeat another channel join it.

    Also returns warnings for copies that repeat a channel's authors and texts at other times (a TXT or
    HTML export read in the wrong time zone): those stay apart, so say so loudly.
    """
    if not copies:
        return channels, [], []
    hits = _sample_hits(channels, copies, _match_key)
    copy_keys, standing = {c.key for c in copies}, {c.key: c for c in channels}
    merges, apart = [], []
    for rank, copy in enumerate(copies):
        earlier = {c.key for c in copies[:rank]}
        eligible = {key for key in standing if key not in copy_keys or key in earlier}
        found = _best(copy, hits, eligible, standing, content_key)
        if found is None:
            apart.append((copy, eligible))
            continue
        matched, into = found
        added = [m for m, ts in zip(copy.messages, matched) if ts is None]
        for m in added:
            m.channel = into.key
        into.messages = sorted(into.messages + added, key=lambda m: m.ts)
        into.files += copy.files
        duplicates.renamed_copies += len(matched) - len(added)
        merges.append(Merged(copy, into, len(matched) - len(added), len(added)))
        del standing[copy.key]
    warnings = _shifted_copies(channels, apart, standing) if apart else []
    return [c for c in channels if c.key in standing], merges, warnings


def _shifted_copies(channels: list[ChannelExport], apart: list[tuple], standing: dict) -> list[str]:
    """Warnings for unmatched copies whose messages match a channel's by author and text alone."""
    hits = _sample_hits(channels, [copy for copy, _ in apart], _text_key)
    warnings = []
    for copy, eligible in apart:
        found = _best(copy, hits, eligible & set(standing), standing, _text_key, least=3)
        if found is None:
            continue
        matched, other = found
        offsets = Counter(round((m.ts - ts) / 60) for m, ts in zip(copy.messages, matched) if ts is not None)
        minutes = offsets.most_common(1)[0][0]
        warnings.append(
            f"{copy.files[0]}: {sum(ts is not None for ts in matched)} of its {len(matched)} messages have the "
            f"author and text of messages of {other.name} ({other.files[0]}) but times {minutes / 60:+g} h off; "
            "both are kept. If it is a copy, remove it or read it in the exporting machine's zone "
            "(reading.timezone: TXT and HTML times carry no offset)"
        )
    return warnings


def _best(copy: ChannelExport, hits: Counter, eligible: set, standing: dict, key, least: int = 1):
    """(matches, channel) of the eligible channel holding most of the copy (of its 3 with most sample
    hits), or None when none holds at least half the messages of the smaller of the two."""
    candidates = sorted(
        ((n, other) for (of, other), n in hits.items() if of == copy.key and other in eligible), reverse=True
    )[:3]
    best = max(
        ((_matches(copy, standing[other], key), standing[other]) for _, other in candidates),
        key=lambda found: _count(found[0]),
        default=None,
    )
    if best is None:
        return None
    matched = _count(best[0])
    if matched >= least and 2 * matched >= min(len(copy.messages), len(best[1].messages)):
        return best
    return None


def _count(matched: list) -> int:
    return sum(ts is not None for ts in matched)


def _text_key(m: Message) -> tuple:
    return m.username, m.content


def _match_key(m: Message) -> tuple:
    return ("id", m.id) if m.id is not None else content_key(m)


def _sample_hits(channels: list[ChannelExport], copies: list[ChannelExport], key) -> Counter:
    """(copy key, channel key) -> how many sampled messages of the copy the channel holds; one pass."""
    wanted: dict[tuple, list[str]] = {}
    for copy in copies:
        for m in copy.messages[:: max(1, len(copy.messages) // SAMPLE)]:
            wanted.setdefault(key(m), []).append(copy.key)

    def keys_of(m: Message) -> tuple:
        if key is not _match_key:
            return (key(m),)
        return (("id", m.id), content_key(m)) if m.id is not None else (content_key(m),)

    hits: Counter = Counter()
    for channel in channels:
        for m in channel.messages:
            for k in keys_of(m):
                for copy_key in wanted.get(k, ()):
                    if copy_key != channel.key:
                        hits[copy_key, channel.key] += 1
    return hits


def _matches(copy: ChannelExport, other: ChannelExport, key) -> list[float | None]:
    """For each message of the copy, the time of the message of `other` it is, or None: by id where both
    have ids (exact matching only), else by `key`, each message of `other` matching at most one."""
    by_id = {m.id: m.ts for m in other.messages if m.id is not None} if key is content_key else {}
    pool: dict[tuple, list[float]] = {}
    for m in reversed(other.messages):
        pool.setdefault(key(m), []).append(m.ts)  # reversed: pop() takes the earliest first
    matched: list[float | None] = []
    for m in copy.messages:
        if m.id is not None and by_id:
            matched.append(by_id.get(m.id))
            continue
        stack = pool.get(key(m))
        matched.append(stack.pop() if stack else None)
    return matched
