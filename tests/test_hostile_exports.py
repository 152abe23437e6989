"""Hostile exports at the reader level: wrong-type JSON fields (in DCE's fixed layout and minified), dates
outside Python's range in every format, HTML messages that would vanish, TXT lines that look like headers,
a null channel id, CSV oddities. Each is refused with one line naming the file and the line and/or message
(never a traceback, never a silently changed conversation) or read correctly."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from chatclone.errors import ChatcloneError
from chatclone.exports import ReadOptions, read_channels
from chatclone.exports.csv_reader import read_csv
from chatclone.exports.json_reader import _has_fixed_layout, read_json
from chatclone.exports.txt_reader import read_txt
from chatclone.stages.process_messages import process_messages
from tests.conftest import DM, ROOT, make_config, quiet, read_jsonl, run_script

HTML = ROOT / "tests" / "fixtures" / "html"
SECOND_ID = "1354878597316749483"  # DM message 2: Tamsin's "yesss", line 46 of the 2-space layout
CSV_HEADER = "AuthorID,Author,Date,Content,Attachments,Reactions\n"
CSV_ROW = '"607216646228391176","tamsin.vale","2025-03-27T19:02:14.3810000+01:00","hi","",""\n'


def read_error(path: Path, **options) -> str:
    """The one-line error reading `path` gives (it must name the file)."""
    with pytest.raises(ChatcloneError) as info:
        channels, _ = read_channels([path], ReadOptions(**options), progress=False)
        for c in channels:
            list(c.messages)
    text = str(info.value)
    assert "\n" not in text and "Traceback" not in text
    assert text.startswith(str(path))
    return text


def dm_doc(shared: Path) -> dict:
    return json.loads((shared / f"{DM}.json").read_text(encoding="utf-8"))


def write_json(path: Path, doc: dict, minified: bool) -> Path:
    """DCE's 2-space layout (the reader's fast path) or a minified re-save (its ijson path)."""
    path.write_text(json.dumps(doc, separators=(",", ":")) if minified else json.dumps(doc, indent=2), encoding="utf-8")
    assert _has_fixed_layout(path.read_bytes()[: 1 << 16]) is not minified
    return path


def set_field(doc: dict, dotted: str, value, index: int = 1) -> dict:
    """The DM document with one field of message `index` (0-based) set; `...=DELETE` removes it. A
    forwardedMessage field comes with the Forward reference that makes the reader look at it."""
    holder = doc["messages"][index]
    if dotted.startswith("forwardedMessage"):
        holder["reference"] = {
            "messageId": "1354878196147711561",
            "channelId": "1118608583297251434",
            "guildId": None,
            "type": "Forward",
        }
    *parents, leaf = dotted.split(".")
    for name in parents:
        holder = holder.setdefault(name, {})
    if value is DELETE:
        del holder[leaf]
    else:
        holder[leaf] = value
    return doc


DELETE = object()
LAYOUTS = pytest.mark.parametrize("minified", [False, True], ids=["dce-layout", "minified"])

# ---------------------------------------------------------------- 1. wrong-type fields in JSON

WRONG_TYPES = [
    ("content", None, '"content" is null, expected a string'),
    ("content", 5, '"content" is the number 5, expected a string'),
    ("content", {"text": "yesss"}, '"content" is an object, expected a string'),
    ("content", DELETE, '"content" is missing'),
    ("author.name", None, '"author.name" is null, expected a string'),
    ("author.name", 7, '"author.name" is the number 7, expected a string'),
    ("author.name", {}, '"author.name" is an object, expected a string'),
    ("author.name", "", '"author.name" is empty'),
    ("author.id", None, '"author.id" is null, expected a string of digits'),
    ("author.id", 607216646228391176, '"author.id" is the number 607216646228391176, expected a string of digits'),
    ("author.nickname", 3, '"author.nickname" is the number 3, expected a string'),
    ("author.nickname", ["Tamsin"], '"author.nickname" is an array, expected a string'),
    ("author.discriminator", 7342, '"author.discriminator" is the number 7342, expected a string'),
    ("author.isBot", "false", "\"author.isBot\" is 'false', expected true or false"),
    ("author.isBot", None, '"author.isBot" is null, expected true or false'),
    ("author.isBot", 0, '"author.isBot" is the number 0, expected true or false'),
    ("author", "tamsin.vale", "\"author\" is 'tamsin.vale', expected an object"),
    ("timestamp", 5, '"timestamp" is the number 5, expected a date'),
    ("timestamp", "yesterday", "\"timestamp\" 'yesterday' is no ISO 8601 date"),
    ("timestamp", "2025-03-27T19:03:50.027", "\"timestamp\" '2025-03-27T19:03:50.027' has no UTC offset"),
    ("type", None, '"type" is null, expected a string'),
    ("type", 19, '"type" is the number 19, expected a string'),
    ("id", 5, '"id" is the number 5, expected a string of digits'),
    ("id", "abc", "\"id\" is 'abc', expected a string of digits"),
    ("attachments", "photo.jpg", "\"attachments\" is 'photo.jpg', expected an array"),
    ("stickers", 2, '"stickers" is the number 2, expected an array'),
    ("reference", "1354878196147711561", "\"reference\" is '1354878196147711561', expected an object"),
    ("reference.type", 0, '"reference.type" is the number 0, expected a string'),
    ("forwardedMessage", [], '"forwardedMessage" is an array, expected an object'),
    ("forwardedMessage.content", 5, '"forwardedMessage.content" is the number 5, expected a string'),
]


@LAYOUTS
@pytest.mark.parametrize("field, value, expected", WRONG_TYPES, ids=[f"{f}={v!r}" for f, v, _ in WRONG_TYPES])
def test_wrong_type_field_names_file_message_and_field(shared, tmp_path, minified, field, value, expected):
    path = write_json(tmp_path / f"{DM}.json", set_field(dm_doc(shared), field, value), minified)
    text = read_error(path)
    assert expected in text
    assert "(message 2)" in text
    if field != "id":
        assert f"(message id {SECOND_ID})" in text
    if not minified:
        assert text.startswith(f"{path}:46 ")  # the line where the message object starts


@pytest.mark.parametrize("field, value, expected", WRONG_TYPES[::4], ids=[f"{f}={v!r}" for f, v, _ in WRONG_TYPES[::4]])
def test_both_json_paths_give_the_same_error(shared, tmp_path, field, value, expected):
    doc = set_field(dm_doc(shared), field, value)
    fixed = read_error(write_json(tmp_path / "a [1118608583297251434].json", doc, minified=False))
    minified = read_error(write_json(tmp_path / "b [1118608583297251434].json", doc, minified=True))
    assert fixed[fixed.index(" (message ") :] == minified[minified.index(" (message ") :]  # same words after path:line


@LAYOUTS
def test_reply_target_of_the_wrong_type(shared, tmp_path, minified):
    doc = set_field(dm_doc(shared), "reference.messageId", 1355201457452400771, index=10)  # message 11, a reply
    text = read_error(write_json(tmp_path / f"{DM}.json", doc, minified))
    assert '(message 11): not a DiscordChatExporter message: "reference.messageId" is the number' in text


def test_a_message_that_is_no_object(shared, tmp_path):
    doc = dm_doc(shared)
    doc["messages"][3] = 42
    text = read_error(write_json(tmp_path / f"{DM}.json", doc, minified=True))
    assert "(message 4)" in text and "a message is the number 42, expected an object" in text


def test_malformed_minified_json_is_one_line(shared, tmp_path):
    """ijson's C backend appends the text and a caret on further lines: only the first is kept."""
    path = write_json(tmp_path / f"{DM}.json", dm_doc(shared), minified=True)
    text = path.read_text(encoding="utf-8")
    at = [i for i in range(len(text)) if text.startswith('"isPinned":false', i)][4]  # in message 5
    path.write_text(text[:at] + '"isPinned":fals' + text[at + len('"isPinned":false') :], encoding="utf-8")
    assert re.search(r": malformed JSON after message [0-4]: \S", read_error(path))  # the count ijson reached


@LAYOUTS
def test_nulls_dce_may_write_still_read(shared, tmp_path, minified):
    """Optional fields may be null or absent: nickname, discriminator, reference, attachments, isBot."""
    doc = dm_doc(shared)
    for field, value in [
        ("author.nickname", None),
        ("author.discriminator", None),
        ("reference", None),
        ("attachments", None),
        ("stickers", DELETE),
        ("author.isBot", DELETE),
    ]:
        set_field(doc, field, value)
    _, messages = read_json(write_json(tmp_path / f"{DM}.json", doc, minified), ReadOptions())
    messages = list(messages)
    second = messages[1]
    assert len(messages) == 61 and second.content == "yesss" and second.author_id == "607216646228391176"
    assert (second.username, second.display, second.is_bot, second.attachments) == (
        "tamsin.vale",
        "tamsin.vale",
        False,
        0,
    )


def test_minified_copy_reads_like_the_original(shared, tmp_path):
    _, original = read_json(shared / f"{DM}.json", ReadOptions())
    _, minified = read_json(write_json(tmp_path / f"{DM}.json", dm_doc(shared), minified=True), ReadOptions())
    assert list(original) == list(minified)


@pytest.mark.parametrize(
    "field, value",
    [("content", None), ("author.name", 7), ("author.nickname", {}), ("timestamp", "9999-12-31T23:00:00-05:00")],
)
def test_process_messages_stops_with_one_line_and_writes_no_split(shared, tmp_path, field, value):
    path = write_json(tmp_path / f"{DM}.json", set_field(dm_doc(shared), field, value), minified=False)
    run_dir = tmp_path / "run"
    with pytest.raises(ChatcloneError) as info:
        process_messages(make_config([path]), run_dir, console=quiet())
    assert str(info.value).startswith(f"{path}:46 (message 2)") and "\n" not in str(info.value)
    assert not (run_dir / "train.jsonl").exists() and not (run_dir / "manifest.json").exists()


def test_script_exits_2_on_a_wrong_type_field(shared, tmp_path):
    path = write_json(tmp_path / "dm.json", set_field(dm_doc(shared), "content", None), minified=True)
    result = run_script(
        "process_messages", f"input={path}", "target=tamsin.vale", "progress=false", f"outputs_root={tmp_path / 'out'}"
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {path} (message 2)") and '"content" is null' in result.stderr


# ---------------------------------------------------------------- 2. dates outside Python's range

OUT_OF_RANGE = "outside the dates a message can have"


@LAYOUTS
@pytest.mark.parametrize(
    "stamp, expected",
    [
        ("9999-12-31T23:00:00-05:00", OUT_OF_RANGE),  # year 10000 in UTC
        ("0001-01-01T00:30:00+05:00", OUT_OF_RANGE),  # year 0 in UTC
        ("0000-01-01T00:00:00+00:00", "year 0 is out of range"),
        ("2025-03-27T19:03:50+25:00", "is no ISO 8601 date"),
    ],
)
def test_json_timestamp_out_of_range(shared, tmp_path, minified, stamp, expected):
    path = write_json(tmp_path / f"{DM}.json", set_field(dm_doc(shared), "timestamp", stamp), minified)
    text = read_error(path)
    assert expected in text and "(message 2)" in text and f"(message id {SECOND_ID})" in text


@pytest.mark.parametrize(
    "date, expected",
    [
        ("9999-12-31T23:59:00.0000000-05:00", f"is {OUT_OF_RANGE}"),
        ("0001-01-01T00:10:00.0000000+05:00", f"is {OUT_OF_RANGE}"),
        ("0000-01-01T00:10:00.0000000+00:00", "is no ISO 8601 date (year 0 is out of range)"),
        ("99999999999999999999", f"is {OUT_OF_RANGE}"),  # --dateformat unixms, absurd
        ("12/31/9999 11:59 PM", f"is {OUT_OF_RANGE}"),  # old text date, New York: UTC year 10000
        ("banana", "unreadable date 'banana'"),
    ],
)
def test_csv_date_out_of_range_or_unreadable(tmp_path, date, expected):
    path = tmp_path / f"{DM}.csv"
    path.write_text(CSV_HEADER + CSV_ROW + CSV_ROW.replace("2025-03-27T19:02:14.3810000+01:00", date), encoding="utf-8")
    text = read_error(path, timezone="America/New_York")
    assert text.startswith(f"{path}:3: ") and expected in text


def txt_with_second_header(shared: Path, header: str) -> str:
    text = (shared / f"{DM}.txt").read_text(encoding="utf-8")
    old = "[3/27/2025 7:03\u202fPM] tamsin.vale\nyesss\n"
    assert text.count(old) == 1
    return text.replace(old, f"{header}\nyesss\n")


@pytest.mark.parametrize(
    "date, zone",
    [
        ("12/31/9999 11:59 PM", "America/New_York"),
        ("1/1/0001 12:30 AM", "Asia/Tokyo"),
        ("1/1/0000 1:00 AM", "UTC"),
        ("99999999999999999999", "UTC"),
    ],
)
def test_txt_date_out_of_range(shared, tmp_path, date, zone):
    path = tmp_path / f"{DM}.txt"
    path.write_text(txt_with_second_header(shared, f"[{date}] tamsin.vale"), encoding="utf-8")
    text = read_error(path, timezone=zone)
    assert text.startswith(f"{path}:10: message header: date '{date}' is {OUT_OF_RANGE}")


def test_txt_four_digit_year_is_not_taken_for_two_digits(shared, tmp_path):
    path = tmp_path / f"{DM}.txt"
    path.write_text(txt_with_second_header(shared, "[1/3/0001 12:00 PM] tamsin.vale"), encoding="utf-8")
    _, messages = read_txt(path, ReadOptions(date_order="mdy"))
    second = list(messages)[1]
    assert second.ts == datetime(1, 1, 3, 12, tzinfo=timezone.utc).timestamp()  # year 1, not 2001


def test_txt_out_of_range_stops_process_messages_before_writing(shared, tmp_path):
    path = tmp_path / f"{DM}.txt"
    path.write_text(txt_with_second_header(shared, "[12/31/9999 11:59 PM] tamsin.vale"), encoding="utf-8")
    run_dir = tmp_path / "run"
    with pytest.raises(ChatcloneError, match=OUT_OF_RANGE):
        process_messages(make_config([path], reading={"timezone": "America/New_York"}), run_dir, console=quiet())
    assert not (run_dir / "train.jsonl").exists()


def test_html_snowflake_beyond_64_bits(tmp_path):
    page = (HTML / f"{DM}.html").read_text(encoding="utf-8")
    path = tmp_path / f"{DM}.html"
    path.write_text(
        page.replace(f"data-message-id={SECOND_ID}", "data-message-id=99999999999999999999999"), encoding="utf-8"
    )
    text = read_error(path)
    assert "(message 2): bad data-message-id '99999999999999999999999'" in text


# ---------------------------------------------------------------- 3. HTML: no message may vanish


def html_copy(tmp_path: Path, old: str, new: str, count: int = 1) -> Path:
    page = (HTML / f"{DM}.html").read_text(encoding="utf-8")
    assert old in page
    path = tmp_path / f"{DM}.html"
    path.write_text(page.replace(old, new, count), encoding="utf-8")
    return path


def test_html_message_without_id_names_its_place_author_and_time(tmp_path):
    path = html_copy(tmp_path, " data-message-id=1354878622001253942", "")  # message 3, second of its group
    text = read_error(path)
    assert text.startswith(f"{path}:5 (message 3): a message element without data-message-id")
    assert f"after message {SECOND_ID}" in text and "by Tamsin" in text and "at 7:03" in text


def test_html_first_message_of_a_group_without_id(tmp_path):
    path = html_copy(tmp_path, f" data-message-id={SECOND_ID}", "")
    text = read_error(path)
    assert "(message 2): a message element without data-message-id (first in its group, by Tamsin" in text


def test_html_postamble_count_must_match(tmp_path):
    text = read_error(html_copy(tmp_path, "Exported 61 message(s)", "Exported 1,062 message(s)"))
    assert "postamble says 'Exported 1,062 message(s)' but 61 messages were read" in text


def test_html_group_cut_out_of_the_page(tmp_path):
    page = (HTML / f"{DM}.html").read_text(encoding="utf-8")
    groups = page.split("\n<div class=chatlog__message-group>")
    path = tmp_path / f"{DM}.html"
    path.write_text("\n<div class=chatlog__message-group>".join(groups[:3] + groups[4:]), encoding="utf-8")
    assert "postamble says 'Exported 61 message(s)' but" in read_error(path)


# ---------------------------------------------------------------- 4. TXT: lines that look like headers

LOOKALIKE = "[3/27/2025 7:06\u202fPM] orrin.byrd"


def txt_copy(shared: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = (shared / f"{DM}.txt").read_text(encoding="utf-8")
    assert text.count(old) == 1
    path = tmp_path / f"{DM}.txt"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def read_txt_messages(path: Path, **options) -> list:
    _, messages = read_txt(path, ReadOptions(**options))
    return list(messages)


@pytest.mark.parametrize(
    "body",
    [f"yesss\n\n{LOOKALIKE}\nnot orrin", f"{LOOKALIKE}\nyesss"],
    ids=["after-one-blank-line", "first-content-line"],
)
def test_txt_header_lookalike_inside_a_body_stays_body_text(shared, tmp_path, body):
    path = txt_copy(shared, tmp_path, "tamsin.vale\nyesss\n", f"tamsin.vale\n{body}\n")
    messages = read_txt_messages(path)
    assert len(messages) == 61
    assert (messages[1].username, messages[1].content) == ("tamsin.vale", body)


def test_txt_lookalike_where_a_header_goes_is_refused_naming_the_line(shared, tmp_path):
    """Two blank lines inside a message, then a header-like line: the layout cannot tell; the footer can."""
    path = txt_copy(shared, tmp_path, "tamsin.vale\nyesss\n", f"tamsin.vale\nyesss\n\n\n{LOOKALIKE}\nnot orrin\n")
    text = read_error(path)
    assert text.startswith(f"{path}:14: footer says 61 messages but 62 message headers were found")
    assert "line 14 looks like a header" in text


@pytest.mark.parametrize("date", ["3/27/2025 7:03 XM", "yesterday"])
def test_txt_header_with_unreadable_date_is_refused(shared, tmp_path, date):
    """Not absorbed into the message before it: the footer's count says the line is a header."""
    path = txt_copy(shared, tmp_path, "[3/27/2025 7:03\u202fPM] tamsin.vale\nyesss", f"[{date}] tamsin.vale\nyesss")
    assert read_error(path).startswith(f"{path}:10: message header with an unreadable date '{date}'")


def test_txt_unreadable_bracket_line_is_body_text_when_the_footer_agrees(shared, tmp_path):
    path = txt_copy(shared, tmp_path, "tamsin.vale\nyesss\n", "tamsin.vale\nyesss\n\n\n[note] me\n")
    messages = read_txt_messages(path)
    assert len(messages) == 61 and messages[1].content == "yesss\n\n\n[note] me"


def test_txt_unreadable_header_date_without_footer_is_refused(shared, tmp_path):
    lines = txt_with_second_header(shared, "[yesterday] tamsin.vale").split("\n")
    path = tmp_path / f"{DM}.txt"
    path.write_text("\n".join(lines[:60]), encoding="utf-8")
    text = read_error(path, allow_truncated=True)
    assert text.startswith(f"{path}:10: message header with an unreadable date 'yesterday'")


def test_txt_footer_count_mismatch_is_an_error(shared, tmp_path):
    path = txt_copy(shared, tmp_path, "Exported 61 message(s)", "Exported 60 message(s)")
    text = read_error(path)
    assert "footer says 60 messages but 61 message headers were found" in text


# ---------------------------------------------------------------- 5. JSON header fields


@pytest.mark.parametrize("value", [None, DELETE], ids=["null", "missing"])
def test_null_channel_id_comes_from_the_file_name(shared, tmp_path, value):
    doc = dm_doc(shared)
    if value is DELETE:
        del doc["channel"]["id"]
    else:
        doc["channel"]["id"] = value
    path = write_json(tmp_path / f"{DM}.json", doc, minified=False)
    header, _ = read_json(path, ReadOptions())
    assert header.channel_id == "1118608583297251434" and header.name == "Direct Messages / Orrin"
    run_dir = tmp_path / "run"
    process_messages(make_config([path]), run_dir, console=quiet())
    ids = {r["channel_id"] for r in read_jsonl(run_dir / "train.jsonl")}
    assert ids == {"1118608583297251434"}


def test_null_channel_id_and_no_id_in_the_file_name(shared, tmp_path):
    doc = dm_doc(shared)
    doc["channel"]["id"] = None
    text = read_error(write_json(tmp_path / "orrin.json", doc, minified=False))
    assert '"channel.id" is null or missing and the file name has no [channel id]' in text


@pytest.mark.parametrize(
    "part, key, value, expected",
    [
        ("channel", "id", 1118608583297251434, '"channel.id" is the number 1118608583297251434, expected a string'),
        ("channel", "id", "general", "\"channel.id\" is 'general', expected a string of digits"),
        ("channel", "name", {"en": "Orrin"}, '"channel.name" is an object, expected a string or null'),
        ("channel", "category", 7, '"channel.category" is the number 7, expected a string or null'),
        ("channel", "type", ["DirectTextChat"], '"channel.type" is an array, expected a string or null'),
        ("guild", "name", 0, '"guild.name" is the number 0, expected a string or null'),
        ("guild", "id", 0, '"guild.id" is the number 0, expected a string or null'),
    ],
)
def test_wrong_type_header_field(shared, tmp_path, part, key, value, expected):
    doc = dm_doc(shared)
    doc[part][key] = value
    text = read_error(write_json(tmp_path / f"{DM}.json", doc, minified=False))
    assert f"unreadable JSON header: {expected}" in text


def test_guild_that_is_no_object(shared, tmp_path):
    doc = dm_doc(shared)
    doc["guild"] = "Direct Messages"
    assert "\"guild\" is 'Direct Messages', expected an object" in read_error(
        write_json(tmp_path / f"{DM}.json", doc, minified=False)
    )


def test_null_header_names_never_read_none(shared, tmp_path):
    doc = dm_doc(shared)
    doc["guild"]["name"] = doc["channel"]["name"] = doc["channel"]["type"] = None
    header, _ = read_json(write_json(tmp_path / f"{DM}.json", doc, minified=False), ReadOptions())
    assert header.name == "? / 1118608583297251434" and header.is_dm  # guild id "0" still says DM
    assert "None" not in header.name


# ---------------------------------------------------------------- CSV


@pytest.mark.parametrize(
    "row, expected",
    [
        ('"607216646228391176","","2025-03-27T19:03:14.3810000+01:00","hi","",""\n', "empty Author"),
        ('"607216646228391176","  ","2025-03-27T19:03:14.3810000+01:00","hi","",""\n', "empty Author"),
        ('"tamsin","tamsin.vale","2025-03-27T19:03:14.3810000+01:00","hi","",""\n', "AuthorID 'tamsin' is no user id"),
        ('"607216646228391176","tamsin.vale","","hi","",""\n', "unreadable date ''"),
    ],
)
def test_csv_bad_fields_are_one_line(tmp_path, row, expected):
    path = tmp_path / f"{DM}.csv"
    path.write_text(CSV_HEADER + CSV_ROW + row, encoding="utf-8")
    text = read_error(path)
    assert text.startswith(f"{path}:3: ") and expected in text


def test_csv_iso_date_without_offset_reads_in_the_configured_zone(tmp_path):
    path = tmp_path / f"{DM}.csv"
    path.write_text(CSV_HEADER + CSV_ROW.replace("+01:00", ""), encoding="utf-8")
    _, messages = read_csv(path, ReadOptions(timezone="Europe/Berlin"))
    assert list(messages)[0].ts == datetime(2025, 3, 27, 18, 2, 14, 381000, tzinfo=timezone.utc).timestamp()
