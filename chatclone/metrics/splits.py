"""The turns of a processed split (`train.jsonl` / `validation.jsonl`), each once, for the text metrics.

process_messages cuts long conversations into windows that start with up to `context_turns` turns of
the previous window, which ends on a target turn; that turn is marked `"train": false` in the next
window. So a record's turns up to and including its last `"train": false` turn are repeats, and
skipping them counts every turn once (the style classifier would otherwise weigh context turns twice).
"""

from __future__ import annotations

from pathlib import Path

import orjson

from chatclone.errors import ChatcloneError


def turn_texts(path: Path | str) -> tuple[list[str], list[bool]]:
    """Every turn of the split once, in file order: its text and whether the target (assistant) wrote it.

    Train the style classifier on `turn_texts(train)`; the target's held-out replies (the ceiling) are
    `[t for t, mine in zip(*turn_texts(validation)) if mine]`.
    """
    texts, is_target = [], []
    for messages in _records(Path(path)):
        repeated = max((i for i, m in enumerate(messages) if m.get("train") is False), default=-1)
        for m in messages[repeated + 1:]:
            texts.append(m["content"])
            is_target.append(m["role"] == "assistant")
    return texts, is_target


def _records(path: Path):
    """The `messages` list of each JSONL record."""
    if not path.is_file():
        raise ChatcloneError("no such split file", path)
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                messages = orjson.loads(line)["messages"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise ChatcloneError("not a chat record with a 'messages' list", path, line=number) from None
            yield messages
