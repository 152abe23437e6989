"""Segmentation: messages -> turns -> conversations -> training windows, and the train/validation split.

- Consecutive messages of one author within `merge_gap_minutes` merge into one turn.
- A silence longer than `session_gap_minutes` starts a new conversation.
- A conversation that opens with a reply to an earlier message (found in the same channel, across
  partitions) gets that message as its first, context-only turn; a reply to a deleted message
  simply has none.
- Conversations without a target turn, without anyone else, or shorter than `min_turns` are dropped.
- Long conversations become windows of at most `max_turns` turns, each ending on a target turn
  and starting with up to `context_turns` turns of what came before (those are not trained twice).
- The split holds out whole conversations (so every window of one stays on one side) worth about
  `split.validation_fraction` of the target's trained turns.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from chatclone.config.process_messages import SegmentationConfig, SpeakerNames, SplitConfig, SplitStrategy
from chatclone.errors import ChatcloneError
from chatclone.exports.records import Message


@dataclass
class Turn:
    speaker: str  # author id, or username where the format has no ids
    name: str  # what the chat showed: display name or username (segmentation.speaker_names)
    is_target: bool
    content: str
    start: float
    end: float
    context_only: bool = False  # a turn repeated from earlier for context: never trained on here


@dataclass
class Conversation:
    channel: str
    channel_name: str
    turns: list[Turn] = field(default_factory=list)

    @property
    def start(self) -> float:
        """When the conversation itself began: its first turn that is not context from earlier."""
        return next(t.start for t in self.turns if not t.context_only)

    @property
    def id(self) -> str:
        """Unique per conversation: a channel's conversations start at different messages."""
        return f"{self.channel}-{iso(self.start)}"

    @property
    def trained_turns(self) -> int:
        """Target turns trained on (the unit the split measures)."""
        return sum(1 for _ in _trained(self))


def trainable(conversations: list[Conversation], cfg: SegmentationConfig, counts: Counter) -> list[Conversation]:
    """The conversations training uses (of `sessions`): those without a target turn, without anyone else or under
    `min_turns` dropped (and counted)."""
    return [c for c in conversations if _keep(c, cfg, counts)]


def sessions(
    messages: list[Message],
    is_target: Callable[[Message], bool],
    channel_name: str,
    cfg: SegmentationConfig,
    counts: Counter,
) -> list[Conversation]:
    """Every conversation of one channel's cleaned, time-ordered messages, none dropped: turns merged and reply
    context added as in training (the Discord bot answers the last one of a channel's history)."""
    wanted = {m.reply_to for m in messages if m.reply_to is not None} if cfg.reply_context else set()
    by_id = {m.id: m for m in messages if m.id in wanted} if wanted else {}
    conversations: list[Conversation] = []
    current: Conversation | None = None
    previous_ts = -math.inf
    gap = cfg.session_gap_minutes * 60
    targets: dict[tuple, bool] = {}  # is_target per (id, username): decided once per speaker
    for m in messages:
        if current is None or m.ts - previous_ts > gap:
            current = Conversation(channel=m.channel, channel_name=channel_name)
            conversations.append(current)
            _add_reply_context(current, m, by_id, is_target, cfg, counts)
        speaker = (m.author_id, m.username)
        target = targets.get(speaker)
        if target is None:
            target = targets[speaker] = is_target(m)
        _add_message(current, m, target, cfg)
        previous_ts = m.ts
    return conversations


def _add_reply_context(conv: Conversation, m: Message, by_id: dict, is_target, cfg, counts: Counter) -> None:
    if m.reply_to is None or not cfg.reply_context:
        return
    original = by_id.get(m.reply_to)
    if original is None:
        counts["replies_to_missing_messages"] += 1
        return
    counts["reply_context_turns"] += 1
    _add_message(conv, original, is_target(original), cfg)
    conv.turns[-1].context_only = True


def _add_message(conv: Conversation, m: Message, target: bool, cfg: SegmentationConfig) -> None:
    speaker = m.author_id or m.username
    last = conv.turns[-1] if conv.turns else None
    if (
        last is not None
        and last.speaker == speaker
        and not last.context_only
        and m.ts - last.end <= cfg.merge_gap_minutes * 60
    ):
        last.content += "\n" + m.content
        last.end = m.ts
        return
    name = m.display if cfg.speaker_names is SpeakerNames.display else m.username
    conv.turns.append(Turn(speaker=speaker, name=name, is_target=target, content=m.content, start=m.ts, end=m.ts))


def _keep(conv: Conversation, cfg: SegmentationConfig, counts: Counter) -> bool:
    if not any(t.is_target and not t.context_only for t in conv.turns):
        reason = "no_target_turn"
    elif all(t.is_target for t in conv.turns):
        reason = "target_only"
    elif len(conv.turns) < cfg.min_turns:
        reason = "too_few_turns"
    else:
        return True
    counts[f"conversations_dropped_{reason}"] += 1
    return False


def windows(conv: Conversation, cfg: SegmentationConfig) -> list[list[Turn]]:
    """Windows of at most max_turns turns, each ending on a trainable target turn."""
    turns, n = conv.turns, len(conv.turns)
    trainable = [i for i, t in enumerate(turns) if t.is_target and not t.context_only]
    out: list[list[Turn]] = []
    start, trained_up_to = 0, -1
    while True:
        end = max((i for i in trainable if start <= i < start + cfg.max_turns), default=None)
        if end is None or end <= trained_up_to:
            nxt = next((i for i in trainable if i > trained_up_to), None)
            if nxt is None:
                return out
            start = max(nxt - cfg.max_turns + 1, nxt - cfg.context_turns, 0)
            continue
        window = [t if i > trained_up_to else _as_context(t) for i, t in enumerate(turns[start : end + 1], start)]
        out.append(window)
        trained_up_to = end
        if end == trainable[-1] or end + 1 >= n:
            return out
        start = max(end + 1 - cfg.context_turns, start + 1)


def _as_context(turn: Turn) -> Turn:
    return Turn(**{**turn.__dict__, "context_only": True})


def split(conversations: list[Conversation], cfg: SplitConfig) -> tuple[list[Conversation], list[Conversation]]:
    """Train and validation conversations; no conversation is in both.

    Validation takes whole conversations from the end of the order (temporal: newest first; random: a
    seeded shuffle) until it holds about `validation_fraction` of the target's trained turns: a tenth of
    long and short conversations is not a tenth of the data. At least one conversation when there are
    two or more and the fraction is above 0; never all of them.
    """
    ordered = sorted(conversations, key=lambda c: c.start)
    if cfg.strategy is SplitStrategy.random:
        random.Random(cfg.seed).shuffle(ordered)
    n_val = _validation_count([c.trained_turns for c in ordered], cfg.validation_fraction)
    return ordered[: len(ordered) - n_val], ordered[len(ordered) - n_val :]


def _validation_count(turns: list[int], fraction: float) -> int:
    """How many conversations from the end bring the validation share of turns closest to `fraction`
    (on a tie, the count that reaches it)."""
    n = len(turns)
    if n < 2 or fraction <= 0:
        return 0
    goal, taken = fraction * sum(turns), 0
    for k in range(1, n):
        before, taken = taken, taken + turns[n - k]
        if taken >= goal:
            return k - 1 if k > 1 and goal - before < taken - goal else k
    return n - 1


def check_no_leak(train: list[Conversation], validation: list[Conversation]) -> list[str]:
    """Refuse a split where a trained target turn is in both splits: same UTC minute, same text, same
    channel (by id or by name: a copy that was not recognised as one keeps the name). The same text at
    the same minute in two different channels may be chance ("lol"): those are returned, to report."""
    held_out: dict[tuple, list[Conversation]] = {}
    for conv in validation:
        for t in _trained(conv):
            held_out.setdefault((int(t.start // 60), t.content), []).append(conv)
    elsewhere: list[str] = []
    if not held_out:
        return elsewhere
    for conv in train:
        for t in _trained(conv):
            for other in held_out.get((int(t.start // 60), t.content), ()):
                if other.channel != conv.channel and other.channel_name != conv.channel_name:
                    elsewhere.append(f"{_sample(t.content)} ({conv.id} and {other.id})")
                    continue
                raise ChatcloneError(
                    f"the target turn {_sample(t.content)} of {iso(t.start)} in {conv.channel_name} is in both "
                    f"splits: train conversation {conv.id} and validation conversation {other.id}. The same "
                    "messages were read twice: is one input a copy of another under a different name, time "
                    "zone or username? Remove the copy from the inputs"
                )
    return elsewhere


def _trained(conv: Conversation) -> Iterable[Turn]:
    return (t for t in conv.turns if t.is_target and not t.context_only)


def _sample(content: str) -> str:
    return repr(content if len(content) <= 60 else content[:57] + "...")


def iso(ts: float) -> str:
    """A UTC time as ISO 8601 to the second, e.g. 2025-03-27T18:02:14Z."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def turn_counts(conversations: Iterable[Conversation]) -> Counter:
    return Counter(len(c.turns) for c in conversations)
