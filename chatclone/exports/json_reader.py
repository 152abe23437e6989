"""DiscordChatExporter JSON, streamed: a multi-GB export never loads whole.

DCE writes JSON with a fixed 2-space layout, so each message object sits between a line
`    {` and a line `    }`. We cut those objects out of fixed-size blocks and hand each one to
orjson (about twice as fast as an event parser). Files with any other layout (re-saved,
minified) go through ijson's streaming parser instead.

Both paths build messages with the same `_to_message`, which checks the type of every field it uses
with class tests cheap enough for the hot loop; a message with a field DCE would not write (null
content, a numeric author name, a date without offset or outside the years 1-9999) is refused with one
line naming the file, line, position and message id, worked out by `message_problem` only then.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import ijson
import orjson

from chatclone.errors import ChatcloneError
from chatclone.exports import dates
from chatclone.exports.records import Kind, Message
from chatclone.exports.sources import FileHeader, ReadOptions

BLOCK = 1 << 24
MESSAGES_KEY = b'"messages"'
START, END = b"\n    {", b"\n    }"
PERSON_KINDS = {"Default", "Reply", "19"}  # "19": replies before DCE 2.26
COMMAND_KINDS = {"20", "23"}


def read_json(path: Path, options: ReadOptions) -> tuple[FileHeader, Iterator[Message]]:
    """Header of one JSON export and a lazy iterator over its messages."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    header_doc = _parse_header(path, head)
    header = _file_header(path, header_doc)
    reader = _fixed_layout_messages if _has_fixed_layout(head) else _ijson_messages
    return header, reader(path, options, header.channel_key)


def _parse_header(path: Path, head: bytes) -> dict:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        raise ChatcloneError("empty file, expected a DiscordChatExporter JSON export", path)
    if not text.startswith(b"{"):
        raise ChatcloneError("not a DiscordChatExporter JSON export (does not start with '{')", path, line=1)
    cut = text.find(MESSAGES_KEY)
    if cut < 0:
        raise ChatcloneError('not a DiscordChatExporter JSON export (no "messages" array near the top)', path)
    prefix = text[:cut].rstrip().rstrip(b",") + b"}"
    try:
        doc = orjson.loads(prefix)
    except orjson.JSONDecodeError as e:
        raise ChatcloneError(f"unreadable JSON header: {e}", path) from None
    if not isinstance(doc.get("channel"), dict):
        raise ChatcloneError('not a DiscordChatExporter JSON export (no "channel" object)', path)
    return doc


def _file_header(path: Path, doc: dict) -> FileHeader:
    """Channel id, name and kind from the header; a missing or null id is taken from the file name's `[id]`."""
    channel, guild = doc["channel"], doc.get("guild")
    if guild is None:
        guild = {}
    elif not isinstance(guild, dict):
        raise ChatcloneError(f'unreadable JSON header: "guild" is {_describe(guild)}, expected an object', path)
    text = {
        f"{part}.{key}": _header_text(path, holder, part, key)
        for part, holder, keys in (
            ("guild", guild, ("id", "name")),
            ("channel", channel, ("id", "name", "type", "category")),
        )
        for key in keys
    }
    channel_id = text["channel.id"]
    if channel_id is not None and not (channel_id.isascii() and channel_id.isdigit()):
        raise ChatcloneError(
            f'unreadable JSON header: "channel.id" is {_describe(channel_id)}, expected a string of digits', path
        )
    is_dm = text["guild.id"] == "0" or (text["channel.type"] or "").startswith("Direct")
    header = FileHeader.from_path(path, channel_id=channel_id, is_dm=is_dm, name="")
    if header.channel_id is None:
        raise ChatcloneError(
            'unreadable JSON header: "channel.id" is null or missing and the file name has no '
            "[channel id] (DiscordChatExporter names files '... [1118608583297251434].json')",
            path,
        )
    parts = [text["guild.name"] or "?", text["channel.category"], text["channel.name"] or header.channel_id]
    header.name = " / ".join(p for p in parts if p)
    return header


def _header_text(path: Path, holder: dict, part: str, key: str) -> str | None:
    """A header field that DCE writes as a string or null; anything else is an error naming it."""
    value = holder.get(key)
    if value is not None and not isinstance(value, str):
        raise ChatcloneError(
            f'unreadable JSON header: "{part}.{key}" is {_describe(value)}, expected a string or null', path
        )
    return value


def _has_fixed_layout(head: bytes) -> bool:
    at = head.find(MESSAGES_KEY)
    rest = head[at + len(MESSAGES_KEY) :].lstrip(b": ")
    return rest.startswith(b"[\n    {") or rest.startswith(b"[\r\n    {") or rest.startswith(b"[]")


def _fixed_layout_messages(path: Path, options: ReadOptions, channel_key: str) -> Iterator[Message]:
    """Messages cut out of blocks as `    {` ... `    }` objects (the hot loop: kept flat on purpose)."""
    index, loads, authors = 0, orjson.loads, {}
    with open(path, "rb") as f:
        buf = f.read(BLOCK)
        options.read_bytes(len(buf))
        pos = buf.find(MESSAGES_KEY)
        consumed = 0  # bytes of the file before buf
        while True:
            start = buf.find(START, pos)
            end = buf.find(END, start + 1) if start >= 0 else -1
            if end < 0:
                more = f.read(BLOCK)
                options.read_bytes(len(more))
                if more:
                    consumed += pos
                    buf, pos = buf[pos:] + more, 0
                    continue
                _check_tail(path, buf[pos:], lambda: _line_at(path, consumed + pos), index, start >= 0, options)
                return
            pos = end + len(END)
            try:
                message = _to_message(loads(buf[start + 1 : pos]), channel_key, index, authors)
            except orjson.JSONDecodeError as e:
                raise ChatcloneError(
                    f"malformed JSON in a message: {e.msg}",
                    path,
                    line=_line_at(path, consumed + start + 1),
                    record=index + 1,
                ) from None
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
                raise _not_a_message(path, loads(buf[start + 1 : pos]), e, index) from None
            yield message
            index += 1


def _line_at(path: Path, offset: int) -> int:
    """Line number of a byte offset: counted only when an error needs it, never on the hot path."""
    line = 1
    with open(path, "rb") as f:
        while offset > 0:
            block = f.read(min(BLOCK, offset))
            if not block:
                break
            line += block.count(b"\n")
            offset -= len(block)
    return line


def _message_line(path: Path, index: int) -> int | None:
    """Line where message number `index` (0-based) starts, for errors found after parsing."""
    seen = -1
    with open(path, "rb") as f:
        data = f.read()
    pos = data.find(MESSAGES_KEY)
    while seen < index:
        pos = data.find(START, pos + 1)
        if pos < 0:
            return None
        seen += 1
    return data.count(b"\n", 0, pos + 1) + 1


def _check_tail(path: Path, tail: bytes, line_of_tail, count: int, open_object: bool, options: ReadOptions) -> None:
    """After the last message the file must close the array and give messageCount."""
    finished = b"]" in tail and b'"messageCount"' in tail and tail.rstrip().endswith(b"}")
    if finished and not open_object:
        return
    line = line_of_tail()
    if options.allow_truncated:
        options.warn(f"{path}:{line}: export is truncated after {count} messages; keeping those")
        return
    raise ChatcloneError(
        f"truncated export: it stops after {count} complete messages (no closing ']' and messageCount). "
        "Re-export, or pass allow_truncated=true to keep the messages read",
        path,
        line=line,
    )


def _ijson_messages(path: Path, options: ReadOptions, channel_key: str) -> Iterator[Message]:
    """Messages of a file in any other JSON layout, through ijson's streaming parser."""
    index, authors = 0, {}
    with open(path, "rb") as f:
        try:
            for index, item in enumerate(ijson.items(f, "messages.item", use_float=True), start=1):
                try:
                    yield _to_message(item, channel_key, index - 1, authors)
                except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
                    raise _not_a_message(path, item, e, index - 1) from None
        except ijson.IncompleteJSONError as e:
            if "premature EOF" in str(e) or "incomplete" in str(e).lower():
                _check_tail(path, b"", lambda: None, index, True, options)
                return
            reason = (str(e).strip().splitlines() or ["?"])[0]  # yajl adds the text and a caret below
            raise ChatcloneError(f"malformed JSON after message {index}: {reason}", path) from None


def _not_a_message(path: Path, d, error: Exception, index: int) -> ChatcloneError:
    """The one-line error for a message the reader cannot take: which field is wrong, and the message id.
    Such a message is refused, never skipped: like malformed JSON it means the file is not what DCE wrote,
    and a skipped message would silently change the conversation around it."""
    problem = message_problem(d)
    if problem is None:
        problem = (
            "a value DiscordChatExporter does not write"
            if isinstance(error, _Invalid)
            else (f"{type(error).__name__}: {error}")
        )
    raw_id = d.get("id") if isinstance(d, dict) else None
    known = f" (message id {raw_id})" if isinstance(raw_id, str) and raw_id.isdigit() else ""
    return ChatcloneError(
        f"not a DiscordChatExporter message: {problem}{known}", path, line=_message_line(path, index), record=index + 1
    )


DEFAULT, SYSTEM, COMMAND_RESPONSE, FORWARD = Kind.DEFAULT, Kind.SYSTEM, Kind.COMMAND_RESPONSE, Kind.FORWARD
fromisoformat = datetime.fromisoformat
MIN_TS, MAX_TS = dates.MIN_TS, dates.MAX_TS


class _Invalid(ValueError):
    """A field of the wrong type or out of range: `message_problem` says which, off the hot path."""


def _to_message(d: dict, channel_key: str, order: int, authors: dict[tuple, tuple]) -> Message:
    a = d["author"]
    key = (a["id"], a["name"], a.get("nickname"))  # webhooks share one id under many names
    author = authors.get(key)
    if author is None:
        author = authors[key] = _author(a)
    raw_id, content, bot = d["id"], d["content"], a.get("isBot", False)
    attachments, stickers = d.get("attachments"), d.get("stickers")
    # The type checks the hot path can afford (class and identity tests; fromisoformat and int check the
    # rest); on failure `message_problem` says what is wrong.
    if (
        str is not type(raw_id)
        or str is not type(content)
        or (bot is not False and bot is not True)
        or (list is not type(attachments) and attachments is not None)
        or (list is not type(stickers) and stickers is not None)
    ):
        raise _Invalid
    when = fromisoformat(d["timestamp"])
    ts = when.timestamp()
    if not MIN_TS <= ts <= MAX_TS or when.tzinfo is None:
        raise _Invalid
    kind, reply_to, forwarded = _kind(d)
    return Message(
        channel_key,
        int(raw_id),
        author[0],
        author[1],
        author[2],
        bot,
        kind,
        ts,
        content,
        reply_to,
        len(attachments) if attachments else 0,
        len(stickers) if stickers else 0,
        forwarded,
        order,
    )


def _kind(d: dict) -> tuple[Kind, int | None, str | None]:
    """(kind, replied-to message id, forwarded text) of a message dict."""
    kind_name, ref = d["type"], d.get("reference")
    if kind_name == "Default" and ref is None:
        return DEFAULT, None, None
    forwarded = d.get("forwardedMessage")
    if (
        str is not type(kind_name)
        or (ref is not None and (dict is not type(ref) or not _is_text(ref.get("type"))))
        or (forwarded is not None and dict is not type(forwarded))
    ):
        raise _Invalid
    if forwarded is not None or (ref and ref.get("type") == "Forward"):
        text = (forwarded or {}).get("content")
        if text is not None and str is not type(text):
            raise _Invalid
        return FORWARD, None, text
    if kind_name in PERSON_KINDS:
        target = ref.get("messageId") if ref and kind_name != "Default" else None
        if target is not None and str is not type(target):
            raise _Invalid
        return DEFAULT, int(target) if target else None, None
    return (COMMAND_RESPONSE if kind_name in COMMAND_KINDS else SYSTEM), None, None


def _is_text(value) -> bool:
    return value is None or str is type(value)


def _author(a: dict) -> tuple:
    """(user id, username, display name) of an author object, checked once per distinct author (the
    discriminator too: a later copy of the same id, name and nickname is not read again)."""
    name, nickname, disc = a["name"], a.get("nickname"), a.get("discriminator") or "0000"
    if (
        str is not type(a["id"])
        or not a["id"].isdigit()
        or str is not type(name)
        or not name
        or (nickname is not None and str is not type(nickname))
        or str is not type(disc)
    ):
        raise _Invalid
    username = name if disc in ("0000", "0") else f"{name}#{disc}"
    return (a["id"], username, nickname or name)


# What `message_problem` checks, in order: (dotted field, required, expected type(s), what DCE writes).
SNOWFLAKE, DATE = "snowflake", "date"
FIELDS = (
    ("id", True, SNOWFLAKE),
    ("type", True, str),
    ("timestamp", True, DATE),
    ("content", True, str),
    ("author", True, dict),
    ("author.id", True, SNOWFLAKE),
    ("author.name", True, str),
    ("author.discriminator", False, str),
    ("author.nickname", False, str),
    ("author.isBot", False, bool),
    ("attachments", False, list),
    ("stickers", False, list),
    ("reference", False, dict),
    ("reference.type", False, str),
    ("reference.messageId", False, SNOWFLAKE),
    ("forwardedMessage", False, dict),
    ("forwardedMessage.content", False, str),
)
EXPECTED = {
    str: "a string",
    dict: "an object",
    list: "an array",
    bool: "true or false",
    SNOWFLAKE: "a string of digits (a snowflake id)",
    DATE: "a date like 2025-03-27T19:02:14.381+01:00",
}


def message_problem(d) -> str | None:
    """What is wrong with a message object, in words (None if nothing the reader checks)."""
    if not isinstance(d, dict):
        return f"a message is {_describe(d)}, expected an object"
    for name, required, expected in FIELDS:
        parent, _, leaf = name.rpartition(".")
        holder = d.get(parent) if parent else d
        if not isinstance(holder, dict):
            continue  # the parent's own check reports it
        if leaf not in holder:
            if required:
                return f'"{name}" is missing'
            continue
        value = holder[leaf]
        if value is None and not required and expected is not bool:
            continue
        if not _fits(value, expected):
            return f'"{name}" is {_describe(value)}, expected {EXPECTED[expected]}'
        if expected is DATE:
            try:
                dates.iso_timestamp(value)
            except dates.BadDate as e:
                return f'"{name}" {_describe(value)} {e}'
    if not d["author"]["name"]:
        return '"author.name" is empty'
    return None


def _fits(value, expected) -> bool:
    if expected is SNOWFLAKE:
        return type(value) is str and value.isascii() and value.isdigit()
    return type(value) is (str if expected is DATE else expected)


def _describe(value) -> str:
    """A field's value in words: its JSON type, or the string itself, cut short."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "...")
    return "an object" if isinstance(value, dict) else "an array"
