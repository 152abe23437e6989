"""DiscordChatExporter PlainText (TXT) exports.

Layout: a `=`*62 header block (Guild, Channel, ...), then per message `[date] username[ (pinned)]`,
the content (which may itself hold blank lines), a blank line, optional `{Attachments}`, `{Embed}`,
`{Stickers}`, `{Forwarded Message}` blocks each closed by a blank line, an optional `{Reactions}`
line, a final blank line; then a `=`*62 footer `Exported N message(s)`. Dates have minutes only and
no offset: the user's `timezone` and `date_order` say how to read them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from chatclone.errors import ChatcloneError
from chatclone.exports import dates
from chatclone.exports.records import Kind, Message, kind_from_text
from chatclone.exports.sources import FileHeader, ReadOptions
from chatclone.exports.text_files import read_text

RULE = "=" * 62
HEADER_RE = re.compile(r"^\[(?P<date>[^\]\n]+)\] (?P<author>\S.*?)(?P<pinned> \(pinned\))?$")
BLOCKS = ("{Attachments}", "{Embed}", "{Stickers}", "{Forwarded Message}")


def read_txt(path: Path, options: ReadOptions) -> tuple[FileHeader, Iterator[Message]]:
    lines = read_text(path).split("\n")
    body_start, fields = _preamble(path, lines)
    body_end, expected = _footer(path, lines, options)
    name = " / ".join(v for v in (fields.get("Guild"), fields.get("Channel")) if v)
    header = FileHeader.from_path(path, channel_id=None, is_dm=fields.get("Guild") == "Direct Messages",
                                  name=name or path.stem)
    starts = _message_starts(path, lines, body_start, body_end, options)
    if expected is not None and expected != len(starts):
        options.warn(f"{path}: footer says {expected} messages, {len(starts)} were found")
    return header, _messages(lines, starts, body_end, header.channel_key)


def _preamble(path: Path, lines: list[str]) -> tuple[int, dict[str, str]]:
    if lines[0] != RULE:
        raise ChatcloneError("unreadable TXT header: line 1 should be 62 '=' characters "
                             "(is this a DiscordChatExporter PlainText export?)", path, line=1)
    for i in range(1, min(len(lines), 12)):
        if lines[i] == RULE:
            pairs = (line.split(": ", 1) for line in lines[1:i] if ": " in line)
            return i + 1, {k: v for k, v in pairs}
    raise ChatcloneError("unreadable TXT header: no closing line of 62 '='", path, line=1)


def _footer(path: Path, lines: list[str], options: ReadOptions) -> tuple[int, int | None]:
    """Index where the footer starts and the message count it states."""
    end = len(lines)
    while end > 0 and lines[end - 1] == "":
        end -= 1
    if end >= 3 and lines[end - 1] == RULE and lines[end - 3] == RULE and lines[end - 2].startswith("Exported "):
        digits = re.sub(r"\D", "", lines[end - 2])
        return end - 3, int(digits) if digits else None
    if not options.allow_truncated:
        raise ChatcloneError("truncated TXT export: no 'Exported N message(s)' footer. Re-export, "
                             "or pass allow_truncated=true to keep the messages read", path, line=end)
    options.warn(f"{path}: TXT export has no footer (truncated); keeping the messages read")
    return len(lines), None


def _message_starts(path: Path, lines: list[str], start: int, end: int,
                    options: ReadOptions) -> list[tuple[int, float, str, bool]]:
    """(line index, timestamp, author, pinned) of every message header line."""
    candidates = [(i, m) for i in range(start, end) if (i == start or lines[i - 1] == "")
                  and (m := HEADER_RE.match(lines[i]))]
    parsed = [(i, m, dates.split_date(m["date"])) for i, m in candidates]
    order = options.date_order
    if order == "auto":
        order = dates.guess_order(d for _, _, d in parsed if d)
    tz = dates.zone(options.timezone)
    starts = []
    for i, m, d in parsed:
        ts = dates.unix_timestamp(m["date"]) if d is None else _timestamp(path, i, d, order, tz)
        if ts is not None:
            starts.append((i, ts, m["author"], bool(m["pinned"])))
    if not starts and end > start and any(lines[start:end]):
        raise ChatcloneError("no message header lines like '[3/27/2025 7:02 PM] username' found", path,
                             line=start + 1)
    return starts


def _timestamp(path: Path, i: int, d: re.Match, order: str, tz) -> float:
    try:
        return dates.to_timestamp(d, order, tz)
    except (ValueError, KeyError):
        raise ChatcloneError(f"date '{d.string}' does not read as {order}; set date_order=mdy|dmy|ymd",
                             path, line=i + 1) from None


def _messages(lines: list[str], starts: list, end: int, channel: str) -> Iterator[Message]:
    bounds = [s[0] for s in starts[1:]] + [end]
    for order, ((i, ts, author, _pinned), stop) in enumerate(zip(starts, bounds)):
        content, blocks = _split_chunk(lines[i + 1:stop])
        forwarded = blocks.get("{Forwarded Message}")
        kind = Kind.FORWARD if forwarded is not None and not content else kind_from_text(content)
        yield Message(channel=channel, id=None, author_id=None, username=author, display=author,
                      is_bot=False, kind=kind, ts=ts, content=content,
                      attachments=len(blocks.get("{Attachments}", [])),
                      stickers=len(blocks.get("{Stickers}", [])),
                      forwarded=_forwarded_text(forwarded), order=order)


def _split_chunk(chunk: list[str]) -> tuple[str, dict[str, list[str]]]:
    """Content and trailing blocks of one message's lines (everything after its header line)."""
    if chunk and chunk[-1] == "":
        chunk = chunk[:-1]
    blocks: dict[str, list[str]] = {}
    if len(chunk) >= 2 and chunk[-2] == "{Reactions}":
        blocks["{Reactions}"], chunk = [chunk[-1]], chunk[:-2]
    while chunk and chunk[-1] == "":
        chunk = chunk[:-1]
        marker = next((j for j in range(len(chunk) - 1, 0, -1)
                       if chunk[j] in BLOCKS and chunk[j - 1] == ""), None)
        if marker is None:
            break
        blocks[chunk[marker]] = [line for line in chunk[marker + 1:] if line]
        chunk = chunk[:marker]
    return "\n".join(chunk), blocks


def _forwarded_text(block: list[str] | None) -> str | None:
    if block is None:
        return None
    return "\n".join(line for line in block if not line.startswith("Originally sent:"))
