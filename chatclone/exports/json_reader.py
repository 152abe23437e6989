"""DiscordChatExporter JSON, streamed: a multi-GB export never loads whole.

DCE writes JSON with a fixed 2-space layout, so each message object sits between a line
`    {` and a line `    }`. We cut those objects out of fixed-size blocks and hand each one to
orjson (about twice as fast as an event parser). Files with any other layout (re-saved,
minified) go through ijson's streaming parser instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import ijson
import orjson

from chatclone.errors import ChatcloneError
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
        raise ChatcloneError("not a DiscordChatExporter JSON export (no \"messages\" array near the top)", path)
    prefix = text[:cut].rstrip().rstrip(b",") + b"}"
    try:
        doc = orjson.loads(prefix)
    except orjson.JSONDecodeError as e:
        raise ChatcloneError(f"unreadable JSON header: {e}", path) from None
    if not isinstance(doc.get("channel"), dict) or "id" not in doc["channel"]:
        raise ChatcloneError("not a DiscordChatExporter JSON export (no \"channel\" object with an \"id\")", path)
    return doc


def _file_header(path: Path, doc: dict) -> FileHeader:
    channel, guild = doc["channel"], doc.get("guild") or {}
    is_dm = guild.get("id") == "0" or str(channel.get("type", "")).startswith("Direct")
    parts = [guild.get("name") or "?", channel.get("category"), channel.get("name") or channel["id"]]
    return FileHeader.from_path(path, channel_id=str(channel["id"]), is_dm=is_dm,
                                name=" / ".join(p for p in parts if p))


def _has_fixed_layout(head: bytes) -> bool:
    at = head.find(MESSAGES_KEY)
    rest = head[at + len(MESSAGES_KEY):].lstrip(b": ")
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
                message = _to_message(loads(buf[start + 1:pos]), channel_key, index, authors)
            except orjson.JSONDecodeError as e:
                raise ChatcloneError(f"malformed JSON in a message: {e.msg}", path,
                                     line=_line_at(path, consumed + start + 1), record=index + 1) from None
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise _not_a_message(path, e, index) from None
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


def _check_tail(path: Path, tail: bytes, line_of_tail, count: int, open_object: bool,
                options: ReadOptions) -> None:
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
        "Re-export, or pass allow_truncated=true to keep the messages read", path, line=line)


def _ijson_messages(path: Path, options: ReadOptions, channel_key: str) -> Iterator[Message]:
    """Messages of a file in any other JSON layout, through ijson's streaming parser."""
    index, authors = 0, {}
    with open(path, "rb") as f:
        try:
            for index, item in enumerate(ijson.items(f, "messages.item", use_float=True), start=1):
                try:
                    yield _to_message(item, channel_key, index - 1, authors)
                except (KeyError, TypeError, ValueError, AttributeError) as e:
                    raise _not_a_message(path, e, index - 1) from None
        except ijson.IncompleteJSONError as e:
            if "premature EOF" in str(e) or "incomplete" in str(e).lower():
                _check_tail(path, b"", lambda: None, index, True, options)
                return
            raise ChatcloneError(f"malformed JSON after message {index}: {e}", path) from None


def _not_a_message(path: Path, error: Exception, index: int) -> ChatcloneError:
    return ChatcloneError(f"not a DiscordChatExporter message ({type(error).__name__}: {error})",
                          path, line=_message_line(path, index), record=index + 1)


DEFAULT, SYSTEM, COMMAND_RESPONSE, FORWARD = Kind.DEFAULT, Kind.SYSTEM, Kind.COMMAND_RESPONSE, Kind.FORWARD
fromisoformat = datetime.fromisoformat


def _to_message(d: dict, channel_key: str, order: int, authors: dict[tuple, tuple]) -> Message:
    a = d["author"]
    key = (a["id"], a["name"], a.get("nickname"))  # webhooks share one id under many names
    author = authors.get(key)
    if author is None:
        author = authors[key] = _author(a)
    kind, reply_to, forwarded = _kind(d)
    attachments, stickers = d.get("attachments"), d.get("stickers")
    return Message(channel_key, int(d["id"]), author[0], author[1], author[2], author[3], kind,
                   fromisoformat(d["timestamp"]).timestamp(), d["content"], reply_to,
                   len(attachments) if attachments else 0, len(stickers) if stickers else 0, forwarded, order)


def _kind(d: dict) -> tuple[Kind, int | None, str | None]:
    """(kind, replied-to message id, forwarded text) of a message dict."""
    kind_name, ref = d["type"], d.get("reference")
    if kind_name == "Default" and ref is None:
        return DEFAULT, None, None
    forwarded = d.get("forwardedMessage")
    if forwarded is not None or (ref and ref.get("type") == "Forward"):
        return FORWARD, None, (forwarded or {}).get("content")
    if kind_name in PERSON_KINDS:
        target = ref.get("messageId") if ref and kind_name != "Default" else None
        return DEFAULT, int(target) if target else None, None
    return (COMMAND_RESPONSE if kind_name in COMMAND_KINDS else SYSTEM), None, None


def _author(a: dict) -> tuple:
    disc = a.get("discriminator") or "0000"
    username = a["name"] if disc in ("0000", "0") else f"{a['name']}#{disc}"
    return (str(a["id"]), username, a.get("nickname") or a["name"], bool(a.get("isBot")))
