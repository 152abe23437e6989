"""HTML reader: the synthetic DCE HTML fixtures against the JSON samples they were made from, and bad input."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from chatclone.errors import ChatcloneError
from chatclone.exports import html_reader
from chatclone.exports.html_reader import read_html
from chatclone.exports.json_reader import read_json
from chatclone.exports.records import Kind
from chatclone.exports.sources import ReadOptions

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "html"
DM = "Direct Messages - Orrin [1118608583297251434]"
GUILD = "Lantern Hollow - Text Channels - general [888880580528273654]"
EXPECTED_AUTHORS = {
    DM: {"tamsin.vale": 35, "orrin.byrd": 26},
    GUILD: {"tamsin.vale": 12, "pip.marsh": 10, "ezraloom": 9, "marlow_k": 6, "Lanternkeeper#7342": 4},
}
# What HTML cannot carry, by message id: DCE hides the text of a message that is only the link of its
# gifv/image embed, and a reply to a deleted message shows no id to scroll to.
HIDDEN_LINK = 1355594950267926356  # DM 30, the Tenor link
DELETED_REPLY = 1359947304022220997  # guild 23, reply to a deleted poll
COMPARED = (
    "id",
    "author_id",
    "username",
    "display",
    "is_bot",
    "kind",
    "content",
    "reply_to",
    "attachments",
    "stickers",
    "forwarded",
    "order",
    "channel",
)


def read(path: Path, options: ReadOptions | None = None):
    header, messages = read_html(path, options or ReadOptions())
    return header, list(messages)


@pytest.mark.parametrize("stem", [DM, GUILD])
def test_counts_and_authors(stem):
    _, messages = read(FIXTURES / f"{stem}.html")
    page = (FIXTURES / f"{stem}.html").read_text(encoding="utf-8")
    assert page.count("<div class=chatlog__message-group>") < len(messages)  # authors are carried forward
    assert len(messages) == sum(EXPECTED_AUTHORS[stem].values())
    assert Counter(m.username for m in messages) == EXPECTED_AUTHORS[stem]
    assert [m.order for m in messages] == list(range(len(messages)))


def test_headers():
    dm, _ = read(FIXTURES / f"{DM}.html")
    guild, _ = read(FIXTURES / f"{GUILD}.html")
    assert (dm.channel_id, dm.is_dm, dm.name) == ("1118608583297251434", True, "Direct Messages / Orrin")
    assert (guild.channel_id, guild.is_dm, guild.name) == (
        "888880580528273654",
        False,
        "Lantern Hollow / Text Channels / general",
    )


@pytest.mark.parametrize("stem", [DM, GUILD])
def test_every_message_matches_json(shared, stem):
    json_header, json_messages = read_json(shared / f"{stem}.json", ReadOptions())
    html_header, html_messages = read(FIXTURES / f"{stem}.html")
    json_messages = list(json_messages)
    assert html_header.channel_key == json_header.channel_key and html_header.name == json_header.name
    assert len(html_messages) == len(json_messages)
    for h, j in zip(html_messages, json_messages):
        assert round(h.ts * 1000) == round(j.ts * 1000), h.id  # snowflake time == JSON timestamp, to the ms
        expected = {f: getattr(j, f) for f in COMPARED}
        if j.id == HIDDEN_LINK:
            assert j.content.startswith("https://tenor.com/") and h.content == ""
            expected["content"] = ""
        if j.id == DELETED_REPLY:
            assert j.reply_to == 1359935628012187457 and h.reply_to is None
            expected["reply_to"] = None
        assert {f: getattr(h, f) for f in COMPARED} == expected, h.id


def test_guild_special_messages():
    _, messages = read(FIXTURES / f"{GUILD}.html")
    by_id = {m.id: m for m in messages}
    bot_reply, command = by_id[1359936732842848797], by_id[1359944275177092055]
    forward = by_id[1359953674563280502]
    assert bot_reply.is_bot and bot_reply.kind is Kind.DEFAULT and bot_reply.reply_to == 1359936730529512916
    assert bot_reply.content == "☁️ **Oslo**: 6°C, light rain"
    assert command.kind is Kind.COMMAND_RESPONSE and command.reply_to is None and command.is_bot
    assert forward.kind is Kind.FORWARD and forward.content == ""
    assert forward.forwarded == "Reminder: the community garden opens Saturday 10:00 🌱"
    assert by_id[1359943817400429762].content == ":lanterndance: lets gooo"  # animated custom emoji
    assert by_id[1359941374111502338].content == "welcome @Marlow! grab a role in #roles"
    assert by_id[1359954715734421241].content == "ok so far:\n- me\n- ezra\n- marlow (driving)\nanyone else?"
    assert [m.content for m in messages if m.kind is Kind.SYSTEM] == [
        "Joined the server.",
        "Started a thread.",
        "Pinned a message.",
    ]
    assert by_id[1359961170374670913].attachments == 1
    assert by_id[1359943513939894280].content == "@Regulars reminder!"


def test_dm_special_messages():
    _, messages = read(FIXTURES / f"{DM}.html")
    by_id = {m.id: m for m in messages}
    assert by_id[1354883413829955686].content == ":frogwave: ty ty"  # custom emoji alt
    assert by_id[1356581655670840644].content == "🧑\u200d🍳 i'll make the soup"  # ZWJ emoji alt
    assert by_id[1356580523945524271].content == "||i was absolutely ready for a fight though||"
    assert by_id[1355974403019943712].content.endswith("Tuesday, April 1, 2025 6:00\u202fPM")
    assert by_id[1355469793730265599].stickers == 1
    assert by_id[1354882714580964211].attachments == 1 and by_id[1354882714580964211].content == ""
    assert [m.content for m in messages if m.kind is Kind.SYSTEM] == [
        "Pinned a message.",
        "Started a call that lasted 23 minutes.",
    ]
    assert not any(m.is_bot for m in messages)


def test_windows_line_ends_read_the_same(tmp_path):
    """A Windows export ends each written line with CRLF while content newlines stay LF."""
    lf = FIXTURES / f"{DM}.html"
    crlf = tmp_path / lf.name
    crlf.write_bytes(lf.read_bytes().replace(b"</div>\n", b"</div>\r\n"))
    assert [m.content for m in read(crlf)[1]] == [m.content for m in read(lf)[1]]


@pytest.mark.parametrize("block", [1, 97, 4096])
def test_small_read_blocks_give_the_same_messages(monkeypatch, block):
    """Group openings and the chatlog opening may straddle read blocks."""
    whole = read(FIXTURES / f"{GUILD}.html")[1]
    monkeypatch.setattr(html_reader, "BLOCK", block)
    assert read(FIXTURES / f"{GUILD}.html")[1] == whole


def test_fixtures_match_their_generator(shared, tmp_path):
    spec = importlib.util.spec_from_file_location("make_html_fixtures", FIXTURES / "make_html_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for stem in (DM, GUILD):
        doc = json.loads((shared / f"{stem}.json").read_text(encoding="utf-8"))
        assert module.Page(doc).render() == (FIXTURES / f"{stem}.html").read_text(encoding="utf-8"), stem


OLD_LAYOUT = """<!DOCTYPE html><html><head><title>Lantern Hollow - general</title></head><body>
<div class=preamble><div class=preamble__entries-container><div class=preamble__entry>Lantern Hollow</div>
<div class=preamble__entry>Text / general</div></div></div><div class=chatlog>
<div class=chatlog__message-group><div class=chatlog__reference><span class=chatlog__reference-name title=pip.marsh>Pippa</span>
<div class=chatlog__reference-content><span class=chatlog__reference-link onclick="scrollToMessage(event, '1359937334693687990')">hi</span></div></div>
<div class=chatlog__messages><span class=chatlog__author-name title="Lanternkeeper#7342" data-user-id=889473466370589577>Lanternkeeper</span>
<span class=chatlog__bot-tag>BOT</span><span class=chatlog__timestamp>10-Apr-25 05:06 PM</span>
<div class=chatlog__message data-message-id=1359937484710749683><div class=chatlog__content><div class=markdown><span class=preserve-whitespace>first <span class="spoiler-text spoiler-text--hidden">line</span>
<img class="emoji " alt="lanterncat" title="lanterncat" src="x.png"></span></div></div></div>
<div class=chatlog__message data-message-id=1359937641440850689><div class=chatlog__content><div class=markdown><span class=preserve-whitespace>second</span></div></div>
<div class=chatlog__attachment><a href=a.png><img class=chatlog__attachment-media src=a.png></a></div></div></div></div>
</div>
<div class=postamble><div class=postamble__entry>Exported 2 message(s)</div></div></body></html>
"""


def test_old_layout_up_to_2_33(tmp_path):
    path = tmp_path / "Lantern Hollow - Text - general [888880580528273654].html"
    path.write_text(OLD_LAYOUT, encoding="utf-8")
    header, messages = read(path)
    assert header.name == "Lantern Hollow / Text / general" and not header.is_dm
    first, second = messages
    assert (first.username, first.display, first.author_id, first.is_bot) == (
        "Lanternkeeper#7342",
        "Lanternkeeper",
        "889473466370589577",
        True,
    )
    assert first.content == "first ||line||\n:lanterncat:" and first.reply_to == 1359937334693687990
    assert second.username == "Lanternkeeper#7342" and second.reply_to is None and second.attachments == 1


def _write(tmp_path: Path, text: str, name: str = "Some Guild - general [888880580528273654].html") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_one_line_error(path: Path, match: str, options: ReadOptions | None = None):
    with pytest.raises(ChatcloneError, match=match) as caught:
        read(path, options)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(str(path))
    return text


def test_empty_file(tmp_path):
    assert_one_line_error(_write(tmp_path, ""), "empty file")
    assert_one_line_error(_write(tmp_path, "  \n\n"), "empty file")


def test_random_html_page(tmp_path):
    page = "<!DOCTYPE html><html><head><title>Recipes</title></head><body><div class=content>soup</div></body></html>"
    assert_one_line_error(_write(tmp_path, page), "not a DiscordChatExporter HTML export")


def test_not_utf8(tmp_path):
    path = tmp_path / "x [888880580528273654].html"
    path.write_bytes(b"<html>\xff\xfe<div class=chatlog>")
    assert_one_line_error(path, "not UTF-8")


def test_truncated_export(tmp_path):
    full = (FIXTURES / f"{GUILD}.html").read_text(encoding="utf-8")
    cut = full.index("data-message-id=1359961493879719240") + 200  # inside message 36's group
    path = _write(tmp_path, full[:cut])
    text = assert_one_line_error(path, "truncated export: it stops after 35 complete messages")
    assert ":" in text[len(str(path)) :]  # the line number follows the file name
    options = ReadOptions(allow_truncated=True)
    _, messages = read(path, options)
    assert len(messages) == 35 and messages[-1].id == 1359961170374670913
    assert len(options.warnings) == 1 and "truncated" in options.warnings[0]


def test_truncated_at_a_group_boundary_keeps_the_last_group(tmp_path):
    full = (FIXTURES / f"{GUILD}.html").read_text(encoding="utf-8")
    path = _write(tmp_path, full[: full.index("\n</div>\n<div class=postamble>") + 1])
    assert_one_line_error(path, "truncated export: it stops after 41 complete")
    _, messages = read(path, ReadOptions(allow_truncated=True))
    assert len(messages) == 41


def test_bad_message_id_names_file_and_message(tmp_path):
    full = (FIXTURES / f"{DM}.html").read_text(encoding="utf-8")
    broken = full.replace("data-message-id=1354878622001253942", "data-message-id=abc")
    path = _write(tmp_path, broken, f"{DM}.html")
    assert_one_line_error(path, r"\(message 3\): bad data-message-id 'abc'")


def test_empty_channel(tmp_path):
    full = (FIXTURES / f"{DM}.html").read_text(encoding="utf-8")
    start = full.index("<div class=chatlog__message-group>")
    end = full.index("\n</div>\n<div class=postamble>")
    page = full[:start] + full[end + 1 :].replace("Exported 61 message(s)", "Exported 0 message(s)")
    header, messages = read(_write(tmp_path, page, f"{DM}.html"))
    assert header.is_dm and messages == []
