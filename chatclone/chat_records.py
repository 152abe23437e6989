"""The hand-off between stages: process_messages' `train.jsonl` / `validation.jsonl`, one chat record a line.

This module owns the format: the record and message types, writing them, reading them back (every bad line is a
one-line ChatcloneError naming the file and line, e.g. `train.jsonl:17: message 2 has no `content``) and the one
rule for which turns are trained (`is_trained`). tokenize_dataset, the fidelity evaluation, the text metrics and
generation all read the splits through it.

Named `chat_records` (types `ChatRecord`, `ChatMessage`) so it cannot be mistaken for `chatclone.exports.records`,
whose `Message` is one message of a DiscordChatExporter export as the readers yield it, nor for
`chatclone.generation.records`, what a generation run writes. It sits low in the package: it imports nothing of
chatclone but `errors`.

A line:

    {"id": "...-w0", "channel": "Direct Messages / Orrin", "channel_id": "1118608583297251434",
     "start": "2025-03-27T18:02:14Z", "end": "2025-03-27T19:52:40Z",
     "messages": [{"role": "user", "name": "Orrin", "content": "hey"},
                  {"role": "assistant", "name": "Tamsin", "content": "yesss", "train": false}, ...]}

The target is `assistant`, everyone else `user`. A long conversation is cut into windows that start with up to
`context_turns` turns of the window before, which ends on a target turn: those repeated target turns carry
`"train": false` (already trained on), so a record's turns up to its last `"train": false` one are repeats
(`ChatRecord.new_messages`). Only `messages` is required when reading (tests and hand-made files leave the rest
out); a record without `id` takes its line number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from chatclone.errors import ChatcloneError

ASSISTANT, USER = "assistant", "user"  # the target, everybody else
ROLES = (USER, ASSISTANT)
SPLITS = ("train", "validation")  # the split files: `split_file(split)`
_HINT = " (is this a process_messages output?)"
_OPTIONAL_TEXT = ("channel", "channel_id", "start", "end")
_TEXT_OR_NULL = (str, type(None))


class _BadLine(Exception):
    """What is wrong with a line, before the file and line number are known."""


@dataclass(slots=True)
class ChatMessage:
    """One turn: who wrote it (`assistant` = the target), their name, the text, and whether it is trained on."""

    role: str
    content: str
    name: str | None = None
    train: bool = True  # false: a target turn repeated from the window before, context only

    def to_json(self) -> dict:
        """The message as a line holds it (`train` only where it is false)."""
        out: dict[str, Any] = {"role": self.role, "name": self.name, "content": self.content}
        if not self.train:
            out["train"] = False
        return out


@dataclass(slots=True)
class ChatRecord:
    """One conversation (or window of one): its id, channel, UTC start and end (ISO 8601), and its turns."""

    id: str
    messages: list[ChatMessage] = field(default_factory=list)
    channel: str | None = None
    channel_id: str | None = None
    start: str | None = None
    end: str | None = None

    @property
    def new_messages(self) -> list[ChatMessage]:
        """The turns this record adds: those after its last `"train": false` turn (the ones up to it repeat the
        end of the window before)."""
        repeated = max((i for i, m in enumerate(self.messages) if not m.train), default=-1)
        return self.messages[repeated + 1 :]

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "channel": self.channel,
            "channel_id": self.channel_id,
            "start": self.start,
            "end": self.end,
            "messages": [m.to_json() for m in self.messages],
        }


def is_trained(message: ChatMessage | Mapping) -> bool:
    """Whether the model learns this turn: a target (`assistant`) turn not marked `"train": false`.

    Takes a `ChatMessage` or a message as a dict (the chat-template code works on dicts)."""
    if isinstance(message, ChatMessage):
        return message.role == ASSISTANT and message.train
    return message.get("role") == ASSISTANT and message.get("train") is not False


def split_file(split: str) -> str:
    """The file name a process_messages run gives a split: `train.jsonl`, `validation.jsonl`."""
    return f"{split}.jsonl"


def write_records(out: BinaryIO, records: Iterable[ChatRecord]) -> None:
    """Write records to a file opened for binary writing, one JSON line each."""
    out.writelines(orjson.dumps(record.to_json()) + b"\n" for record in records)


def read_records(path: Path | str) -> Iterator[ChatRecord]:
    """Every record of a split file, in order, checked as it is read (blank lines are skipped; an empty file has
    no records). A missing file, or a line that is not a chat record, is a ChatcloneError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ChatcloneError("no such split file", path=path)
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                yield parse_record(line, path, number)


def parse_record(line: bytes | str, path: Path | str, number: int) -> ChatRecord:
    """One line as a record; anything else is a ChatcloneError naming `path` and line `number`."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ChatcloneError("not a JSON line" + _HINT, path=path, line=number) from None
    if not isinstance(data, dict):
        raise ChatcloneError(f"not a chat record: {_kind(data)}, not an object" + _HINT, path=path, line=number)
    messages = data.get("messages")
    if not isinstance(messages, list):
        problem = (
            f"the record's `messages` is {_kind(messages)}, not a list"
            if "messages" in data
            else "record has no `messages` list"
        )
        raise ChatcloneError(problem + _HINT, path=path, line=number)
    try:
        parsed = [_message(m, i) for i, m in enumerate(messages, 1)]
        record_id = data.get("id", str(number))
        _check_type(record_id, str, "`id`")
        for key in _OPTIONAL_TEXT:
            _check_type(data.get(key), _TEXT_OR_NULL, f"`{key}`")
    except _BadLine as error:
        raise ChatcloneError(str(error), path=path, line=number) from None
    return ChatRecord(record_id, parsed, *(data.get(key) for key in _OPTIONAL_TEXT))


def _message(data: Any, index: int) -> ChatMessage:
    where = f"message {index}"
    if not isinstance(data, dict):
        raise _BadLine(f"{where} is {_kind(data)}, not an object")
    for key in ("role", "content"):
        if key not in data:
            raise _BadLine(f"{where} has no `{key}`")
    role, content, name, train = data["role"], data["content"], data.get("name"), data.get("train", True)
    _check_type(role, str, f"{where}: `role`")
    if role not in ROLES:
        raise _BadLine(f"{where}: `role` is {role!r}, not {USER!r} or {ASSISTANT!r}")
    _check_type(content, str, f"{where}: `content`")
    _check_type(name, _TEXT_OR_NULL, f"{where}: `name`")
    _check_type(train, bool, f"{where}: `train`")
    return ChatMessage(role, content, name, train)


def _check_type(value: Any, expected: type | tuple[type, ...], what: str) -> None:
    if not isinstance(value, expected):
        wanted = {bool: "true or false", str: "a string"}.get(expected, "a string or null")
        raise _BadLine(f"{what} is {_kind(value)}, not {wanted}")


def _kind(value: Any) -> str:
    """A JSON value's type in words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)
