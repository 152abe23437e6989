"""Each cleaning rule, on hand-made messages, with the counts it reports."""

from __future__ import annotations

import pytest

from chatclone.cleaning import Cleaner
from chatclone.config.process_messages import CleaningConfig, MediaPolicy, MentionPolicy, UrlPolicy
from chatclone.exports.records import Kind, Message


def msg(content="hi", author="1", kind=Kind.DEFAULT, ts=0.0, **kw) -> Message:
    return Message(
        channel="c",
        id=None,
        author_id=author,
        username=f"user{author}",
        display=f"User{author}",
        is_bot=kw.pop("is_bot", False),
        kind=kind,
        ts=ts,
        content=content,
        **kw,
    )


def run(messages, **cfg):
    cleaner = Cleaner(CleaningConfig(**cfg))
    kept = list(cleaner.clean(messages, {"1": "User1", "2": "Tamsin"}))
    return [m.content for m in kept], cleaner


def test_whole_message_rules():
    messages = [
        msg("Pinned a message.", kind=Kind.SYSTEM),
        msg("beep", is_bot=True),
        msg("result", kind=Kind.COMMAND_RESPONSE),
        msg("", kind=Kind.FORWARD, forwarded="their words"),
        msg("!weather oslo"),
        msg("/roll d20"),
        msg("!!! wow"),
        msg("...ok"),
        msg("kept"),
    ]
    kept, cleaner = run(messages)
    assert kept == ["!!! wow", "...ok", "kept"]
    assert cleaner.removed == {"system": 1, "bots": 2, "forwards": 1, "commands": 2}


def test_switches_off_keep_messages():
    messages = [
        msg("Pinned a message.", kind=Kind.SYSTEM),
        msg("!weather"),
        msg("", kind=Kind.FORWARD, forwarded="their words"),
    ]
    kept, _ = run(messages, drop_system=False, drop_commands=False, drop_forwards=False)
    assert kept == ["Pinned a message.", "!weather", "their words"]


def test_extra_bots_by_username_or_id():
    kept, cleaner = run([msg("hi", author="9"), msg("yo", author="3")], extra_bots=["user9"])
    assert kept == ["yo"] and cleaner.removed["bots"] == 1


@pytest.mark.parametrize("policy, expected", [(MediaPolicy.drop, []), (MediaPolicy.placeholder, ["<attachment>"])])
def test_media_only(policy, expected):
    kept, cleaner = run([msg("", attachments=1), msg("", stickers=1)][:1], media_only=policy)
    assert kept == expected


def test_urls():
    text = "look https://example.com/a?b=1, nice"
    assert run([msg(text)], urls=UrlPolicy.keep)[0] == [text]
    assert run([msg(text)])[0] == ["look <url>, nice"]
    assert run([msg(text)], urls=UrlPolicy.drop)[0] == ["look , nice"]
    assert run([msg("https://tenor.com/x.gif")], urls=UrlPolicy.drop)[1].removed["empty"] == 1


def test_raw_discord_tokens_are_rendered():
    kept, cleaner = run([msg("<@2> look <:frogwave:123> <a:dance:456> in <#77> for <@&5>")], urls=UrlPolicy.keep)
    assert kept == ["@Tamsin look :frogwave: :dance: in #channel for @role"]
    assert cleaner.changed["custom_emoji"] == 2


def test_mentions_policy():
    assert run([msg("hey @Tamsin!")], mentions=MentionPolicy.name)[0] == ["hey Tamsin!"]
    assert run([msg("hey @Tamsin!")], mentions=MentionPolicy.placeholder)[0] == ["hey @user!"]
    assert run([msg("hey @Tamsin!")])[0] == ["hey @Tamsin!"]


def test_pii_scrubbing():
    text = "mail me at tam.vale+x@example.co.uk or call +44 20 7946 0958, at 12:30 on 2025-03-27, ~14 km"
    kept, cleaner = run([msg(text)])
    assert kept == ["mail me at <email> or call <phone>, at 12:30 on 2025-03-27, ~14 km"]
    assert cleaner.changed == {"emails": 1, "phones": 1}
    assert run([msg(text)], scrub_pii=False)[0] == [text]


def test_length_bounds():
    kept, cleaner = run([msg("k"), msg("ok"), msg("x" * 50)], min_chars=2, max_chars=10)
    assert kept == ["ok"] and cleaner.removed == {"too_short": 1, "too_long": 1}


def test_repeats_within_window_by_same_author():
    messages = [msg("spam", ts=0), msg("spam", ts=30), msg("spam", author="2", ts=40), msg("spam", ts=3600)]
    kept, cleaner = run(messages)
    assert kept == ["spam", "spam", "spam"] and cleaner.removed["repeats"] == 1
    assert len(run(messages, drop_repeats=False)[0]) == 4
