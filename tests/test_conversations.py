"""Segmentation, windows and the split on hand-made messages and the shared DM."""

from __future__ import annotations

from collections import Counter

from chatclone.config.process_messages import SegmentationConfig, SplitConfig, SplitStrategy
from chatclone.conversations import Conversation, Turn, sessions, split, trainable, windows
from chatclone.exports.records import Kind, Message

MIN = 60.0


def msg(author, ts_min, text="x", id=None, reply_to=None) -> Message:
    return Message(
        channel="c",
        id=id,
        author_id=author,
        username=author,
        display=author.title(),
        is_bot=False,
        kind=Kind.DEFAULT,
        ts=ts_min * MIN,
        content=text,
        reply_to=reply_to,
    )


def is_target(m):
    return m.author_id == "t"


def seg(messages, **cfg):
    counts = Counter()
    seg = SegmentationConfig(**cfg)
    return trainable(sessions(messages, is_target, "chan", seg, counts), seg, counts), counts


def test_bursts_merge_and_silence_splits():
    messages = [
        msg("o", 0, "a"),
        msg("t", 1, "b"),
        msg("t", 2, "c"),
        msg("t", 20, "d"),
        msg("o", 21, "e"),
        msg("o", 200, "f"),
        msg("t", 201, "g"),
    ]
    convs, _ = seg(messages, merge_gap_minutes=7, session_gap_minutes=60)
    assert [[(t.speaker, t.content) for t in c.turns] for c in convs] == [
        [("o", "a"), ("t", "b\nc"), ("t", "d"), ("o", "e")],  # same speaker twice: non-alternating is kept
        [("o", "f"), ("t", "g")],
    ]


def test_conversations_without_target_or_others_are_dropped():
    messages = [msg("o", 0), msg("p", 1), msg("t", 100), msg("t", 110), msg("o", 300)]
    convs, counts = seg(messages, merge_gap_minutes=1)
    assert convs == []
    assert counts == {"conversations_dropped_no_target_turn": 2, "conversations_dropped_target_only": 1}


def test_min_turns():
    convs, counts = seg([msg("o", 0), msg("t", 1)], min_turns=3)
    assert convs == [] and counts["conversations_dropped_too_few_turns"] == 1


def test_reply_to_an_earlier_conversation_brings_its_context():
    messages = [
        msg("o", 0, "question?", id=1),
        msg("t", 300, "answer", id=2, reply_to=1),
        msg("o", 301, "ok", id=3),
        msg("t", 900, "reply to nothing", id=4, reply_to=999),
        msg("o", 901),
    ]
    convs, counts = seg(messages)
    assert [(t.content, t.context_only) for t in convs[0].turns] == [
        ("question?", True),
        ("answer", False),
        ("ok", False),
    ]
    assert counts["reply_context_turns"] == 1 and counts["replies_to_missing_messages"] == 1
    assert len(convs) == 2


def conversation(pattern: str) -> Conversation:
    return Conversation("c", "chan", [Turn(s, s, s == "t", f"{s}{i}", i, i) for i, s in enumerate(pattern)])


def test_windows_end_on_target_and_train_each_target_turn_once():
    conv = conversation("ot" * 10)  # 20 turns
    cfg = SegmentationConfig(max_turns=6, context_turns=2)
    wins = windows(conv, cfg)
    assert all(len(w) <= 6 and w[-1].is_target and not w[-1].context_only for w in wins)
    trained = [t.content for w in wins for t in w if t.is_target and not t.context_only]
    assert trained == [f"t{i}" for i in range(1, 20, 2)]
    assert all(w[0].context_only for w in wins[1:])


def test_windows_skip_long_stretches_without_target():
    conv = conversation("ot" + "o" * 30 + "t")
    wins = windows(conv, SegmentationConfig(max_turns=5, context_turns=3))
    assert [len(w) for w in wins] == [2, 4]
    assert [t.content for t in wins[1]] == ["o29", "o30", "o31", "t32"]


def test_short_conversation_is_one_window_without_trailing_turns():
    wins = windows(conversation("otoo"), SegmentationConfig())
    assert [t.content for t in wins[0]] == ["o0", "t1"]


def test_split_temporal_and_random():
    convs = [Conversation("c", "chan", [Turn("t", "t", True, "x", i, i)]) for i in range(20)]
    train, val = split(convs, SplitConfig())
    assert [c.start for c in val] == [18, 19] and len(train) == 18
    train_r, val_r = split(convs, SplitConfig(strategy=SplitStrategy.random, seed=1))
    assert len(val_r) == 2 and not {id(c) for c in val_r} & {id(c) for c in train_r}
    assert [c.start for c in split(convs, SplitConfig(strategy=SplitStrategy.random, seed=1))[1]] == [
        c.start for c in val_r
    ]
    assert split(convs[:2], SplitConfig())[1][0].start == 1
    assert split(convs[:1], SplitConfig())[1] == []
