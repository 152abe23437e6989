"""What clone fidelity is measured on, read and checked before any model loads.

- the tokenize_dataset run's validation split (`input_ids`, `labels`): its labels mark exactly the target's turns, so
  scoring them is the perplexity of the target's real held-out replies given their real context;
- the process_messages run's validation.jsonl: every target turn (not a repeat from the window before) with the
  messages before it is a context the models reply to, and its text the real reply;
- held-out texts for the style classifier's ceiling (the target's own replies) and floor (everybody else's), and
  the training split's messages it is fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chatclone import runs
from chatclone.chat_records import ChatMessage, is_trained, read_records
from chatclone.errors import ChatcloneError
from chatclone.formatting import IGNORE
from chatclone.metrics.splits import turn_texts

VALIDATION = "validation"


@dataclass(frozen=True)
class Context:
    """One validation target turn: the conversation before it and what the target really replied."""

    turn: int  # index among all the split's target turns
    record: str  # the record's id
    history: list[dict]  # process_messages-style messages before the turn
    reply: str


@dataclass
class FidelityData:
    examples: list[dict]  # validation sequences with at least one labelled token
    target_tokens: int  # labelled tokens over them
    contexts: list[Context]  # the chosen contexts (at most eval.max_contexts)
    target_turns: int  # target turns in validation.jsonl (what the contexts are chosen from)
    train_texts: list[str]
    train_is_target: list[bool]
    ceiling: list[str]  # the target's held-out replies
    floor: list[str]  # other speakers' held-out messages

    def describe(self) -> dict:
        return {
            "validation_sequences": len(self.examples),
            "target_tokens": self.target_tokens,
            "target_turns": self.target_turns,
            "contexts": len(self.contexts),
            "classifier_train_texts": len(self.train_texts),
            "classifier_train_target": sum(self.train_is_target),
            "ceiling_texts": len(self.ceiling),
            "floor_texts": len(self.floor),
        }


def load_fidelity_data(data_dir: Path, max_contexts: int) -> FidelityData:
    """Read and check everything the scoring needs from a tokenize_dataset run and its process_messages run."""
    examples, target_tokens = labelled_examples(Path(data_dir))
    split_dir = _process_run(Path(data_dir))
    everyone = _contexts(split_dir / f"{VALIDATION}.jsonl")
    if not everyone:
        raise ChatcloneError(
            "the validation split has no target turns to reply to: rerun process_messages with more "
            "data or another split",
            path=split_dir / f"{VALIDATION}.jsonl",
        )
    texts, mine = turn_texts(split_dir / f"{VALIDATION}.jsonl")
    train_texts, train_mine = turn_texts(split_dir / "train.jsonl")
    if all(train_mine) or not any(train_mine):
        raise ChatcloneError(
            "the style classifier needs training messages by the target and by someone else; the "
            "train split has only one of them",
            path=split_dir / "train.jsonl",
        )
    return FidelityData(
        examples,
        target_tokens,
        spread(everyone, max_contexts),
        len(everyone),
        train_texts,
        train_mine,
        [t for t, m in zip(texts, mine) if m],
        [t for t, m in zip(texts, mine) if not m],
    )


def spread(items: list, count: int) -> list:
    """At most `count` items evenly spread over `items` (all of them when there are few), in order."""
    if len(items) <= count:
        return list(items)
    return [items[(i * len(items)) // count] for i in range(count)]


def labelled_examples(data_dir: Path) -> tuple[list[dict], int]:
    """Validation rows with a labelled (target) token, as score_nll examples; checked to be non-empty."""
    from datasets import load_from_disk

    folder = data_dir / "dataset"
    if not folder.is_dir():
        raise ChatcloneError("the train run's dataset run has no dataset/ (moved or deleted?)", path=data_dir)
    try:
        split = load_from_disk(str(folder))[VALIDATION]
    except (KeyError, FileNotFoundError, ValueError) as error:
        raise ChatcloneError(f"cannot read the validation split: {error}", path=folder) from None
    examples, tokens = [], 0
    for ids, labels in zip(split["input_ids"], split["labels"]):
        labelled = sum(label != IGNORE for label in labels)
        if labelled:
            examples.append({"input_ids": ids, "labels": labels})
            tokens += labelled
    if not examples:
        raise ChatcloneError(
            f"the validation split has no target turns to score ({len(split)} sequences, no labelled "
            "token): rerun process_messages with more data or another split",
            path=folder,
        )
    return examples, tokens


def _process_run(data_dir: Path) -> Path:
    inputs = runs.read_manifest(data_dir).get("inputs") or []
    split_dir = Path(inputs[0]) if inputs else None
    if split_dir is None or not (split_dir / f"{VALIDATION}.jsonl").is_file():
        raise ChatcloneError(
            "the dataset run's process_messages run (its validation.jsonl) is missing: it holds the "
            "conversations the clone replies to",
            path=split_dir or data_dir,
        )
    return split_dir


def _contexts(path: Path) -> list[Context]:
    """Every trained target turn of the split (not a repeat from the window before), with the messages before it."""
    found: list[Context] = []
    for record in read_records(path):
        for i, message in enumerate(record.messages):
            if is_trained(message):
                found.append(Context(len(found), record.id, [_plain(m) for m in record.messages[:i]], message.content))
    return found


def _plain(message: ChatMessage) -> dict:
    return {"role": message.role, "name": message.name, "content": message.content}
