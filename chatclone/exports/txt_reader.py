"""DiscordChatExporter PlainText (TXT) exports.

Layout: a `=`*62 header block (Guild, Channel, ...), then per message `[date] username[ (pinned)]`,
the content (which may itself hold blank lines), a blank line, optional `{Attachments}`, `{Embed}`,
`{Stickers}`, `{Forwarded Message}` blocks each closed by a blank line, an optional `{Reactions}`
line, a final blank line; then a `=`*62 footer `Exported N message(s)`. Dates have minutes only and
no offset: the user's `timezone` and `date_order` say how to read them. The footer's count is a
checksum: a file whose header lines disagree with it is refused (see `_message_starts`).
"""

from __future__ import annotations

import re
from collections import Counter
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
    header = FileHeader.from_path(
        path, channel_id=None, is_dm=fields.get("Guild") == "Direct Messages", name=name or path.stem
    )
    starts = _message_starts(path, lines, body_start, body_end, expected, options)
    return header, _messages(lines, starts, body_end, header.channel_key)


def _preamble(path: Path, lines: list[str]) -> tuple[int, dict[str, str]]:
    if lines[0] != RULE:
        raise ChatcloneError(
            "unreadable TXT header: line 1 should be 62 '=' characters "
            "(is this a DiscordChatExporter PlainText export?)",
            path,
            line=1,
        )
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
        raise ChatcloneError(
            "truncated TXT export: no 'Exported N message(s)' footer. Re-export, "
            "or pass allow_truncated=true to keep the messages read",
            path,
            line=end,
        )
    options.warn(f"{path}: TXT export has no footer (truncated); keeping the messages read")
    return len(lines), None


def _message_starts(
    path: Path, lines: list[str], start: int, end: int, expected: int | None, options: ReadOptions
) -> list[tuple[int, float, str, bool]]:
    """(line index, timestamp, author, pinned) of every message header line.

    A header is a `[date] author` line where DCE puts one: after the blank line that ends the previous
    message, itself after the content's blank line or a `{Reactions}` line (or after the header rule).
    Anywhere else such a line is message text, and so is one whose date does not read, if the footer's
    count agrees; when it does not, the file is refused with the line at fault: text is never given to
    another author."""
    found = [(i, m) for i in range(start, end) if _header_place(lines, i, start) and (m := HEADER_RE.match(lines[i]))]
    parsed = [(i, m, dates.split_date(m["date"])) for i, m in found]
    order = options.date_order
    if order == "auto":
        order = dates.guess_order(d for _, _, d in parsed if d)
    tz = dates.zone(options.timezone)
    starts, unread = [], []
    for i, m, d in parsed:
        ts, problem = _timestamp(m["date"], d, order, tz)
        if problem is None:
            starts.append((i, ts, m["author"], bool(m["pinned"])))
        else:
            unread.append((i, problem))
    if expected is None or expected != len(starts):
        _check_count(path, starts, unread, expected, end)
    if not starts and end > start and any(lines[start:end]):
        raise ChatcloneError("no message header lines like '[3/27/2025 7:02 PM] username' found", path, line=start + 1)
    return starts


def _header_place(lines: list[str], i: int, start: int) -> bool:
    """Whether line i stands where DCE writes a message header (see `_message_starts`)."""
    if i == start:
        return True
    if lines[i - 1] != "":
        return False
    return i - 1 == start or lines[i - 2] == "" or (i - 3 >= start and lines[i - 3] == "{Reactions}")


def _timestamp(text: str, d: re.Match | None, order: str, tz) -> tuple[float | None, str | None]:
    """(timestamp, None), or (None, what is wrong with the header's date)."""
    try:
        ts = dates.unix_timestamp(text) if d is None else dates.to_timestamp(d, order, tz)
    except dates.OutOfRange as e:
        return None, f"date '{text}' {e}"
    except (ValueError, KeyError):
        return None, f"date '{text}' does not read as {order}; set date_order=mdy|dmy|ymd"
    return (ts, None) if ts is not None else (None, f"unreadable date '{text}'")


def _check_count(path: Path, starts: list, unread: list, expected: int | None, end: int) -> None:
    """Header lines and the footer's count disagree (or there is no footer): say which line is at fault."""
    if unread and (expected is None or len(starts) + len(unread) == expected):
        i, problem = unread[0]
        raise ChatcloneError(
            f"message header with an {problem}" if problem.startswith("unreadable") else f"message header: {problem}",
            path,
            line=i + 1,
        )
    if expected is None:
        return
    found = f"footer says {expected} messages but {len(starts)} message headers were found"
    if len(starts) < expected:
        raise ChatcloneError(
            f"{found}; a message header not where DiscordChatExporter writes one (after a blank line)?",
            path,
            line=end + 2,
        )
    suspect = _suspect(starts)
    if suspect is None:
        raise ChatcloneError(f"{found}; a line of message text that looks like a header?", path, line=end + 2)
    raise ChatcloneError(
        f"{found}; line {suspect + 1} looks like a header but may be text inside a message", path, line=suspect + 1
    )


def _suspect(starts: list) -> int | None:
    """The header most likely to be message text: its time is out of order with both neighbours (DCE
    writes messages oldest first), else it goes back in time, else its author speaks nowhere else."""
    times = [ts for _, ts, _, _ in starts]
    for k in range(1, len(starts)):
        after = times[k + 1] if k + 1 < len(times) else float("inf")
        if times[k - 1] <= after and not times[k - 1] <= times[k] <= after:
            return starts[k][0]
    back = next((starts[k][0] for k in range(1, len(starts)) if times[k] < times[k - 1]), None)
    if back is not None:
        return back
    authors = Counter(author for _, _, author, _ in starts)
    return next((i for i, _, author, _ in starts[1:] if authors[author] == 1), None)


def _messages(lines: list[str], starts: list, end: int, channel: str) -> Iterator[Message]:
    bounds = [s[0] for s in starts[1:]] + [end]
    for order, ((i, ts, author, _pinned), stop) in enumerate(zip(starts, bounds)):
        content, blocks = _split_chunk(lines[i + 1 : stop])
        forwarded = blocks.get("{Forwarded Message}")
        kind = Kind.FORWARD if forwarded is not None and not content else kind_from_text(content)
        yield Message(
            channel=channel,
            id=None,
            author_id=None,
            username=author,
            display=author,
            is_bot=False,
            kind=kind,
            ts=ts,
            content=content,
            attachments=len(blocks.get("{Attachments}", [])),
            stickers=len(blocks.get("{Stickers}", [])),
            forwarded=_forwarded_text(forwarded),
            order=order,
        )


def _split_chunk(chunk: list[str]) -> tuple[str, dict[str, list[str]]]:
    """Content and trailing blocks of one message's lines (everything after its header line)."""
    if chunk and chunk[-1] == "":
        chunk = chunk[:-1]
    blocks: dict[str, list[str]] = {}
    if len(chunk) >= 2 and chunk[-2] == "{Reactions}":
        blocks["{Reactions}"], chunk = [chunk[-1]], chunk[:-2]
    while chunk and chunk[-1] == "":
        chunk = chunk[:-1]
        marker = next((j for j in range(len(chunk) - 1, 0, -1) if chunk[j] in BLOCKS and chunk[j - 1] == ""), None)
        if marker is None:
            break
        blocks[chunk[marker]] = [line for line in chunk[marker + 1 :] if line]
        chunk = chunk[:marker]
    return "\n".join(chunk), blocks


def _forwarded_text(block: list[str] | None) -> str | None:
    if block is None:
        return None
    return "\n".join(line for line in block if not line.startswith("Originally sent:"))
