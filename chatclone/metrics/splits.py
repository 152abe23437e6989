"""The turns of a processed split (`train.jsonl` / `validation.jsonl`), each once, for the text metrics.

process_messages cuts long conversations into windows that start with turns repeated from the window before
(`chatclone.chat_records`); only each record's new turns count, so the style classifier does not weigh
context turns twice.
"""

from __future__ import annotations

from pathlib import Path

from chatclone.chat_records import ASSISTANT, read_records


def turn_texts(path: Path | str) -> tuple[list[str], list[bool]]:
    """Every turn of the split once, in file order: its text and whether the target (assistant) wrote it.

    Train the style classifier on `turn_texts(train)`; the target's held-out replies (the ceiling) are
    `[t for t, mine in zip(*turn_texts(validation)) if mine]`.
    """
    texts, is_target = [], []
    for record in read_records(path):
        for m in record.new_messages:
            texts.append(m.content)
            is_target.append(m.role == ASSISTANT)
    return texts, is_target
