"""Readers on every file of tests/fixtures/sample_exports (a copy of ../shared/sample_exports): counts, formats
agreeing, CRLF, partitions."""

from __future__ import annotations

from collections import Counter

import pytest

from chatclone.exports import ReadOptions, read_channels
from chatclone.exports.csv_reader import read_csv
from chatclone.exports.json_reader import read_json
from chatclone.exports.records import Kind
from chatclone.exports.txt_reader import read_txt
from tests.conftest import DM, GUILD

READERS = {".json": read_json, ".csv": read_csv, ".txt": read_txt}
BERLIN = ReadOptions(timezone="Europe/Berlin")


def read(path, options=None):
    header, messages = READERS[path.suffix](path, options or ReadOptions(timezone="Europe/Berlin"))
    return header, list(messages)


@pytest.mark.parametrize("folder", ["", "windows-crlf"])
@pytest.mark.parametrize("ext", [".json", ".csv", ".txt"])
def test_dm_counts_in_every_format(shared, folder, ext):
    header, messages = read(shared / folder / (DM + ext))
    assert header.channel_id == "1118608583297251434" and header.is_dm
    assert len(messages) == 61
    assert Counter(m.username for m in messages) == {"tamsin.vale": 35, "orrin.byrd": 26}
    system = [m.content for m in messages if m.kind is Kind.SYSTEM]
    assert system == ["Pinned a message.", "Started a call that lasted 23 minutes."]


def test_json_csv_txt_agree_message_by_message(shared):
    _, js = read(shared / (DM + ".json"))
    _, cs = read(shared / (DM + ".csv"))
    _, tx = read(shared / (DM + ".txt"))
    for j, c, t in zip(js, cs, tx, strict=True):
        assert j.content == c.content == t.content
        assert j.username == c.username == t.username
        assert j.author_id == c.author_id and t.author_id is None
        assert abs(j.ts - c.ts) < 0.001
        assert 0 <= j.ts - t.ts < 60, "TXT has minute precision in the exporter's zone"


@pytest.mark.parametrize("ext", [".json", ".csv", ".txt"])
def test_crlf_equals_lf(shared, ext):
    _, lf = read(shared / (DM + ext))
    _, crlf = read(shared / "windows-crlf" / (DM + ext))
    assert [(m.content, m.ts, m.username) for m in lf] == [(m.content, m.ts, m.username) for m in crlf]
    assert any("\n\n" in m.content for m in crlf), "blank lines inside message 41 survive"


def test_json_features(shared):
    _, messages = read(shared / (DM + ".json"))
    by_number = {i + 1: m for i, m in enumerate(messages)}
    assert by_number[11].reply_to == by_number[10].id
    assert by_number[17].content == "" and by_number[17].attachments == 1
    assert by_number[25].content == "" and by_number[25].stickers == 1
    assert "😅" in by_number[3].content  # surrogate pairs decoded
    assert by_number[36].ts - by_number[35].ts == pytest.approx(24.5 * 3600, abs=60)


def test_guild_counts_and_kinds(shared):
    header, messages = read(shared / (GUILD + ".json"))
    assert not header.is_dm and header.name == "Lantern Hollow / Text Channels / general"
    assert Counter(m.username for m in messages) == {
        "tamsin.vale": 12,
        "pip.marsh": 10,
        "ezraloom": 9,
        "marlow_k": 6,
        "Lanternkeeper#7342": 4,
    }
    by_number = {i + 1: m for i, m in enumerate(messages)}
    assert by_number[16].kind is Kind.COMMAND_RESPONSE
    assert by_number[28].kind is Kind.FORWARD
    assert {by_number[n].kind for n in (9, 25, 27)} == {Kind.SYSTEM}
    assert by_number[3].is_bot and by_number[3].display == "Lanternkeeper"
    ids = {m.id for m in messages}
    assert by_number[23].reply_to is not None and by_number[23].reply_to not in ids  # deleted original


def test_partitioned_equals_whole(shared):
    whole, _ = read_channels([shared / (GUILD + ".json")], ReadOptions(), progress=False)
    parts, report = read_channels([shared / "partitioned"], ReadOptions(), progress=False)
    assert [f["part"] for f in report.files] == [1, 2]
    key = lambda m: (m.id, m.ts, m.content, m.author_id, m.reply_to, m.kind)  # noqa: E731
    assert [key(m) for m in parts[0].messages] == [key(m) for m in whole[0].messages]
    part2_first = parts[0].messages[20]
    assert part2_first.reply_to == parts[0].messages[19].id, "reply resolves across partitions"


def test_whole_folder_takes_each_channel_once_from_json(shared):
    channels, report = read_channels([shared], ReadOptions(), progress=False)
    assert sorted(len(c.messages) for c in channels) == [41, 61]
    assert {c.format for c in channels} == {"json"}
    assert len(report.skipped_files) >= 4  # CSV/TXT copies, and ids.json which is no export
    assert report.duplicates_removed == 61 + 41  # the CRLF copy of the DM and the two partitions
