"""Nothing silently lost, duplicated or leaked: duplicate messages (within a file, between copies, renamed
copies in other formats), unreadable exports in a folder, the split by the target's turns, the leak guard,
and no partial output files."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from rich.console import Console

from chatclone import runs
from chatclone.config.process_messages import CleaningConfig, SegmentationConfig, SplitConfig, SplitStrategy
from chatclone.conversations import Conversation, Turn, check_no_leak, sessions, split, trainable
from chatclone.errors import ChatcloneError
from chatclone.exports import ReadOptions, read_channels
from chatclone.exports.records import Kind, Message
from chatclone.stages.process_messages import process_messages
from tests.conftest import DM, GUILD, ROOT, compose, make_config, read_jsonl, target_turns

BERLIN = {"timezone": "Europe/Berlin"}  # the DM samples were exported in Berlin (TXT times carry no offset)
DM_ID = "1118608583297251434"


def minimal_cleaning() -> CleaningConfig:
    """conf/cleaning/minimal.yaml as Hydra composes it (cleaning=minimal): no repeat dropping."""
    return compose("process_messages", ["cleaning=minimal"]).cleaning


def run(inputs, run_dir, **sections) -> dict:
    return process_messages(make_config(inputs, **sections), run_dir, console=Console(file=io.StringIO()))


def doubled_json(src, dst, layout: str) -> None:
    """The export with every message written twice (same id), as DCE's fixed layout or minified."""
    doc = json.loads(src.read_text(encoding="utf-8"))
    doc["messages"] = doc["messages"] + doc["messages"]
    doc["messageCount"] = len(doc["messages"])
    dst.write_text(json.dumps(doc, indent=2 if layout == "dce" else None), encoding="utf-8")


# --- duplicates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["dce", "minified"])
def test_same_message_id_twice_in_one_file_is_taken_once(shared, tmp_path, layout):
    doubled = tmp_path / (DM + ".json")
    doubled_json(shared / (DM + ".json"), doubled, layout)
    channels, report = read_channels([doubled], ReadOptions(), progress=False)
    assert len(channels[0].messages) == 61 and len({m.id for m in channels[0].messages}) == 61
    assert report.duplicates.within_files == 61 and report.duplicates_removed == 61
    assert report.files[0]["messages"] == 122  # what the file held


def test_doubled_file_with_minimal_cleaning_trains_each_turn_once(shared, tmp_path):
    doubled = tmp_path / "in" / (DM + ".json")
    doubled.parent.mkdir()
    doubled_json(shared / (DM + ".json"), doubled, "dce")
    for name, path in (("once", shared / (DM + ".json")), ("twice", doubled)):
        cfg = make_config([path])
        cfg.cleaning = minimal_cleaning()
        stats = process_messages(cfg, tmp_path / name, console=Console(file=io.StringIO()))
    assert target_turns(tmp_path / "twice") == target_turns(tmp_path / "once")
    saved = json.loads((tmp_path / "twice" / "stats.json").read_text())
    assert saved["duplicates"]["within_files"] == 61 and saved["duplicate_messages_removed"] == 61
    assert stats["messages"]["read"] == 61


def renamed_copies(shared, folder, *exts):
    """The DM's JSON beside copies in other formats whose names lack the `[channel id]`."""
    folder.mkdir(parents=True)
    (folder / (DM + ".json")).write_bytes((shared / (DM + ".json")).read_bytes())
    for ext in exts:
        (folder / f"orrin backup{ext}").write_bytes((shared / (DM + ext)).read_bytes())
    return folder


def test_renamed_csv_and_txt_copies_join_the_json_channel(shared, tmp_path):
    folder = renamed_copies(shared, tmp_path / "in", ".csv", ".txt")
    channels, report = read_channels([folder], ReadOptions(**BERLIN), progress=False)
    assert [(c.key, len(c.messages), c.format) for c in channels] == [(DM_ID, 61, "json")]
    copies = [f for f in report.files if f["format"] != "json"]
    assert [(f["channel"], f["duplicates"], f["added"]) for f in copies] == [(DM_ID, 61, 0), (DM_ID, 61, 0)]
    assert report.duplicates.renamed_copies == 122


def test_renamed_copies_change_no_output(shared, tmp_path):
    folder = renamed_copies(shared, tmp_path / "in", ".csv", ".txt")
    run([shared / (DM + ".json")], tmp_path / "json", reading=BERLIN)
    stats = run([folder], tmp_path / "all", reading=BERLIN)
    for name in ("train.jsonl", "validation.jsonl"):
        assert (tmp_path / "all" / name).read_text() == (tmp_path / "json" / name).read_text()
    validation = {
        m["content"]
        for r in read_jsonl(tmp_path / "all" / "validation.jsonl")
        for m in r["messages"]
        if m["role"] == "assistant"
    }
    trained = {
        m["content"]
        for r in read_jsonl(tmp_path / "all" / "train.jsonl")
        for m in r["messages"]
        if m["role"] == "assistant" and m.get("train", True)
    }
    assert validation and not validation & trained
    assert stats["duplicates"]["renamed_copies"] == 122


def test_renamed_html_copy_is_matched_by_message_id(shared, tmp_path):
    folder = renamed_copies(shared, tmp_path / "in")
    (folder / "orrin.html").write_bytes((ROOT / "tests" / "fixtures" / "html" / (DM + ".html")).read_bytes())
    channels, report = read_channels([folder], ReadOptions(**BERLIN), progress=False)
    assert [(c.key, len(c.messages), c.format) for c in channels] == [(DM_ID, 61, "json")]
    assert report.duplicates.renamed_copies == 61


def test_renamed_copy_with_more_messages_adds_only_those(shared, tmp_path):
    doc = json.loads((shared / (DM + ".json")).read_text(encoding="utf-8"))
    doc["messages"], doc["messageCount"] = doc["messages"][:40], 40
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / (DM + ".json")).write_text(json.dumps(doc, indent=2), encoding="utf-8")
    (folder / "orrin.csv").write_bytes((shared / (DM + ".csv")).read_bytes())  # all 61
    channels, report = read_channels([folder], ReadOptions(), progress=False)
    assert [(c.key, len(c.messages)) for c in channels] == [(DM_ID, 61)]
    assert [m.id is None for m in channels[0].messages] == [False] * 40 + [True] * 21  # in time order
    csv_entry = next(f for f in report.files if f["format"] == "csv")
    assert (csv_entry["duplicates"], csv_entry["added"]) == (40, 21)


def csv_file(path, rows) -> None:
    lines = ["AuthorID,Author,Date,Content,Attachments,Reactions"]
    lines += [f'"{a_id}","{author}","{date}","{text}","",""' for a_id, author, date, text in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


LOL_ROWS = [
    ("1", "ann", "2025-03-27T19:02:14.0000000+00:00", "lol"),
    ("1", "ann", "2025-03-27T19:02:40.0000000+00:00", "lol"),  # same author, minute and text
    ("2", "bob", "2025-03-27T19:03:00.0000000+00:00", "hi"),
]


def test_equal_messages_in_one_minute_are_never_merged(tmp_path):
    """Two copies of a channel with "lol" twice in one minute: two "lol"s, not one and not four."""
    folder = tmp_path / "in"
    folder.mkdir()
    csv_file(folder / "chat [123456789012345678].csv", LOL_ROWS)
    csv_file(folder / "chat [123456789012345678] (again).csv", LOL_ROWS)
    csv_file(folder / "chat copy.csv", LOL_ROWS + [("1", "ann", "2025-03-27T19:02:59.0000000+00:00", "lol")])
    channels, report = read_channels([folder], ReadOptions(), progress=False)
    assert [m.content for m in channels[0].messages] == ["lol", "lol", "lol", "hi"]
    assert len(channels) == 1 and report.duplicates.across_files == 3 and report.duplicates.renamed_copies == 3
    single, _ = read_channels([folder / "chat copy.csv"], ReadOptions(), progress=False)
    assert len(single[0].messages) == 4  # within one file nothing without an id is merged


def test_different_channels_with_one_equal_message_stay_apart(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    csv_file(folder / "a.csv", LOL_ROWS)
    csv_file(
        folder / "b.csv",
        [LOL_ROWS[0]] + [("3", "cy", f"2025-03-27T19:{m:02d}:00.0000000+00:00", f"t{m}") for m in range(10, 20)],
    )
    channels, report = read_channels([folder], ReadOptions(), progress=False)
    assert sorted(len(c.messages) for c in channels) == [3, 11] and report.duplicates_removed == 0


def test_renamed_txt_read_in_the_wrong_zone_is_reported(shared, tmp_path):
    folder = renamed_copies(shared, tmp_path / "in", ".txt")
    options = ReadOptions()  # UTC: the Berlin TXT's times come out 1-2 h late
    channels, _ = read_channels([folder], options, progress=False)
    assert len(channels) == 2  # not merged: its times differ
    assert any("orrin backup.txt" in w and "+1 h off" in w and "reading.timezone" in w for w in options.warnings)


# --- unreadable exports in a folder -------------------------------------------------------------------


def broken_files(shared) -> dict[str, bytes]:
    dm_json = (shared / (DM + ".json")).read_bytes()
    return {
        f"{DM}.json": dm_json.decode("utf-8").encode("utf-16"),  # re-saved as UTF-16
        "orrin.json": dm_json.decode("utf-8").encode("utf-16"),  # same, name gives no hint
        f"{DM} [part 2].json": dm_json[:120],  # cut near its start
        "cut.json": dm_json[:120],
        f"{DM}.csv": (shared / (DM + ".csv")).read_bytes()[:14],  # cut inside its header
        "cut.txt": (shared / (DM + ".txt")).read_bytes()[:40],
        f"{DM}.txt": bytes(range(256)) * 8,  # binary garbage
        f"{DM}.html": b"\x89PNG\r\n\x1a\n" + bytes(200),
        f"{GUILD}.json": (shared / (GUILD + ".json")).read_bytes()[:20000],  # truncated mid-way
    }


@pytest.mark.parametrize("name", list(broken_files(ROOT / "tests" / "fixtures" / "sample_exports")))
def test_unreadable_export_in_a_folder_fails_the_run(shared, tmp_path, name):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good [111111111111111111].json").write_bytes((shared / (GUILD + ".json")).read_bytes())
    (folder / name).write_bytes(broken_files(shared)[name])
    with pytest.raises(ChatcloneError) as info:
        run([folder], tmp_path / "run")
    text = str(info.value)
    assert "\n" not in text and str(folder / name) in text and "reading.skip_unreadable=true" in text
    assert not (tmp_path / "run" / "train.jsonl").exists()


def test_skip_unreadable_lists_each_file_and_why(shared, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / (DM + ".json")).write_bytes((shared / (DM + ".json")).read_bytes())
    broken = {k: v for k, v in broken_files(shared).items() if not k.startswith(DM)}
    for name, data in broken.items():
        (folder / name).write_bytes(data)
    console = Console(file=io.StringIO(), width=300)
    stats = process_messages(
        make_config([folder], reading={"skip_unreadable": True}), tmp_path / "run", console=console
    )
    skipped = {
        f["file"]: f["reason"] for f in json.loads((tmp_path / "run" / "stats.json").read_text())["skipped_files"]
    }
    assert {str(folder / name) for name in broken} <= set(skipped)
    assert skipped[str(folder / "orrin.json")] == (
        "unreadable: UTF-16 text; DiscordChatExporter writes UTF-8: re-save the file as UTF-8"
    )
    assert "truncated" in skipped[str(folder / (GUILD + ".json"))]
    assert all(skipped[str(folder / name)].startswith("unreadable: ") for name in broken)
    summary = console.file.getvalue()
    assert all(f"unreadable: {folder / name}" in summary for name in broken)
    assert [f["file"] for f in stats["files"]] == [str(folder / (DM + ".json"))]  # nothing of the partial file


def test_skipped_unreadable_json_falls_back_to_the_csv_copy(shared, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / (DM + ".json")).write_bytes((shared / (DM + ".json")).read_text(encoding="utf-8").encode("utf-16"))
    (folder / (DM + ".csv")).write_bytes((shared / (DM + ".csv")).read_bytes())
    with pytest.raises(ChatcloneError, match="UTF-16"):
        read_channels([folder], ReadOptions(), progress=False)
    channels, report = read_channels([folder], ReadOptions(), progress=False, skip_unreadable=True)
    assert [(c.format, len(c.messages)) for c in channels] == [("csv", 61)]
    assert [f["reason"][:12] for f in report.skipped_files] == ["unreadable: "]


def test_named_unreadable_file_fails_even_when_skipping(shared, tmp_path):
    path = tmp_path / (DM + ".json")
    path.write_bytes((shared / (DM + ".json")).read_bytes()[:120])
    with pytest.raises(ChatcloneError) as info:
        read_channels([path], ReadOptions(), progress=False, skip_unreadable=True)
    assert str(path) in str(info.value) and "skip_unreadable" not in str(info.value)


def test_files_that_are_no_exports_are_still_skipped_quietly(shared, tmp_path):
    folder = tmp_path / "in"
    (folder / "_generator").mkdir(parents=True)
    (folder / (DM + ".json")).write_bytes((shared / (DM + ".json")).read_bytes())
    (folder / "_generator" / "ids.json").write_bytes((shared / "_generator" / "ids.json").read_bytes())
    (folder / "README.md").write_text("# my exports\n")
    (folder / "notes.txt").write_text("remember to export the server too\n")
    (folder / "people.csv").write_text("name,age\nann,3\n")
    (folder / "settings.json").write_text('{"theme": "dark"}')
    (folder / "photo.html").write_text("<html><body>hi</body></html>")
    (folder / "avatar.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    channels, report = read_channels([folder], ReadOptions(), progress=False)
    assert [len(c.messages) for c in channels] == [61]
    assert Counter(f["reason"] for f in report.skipped_files) == {"not a DiscordChatExporter export": 5}


def test_reading_skip_unreadable_is_a_config_key():
    text = (ROOT / "conf" / "process_messages.yaml").read_text()
    assert "  skip_unreadable: false\n" in text
    assert make_config([ROOT]).reading.skip_unreadable is False


# --- the split by the target's turns ------------------------------------------------------------------


def conv(start: int, target_turns: int, channel: str = "c") -> Conversation:
    turns = []
    for i in range(target_turns):
        turns += [
            Turn("o", "O", False, f"q{start}-{i}", start + 2 * i, start + 2 * i),
            Turn("t", "T", True, f"a{start}-{i}", start + 2 * i + 1, start + 2 * i + 1),
        ]
    return Conversation(channel, f"chan {channel}", turns)


def shares(train, validation) -> tuple[float, float]:
    turns = sum(c.trained_turns for c in train + validation)
    return len(validation) / len(train + validation), sum(c.trained_turns for c in validation) / turns


def test_temporal_split_holds_a_tenth_of_the_turns_not_of_the_conversations():
    # 90 short old conversations (5 target turns each), then 10 long new ones (50 each): 950 turns.
    convs = [conv(1000 * i, 5) for i in range(90)] + [conv(1000 * i, 50) for i in range(90, 100)]
    train, validation = split(convs, SplitConfig(validation_fraction=0.1))
    conversation_share, turn_share = shares(train, validation)
    assert turn_share == pytest.approx(0.1, abs=0.01) and conversation_share == 0.02
    assert max(c.start for c in train) < min(c.start for c in validation)


def test_random_split_accumulates_turns_after_a_seeded_shuffle():
    convs = [conv(1000 * i, 5 if i % 4 else 60) for i in range(100)]  # 25 long, 75 short: 1875 turns
    train, validation = split(convs, SplitConfig(strategy=SplitStrategy.random, seed=7, validation_fraction=0.2))
    _, turn_share = shares(train, validation)
    assert abs(turn_share - 0.2) <= 30 / 1875  # within half the largest conversation
    again = split(convs, SplitConfig(strategy=SplitStrategy.random, seed=7, validation_fraction=0.2))[1]
    assert [c.start for c in again] == [c.start for c in validation]
    assert {id(c) for c in train} | {id(c) for c in validation} == {id(c) for c in convs}
    assert not {id(c) for c in train} & {id(c) for c in validation}


@pytest.mark.parametrize(
    "sizes, fraction, n_validation",
    [
        ([3], 0.1, 0),  # one conversation: nothing to hold out
        ([3, 3], 0.1, 1),  # two: one each, whatever the fraction
        ([100, 1], 0.5, 1),  # the newest is tiny: still at least one
        ([1, 100], 0.1, 1),  # the newest is most of the data: one, never all
        ([1, 1, 1], 0.99, 2),  # never all
        ([5] * 10, 0.0, 0),  # a fraction of 0: empty validation
        ([5] * 10, 0.3, 3),
        ([10, 10, 1, 1], 0.1, 2),  # 2 of 22 turns is closest to 2.2
    ],
)
def test_split_edge_cases(sizes, fraction, n_validation):
    convs = [conv(1000 * i, n) for i, n in enumerate(sizes)]
    train, validation = split(convs, SplitConfig(validation_fraction=fraction))
    assert len(validation) == n_validation and len(train) + len(validation) == len(convs)


def msg(author, ts_min, text, id, reply_to=None) -> Message:
    return Message(
        channel="c",
        id=id,
        author_id=author,
        username=author,
        display=author,
        is_bot=False,
        kind=Kind.DEFAULT,
        ts=ts_min * 60.0,
        content=text,
        reply_to=reply_to,
    )


def test_conversations_opening_with_the_same_reply_context_keep_their_own_ids_and_times():
    messages = [
        msg("o", 0, "question?", 1),
        msg("t", 1, "hm", 2),
        msg("t", 300, "answer", 3, reply_to=1),
        msg("o", 301, "ok", 4),
        msg("t", 900, "and another", 5, reply_to=1),
        msg("o", 901, "fine", 6),
    ]
    counts, seg = Counter(), SegmentationConfig()
    convs = trainable(sessions(messages, lambda m: m.author_id == "t", "chan", seg, counts), seg, counts)
    assert [c.turns[0].content for c in convs] == ["question?"] * 3  # both later ones open with it as context
    assert [c.start for c in convs] == [0, 300 * 60, 900 * 60]
    assert len({c.id for c in convs}) == 3


def test_stage_reports_both_shares(shared, tmp_path):
    console = Console(file=io.StringIO(), width=200)
    stats = process_messages(
        make_config([shared / (DM + ".json"), shared / (GUILD + ".json")]), tmp_path / "run", console=console
    )
    saved = json.loads((tmp_path / "run" / "stats.json").read_text())["split"]
    assert saved == stats["split"]
    turns = saved["train"]["target_turns"] + saved["validation"]["target_turns"]
    assert saved["validation"]["target_turn_share"] == round(saved["validation"]["target_turns"] / turns, 4)
    assert saved["train"]["conversation_share"] + saved["validation"]["conversation_share"] == pytest.approx(1)
    assert "validation: share of conversations / of target turns" in console.file.getvalue()


# --- the leak guard -----------------------------------------------------------------------------------


def test_a_target_turn_in_both_splits_is_refused():
    a, b = conv(0, 3), conv(10_000, 3)
    b.turns.append(Turn("t", "T", True, a.turns[1].content, a.turns[1].start, a.turns[1].start))
    with pytest.raises(ChatcloneError) as info:
        check_no_leak([a], [b])
    text = str(info.value)
    assert "\n" not in text and repr(a.turns[1].content) in text and a.id in text and b.id in text


def test_same_channel_name_counts_as_the_same_channel():
    a, b = conv(0, 3, channel="1118608583297251434"), conv(10_000, 3, channel="/exports/orrin.txt")
    b.channel_name = a.channel_name
    b.turns.append(Turn("t", "T", True, a.turns[1].content, a.turns[1].start + 30, a.turns[1].start + 30))
    with pytest.raises(ChatcloneError, match="in both splits"):
        check_no_leak([a], [b])


def test_same_text_in_another_channel_is_reported_not_refused():
    a, b = conv(0, 3, channel="x"), conv(10_000, 3, channel="y")
    b.turns.append(Turn("t", "T", True, a.turns[1].content, a.turns[1].start, a.turns[1].start))
    found = check_no_leak([a], [b])
    assert len(found) == 1 and a.id in found[0] and b.id in found[0]
    assert check_no_leak([a], [conv(10_000, 3, channel="y")]) == []


def test_context_repeats_are_no_leak():
    a, b = conv(0, 3), conv(10_000, 3)
    repeated = a.turns[1]
    b.turns.insert(0, Turn("t", "T", True, repeated.content, repeated.start, repeated.start, context_only=True))
    assert check_no_leak([a], [b]) == []


# --- no partial outputs -------------------------------------------------------------------------------


def test_new_files_appear_only_when_all_are_complete(tmp_path):
    with pytest.raises(OSError):
        with runs.new_files(tmp_path, "train.jsonl", "validation.jsonl") as (train, validation):
            train.write_text("complete\n")
            validation.write_text("half")
            raise OSError(28, "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    with runs.new_files(tmp_path, "train.jsonl", "validation.jsonl") as (train, validation):
        train.write_text("a\n")
        validation.write_text("b\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.jsonl", "validation.jsonl"]
    with pytest.raises(ChatcloneError, match="refusing to overwrite"):
        with runs.new_files(tmp_path, "train.jsonl"):
            pass


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs resource limits (POSIX)")
def test_a_write_failing_part_way_leaves_no_output_file(shared, tmp_path):
    """A real failure part-way through train.jsonl: the process may write at most 1000 bytes per file."""
    script = (
        "import io, resource\n"
        "from pathlib import Path\n"
        "from rich.console import Console\n"
        "from chatclone.stages.process_messages import process_messages\n"
        "from tests.conftest import make_config\n"
        f"cfg = make_config([{str(shared)!r}], target='tamsin.vale')\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
        f"process_messages(cfg, Path({str(tmp_path / 'run')!r}), console=Console(file=io.StringIO()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode != 0 and "File too large" in result.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []
