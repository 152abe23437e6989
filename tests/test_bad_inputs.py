"""Bad input: a one-line error naming the file (and line or record), exit status 2, never a traceback."""

from __future__ import annotations

import pytest

from chatclone.errors import ChatcloneError
from chatclone.exports import ReadOptions, read_channels
from tests.conftest import DM, GUILD, run_script


def read_error(path, **options) -> str:
    with pytest.raises(ChatcloneError) as info:
        channels, _ = read_channels([path], ReadOptions(**options), progress=False)
        for c in channels:
            list(c.messages)
    text = str(info.value)
    assert "\n" not in text
    assert str(path) in text
    return text


def test_truncated_json_names_line_and_count(shared, tmp_path):
    data = (shared / (DM + ".json")).read_bytes()
    cut = tmp_path / "Direct Messages - Orrin [1118608583297251434].json"
    cut.write_bytes(data[: len(data) // 2])
    text = read_error(cut)
    assert "truncated" in text and "allow_truncated=true" in text
    assert f"{cut}:" in text  # a line number follows the path


def test_truncated_json_allowed_keeps_complete_messages(shared, tmp_path):
    data = (shared / (DM + ".json")).read_bytes()
    cut = tmp_path / "dm.json"
    cut.write_bytes(data[: len(data) // 2])
    options = ReadOptions(allow_truncated=True)
    channels, _ = read_channels([cut], options, progress=False)
    assert 20 < len(channels[0].messages) < 40
    assert "truncated" in options.warnings[0]


def test_non_dce_json(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"hello": [1, 2, 3]}')
    assert "not a DiscordChatExporter JSON export" in read_error(path)


def test_json_message_without_author(shared, tmp_path):
    text = (shared / (GUILD + ".json")).read_text(encoding="utf-8")
    path = tmp_path / "broken.json"
    path.write_text(text.replace('"author": {', '"writer": {', 1), encoding="utf-8")
    assert "(message 1)" in read_error(path)


def test_malformed_json_inside_a_message(shared, tmp_path):
    text = (shared / (GUILD + ".json")).read_text(encoding="utf-8")
    path = tmp_path / "broken.json"
    path.write_text(text.replace('"isPinned": false,', '"isPinned": fals,', 3), encoding="utf-8")
    assert "malformed JSON" in read_error(path)


def test_csv_broken_quoting(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text(
        "AuthorID,Author,Date,Content,Attachments,Reactions\n"
        '"1","a","2025-03-27T19:02:14.3810000+01:00","fine","",""\n'
        '"1","a","2025-03-27T19:03:14.3810000+01:00","bad "quote" here","",""\n',
        encoding="utf-8",
    )
    text = read_error(path)
    assert "quoting" in text and f"{path}:3" in text


def test_csv_missing_columns(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text('AuthorID,Author,Content\n"1","a","hi"\n', encoding="utf-8")
    text = read_error(path)
    assert "Date" in text and f"{path}:1" in text


def test_csv_bad_date(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text('AuthorID,Author,Date,Content,Attachments,Reactions\n"1","a","yesterday","hi","",""\n')
    assert f"{path}:2" in read_error(path)


def test_txt_unreadable_header(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("Guild: Direct Messages\nChannel: Orrin\n\n[3/27/2025 7:02 PM] a\nhi\n")
    assert "unreadable TXT header" in read_error(path)


def test_txt_truncated(shared, tmp_path):
    lines = (shared / (DM + ".txt")).read_text(encoding="utf-8").split("\n")
    path = tmp_path / "x.txt"
    path.write_text("\n".join(lines[:60]), encoding="utf-8")
    assert "truncated TXT export" in read_error(path)


@pytest.mark.parametrize("ext", [".json", ".csv", ".txt", ".html"])
def test_empty_file(tmp_path, ext):
    path = tmp_path / ("empty" + ext)
    path.write_bytes(b"")
    assert "empty" in read_error(path)


def test_missing_path(tmp_path):
    assert "no such file or folder" in read_error(tmp_path / "nope")


@pytest.mark.parametrize("ext", [".csv", ".txt"])
def test_unknown_encoding(shared, tmp_path, ext):
    path = tmp_path / ("utf16" + ext)
    path.write_bytes((shared / (DM + ext)).read_text(encoding="utf-8").encode("utf-16"))
    assert "UTF-8" in read_error(path)


def test_unknown_extension(tmp_path):
    path = tmp_path / "x.docx"
    path.write_text("hello")
    assert "unknown export format" in read_error(path)


def test_script_prints_one_line_and_exits_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("nothing,useful\n1,2\n")
    result = run_script(
        "process_messages", f"input={bad}", "target=x", "progress=false", f"outputs_root={tmp_path / 'out'}"
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and str(bad) in result.stderr
