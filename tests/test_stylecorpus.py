"""The synthetic style corpus: real DCE JSON layout, readable by chatclone, deterministic, and its speakers'
habits measurably different (the target's learnably so)."""

from __future__ import annotations

import io
import json
import re
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import pytest
from rich.console import Console

from chatclone.errors import ChatcloneError
from chatclone.exports.json_reader import read_json
from chatclone.exports.sources import ReadOptions
from chatclone.metrics import load_metric
from chatclone.metrics.splits import turn_texts
from chatclone.stages.process_messages import process_messages
from chatclone.stylecorpus import FILE_NAME, write_style_corpus
from tests.conftest import make_config

TOP_KEYS = ["guild", "channel", "dateRange", "exportedAt", "messages", "messageCount"]
MESSAGE_KEYS = [
    "id",
    "type",
    "timestamp",
    "timestampEdited",
    "callEndedTimestamp",
    "isPinned",
    "content",
    "author",
    "attachments",
    "embeds",
    "stickers",
    "reactions",
    "mentions",
    "inlineEmojis",
]
AUTHOR_KEYS = ["id", "name", "discriminator", "nickname", "color", "isBot", "roles", "avatarUrl"]
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,2}[1-9])?\+00:00$")
RATES = (
    "emoji_rate",
    "punctuation_rate",
    "exclamation_rate",
    "question_rate",
    "lowercase_rate",
    "upper_start_rate",
    "all_caps_rate",
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict, dict]:
    """The default corpus (4000 messages, seed 0): its path, write_style_corpus's answer and the parsed JSON."""
    path = tmp_path_factory.mktemp("style") / FILE_NAME
    info = write_style_corpus(path)
    return path, info, json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def by_speaker(corpus) -> dict[str, list[str]]:
    texts = defaultdict(list)
    for m in corpus[2]["messages"]:
        texts[m["author"]["name"]].append(m["content"])
    return texts


def _dce_escaped(text: str) -> str:
    """Characters outside the BMP as DCE writes them: upper-case UTF-16 surrogate pair escapes."""
    return "".join(
        c if ord(c) < 0x10000 else "".join(f"\\u{c.encode('utf-16-be').hex().upper()[i : i + 4]}" for i in (0, 4))
        for c in text
    )


def test_layout_is_dce_json(corpus):
    path, info, doc = corpus
    raw = path.read_text(encoding="utf-8")
    assert raw == _dce_escaped(json.dumps(doc, indent=2, ensure_ascii=False))  # 2-space layout, no final newline
    assert "\\uD83C\\uDF19" in raw and not re.search("[\U00010000-\U0010ffff]", raw)  # 🌙 escaped, as DCE does
    assert list(doc) == TOP_KEYS and doc["messageCount"] == len(doc["messages"]) == info["messages"] == 4000
    for m in doc["messages"]:
        keys = MESSAGE_KEYS[:-1] + (["reference"] if m["type"] == "Reply" else []) + MESSAGE_KEYS[-1:]
        assert list(m) == keys and list(m["author"]) == AUTHOR_KEYS and DATE.match(m["timestamp"])
        assert all(e["name"] in m["content"] and e["id"] == "" for e in m["inlineEmojis"])


def test_snowflakes_encode_the_timestamps(corpus):
    from datetime import datetime

    for m in corpus[2]["messages"]:
        ms = (int(m["id"]) >> 22) + 1420070400000
        assert datetime.fromisoformat(m["timestamp"]).timestamp() == pytest.approx(ms / 1000)


def test_read_by_chatclone(corpus):
    path, info, _ = corpus
    options = ReadOptions()
    header, messages = read_json(path, options)
    messages = list(messages)
    assert header.channel_id == info["channel_id"] and not header.is_dm
    assert len(messages) == 4000 and options.warnings == []
    assert {m.username for m in messages} == {s["username"] for s in info["speakers"]}
    seen, replies = set(), 0
    for m in messages:
        if m.reply_to is not None:
            assert m.reply_to in seen
            replies += 1
        seen.add(m.id)
    assert 200 < replies < 1000


def test_deterministic_by_seed(tmp_path):
    a = write_style_corpus(tmp_path / "a.json", n_messages=300, seed=3)
    b = write_style_corpus(tmp_path / "b.json", n_messages=300, seed=3)
    write_style_corpus(tmp_path / "c.json", n_messages=300, seed=4)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "a.json").read_bytes() != (tmp_path / "c.json").read_bytes()
    assert {**a, "path": ""} == {**b, "path": ""}
    with pytest.raises(ChatcloneError, match="at least 1"):
        write_style_corpus(tmp_path / "d.json", n_messages=0)


def test_speakers_and_conversation_structure(corpus):
    _, info, doc = corpus
    speakers = info["speakers"]
    assert 4 <= len(speakers) <= 5 and len({s["id"] for s in speakers}) == len(speakers)
    assert [s["username"] for s in speakers if s["is_target"]] == [info["target"]["username"]] == ["mossy.wren"]
    messages = doc["messages"]
    ms = [(int(m["id"]) >> 22) for m in messages]
    gaps = [b - a for a, b in zip(ms, ms[1:])]
    assert all(g > 0 for g in gaps)
    assert sum(g > 3 * 3600_000 for g in gaps) >= 20  # sessions hours apart
    same_author = sum(a["author"]["id"] == b["author"]["id"] for a, b in zip(messages, messages[1:]))
    assert 0.2 < same_author / len(gaps) < 0.7  # bursts, and turns
    target_share = sum(m["author"]["name"] == "mossy.wren" for m in messages) / len(messages)
    assert 0.25 < target_share < 0.45


def _sessions(messages: list[dict]) -> list[list[dict]]:
    """Messages split where the gap is over 3 hours (sessions are 3 to 26 hours apart)."""
    sessions = [[messages[0]]]
    for a, b in zip(messages, messages[1:]):
        gap = (int(b["id"]) >> 22) - (int(a["id"]) >> 22)
        if gap > 3 * 3600_000:
            sessions.append([])
        sessions[-1].append(b)
    return sessions


def test_short_sessions_are_dm_shaped(corpus, tmp_path):
    info = write_style_corpus(tmp_path / "short.json", n_messages=1500, sessions="short")
    assert info["sessions"] == "short"
    short = _sessions(json.loads((tmp_path / "short.json").read_text(encoding="utf-8"))["messages"])
    long = _sessions(corpus[2]["messages"])
    assert all(len({m["author"]["id"] for m in s}) <= 2 for s in short)  # the target and one other
    assert sum(1 for s in short if any(m["author"]["name"] == "mossy.wren" for m in s)) == len(short)
    sizes = sorted(len(s) for s in short)
    assert sizes[len(sizes) // 2] * 3 < sorted(len(s) for s in long)[len(long) // 2]  # mostly quick exchanges
    median = sizes[len(sizes) // 2]
    assert sizes[-1] >= 4 * median and sum(sizes) / len(sizes) > median  # and a few long ones
    with pytest.raises(ChatcloneError, match="sessions must be 'long' or 'short'"):
        write_style_corpus(tmp_path / "x.json", sessions="medium")


def _clear_differences(surface, texts: list[str], others: list[str]) -> list[str]:
    result = surface.compute(predictions=texts, target_replies=others)
    found = [k for k in RATES if abs(result["difference"][k]) >= 0.3]
    return found + (["length"] if result["length_ks"] >= 0.5 else [])


def test_speakers_habits_measurably_differ(by_speaker):
    surface = load_metric("surface_stats")
    others = {name: texts for name, texts in by_speaker.items() if name != "mossy.wren"}
    target = by_speaker["mossy.wren"]
    stats = surface.compute(predictions=target)["generated"]
    assert stats["lowercase_rate"] == 1 and stats["question_rate"] == 0 and stats["emoji_rate"] > 0.3
    assert {c for t in target for c in t if not c.isalnum() and not c.isspace() and ord(c) < 0x2000} == {"!"}
    assert stats["median_chars"] < 30
    for name, texts in others.items():
        assert len(_clear_differences(surface, texts, target)) >= 2, name
    for a, b in combinations(sorted(others), 2):
        assert _clear_differences(surface, others[a], others[b]), (a, b)


def test_target_style_is_learnable_from_the_processed_train_split(corpus, tmp_path):
    path, info, _ = corpus
    run_dir = tmp_path / "run"
    cfg = make_config([path], target=info["target"]["username"])
    process_messages(cfg, run_dir, console=Console(file=io.StringIO()))
    train_texts, train_is_target = turn_texts(run_dir / "train.jsonl")
    held, held_is_target = turn_texts(run_dir / "validation.jsonl")
    mine = [t for t, y in zip(held, held_is_target) if y]
    others = [t for t, y in zip(held, held_is_target) if not y]
    assert len(mine) >= 20 and len(others) >= 20
    result = (
        load_metric("style_attribution")
        .fit(train_texts, train_is_target)
        .compute(predictions=others, target_replies=mine, other_texts=others)
    )
    assert result["ceiling_rate"] > 0.95 and result["floor_rate"] < 0.05
    assert result["target_rate"] == result["floor_rate"]
