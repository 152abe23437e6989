"""discord_bot.py: the policy (addressing, limits, context, replies) on real message data from the sample exports,
the backends (in-process with a real tiny model, serve.py's wire format over httpx's in-memory transport), the
discord.py client built without connecting, the token, and the config. No network, no mocks of chatclone's code.

The sample exports become the messages a bot would read back from Discord: the target's messages are the bot's own,
labelled `<Name> (AI clone): ...`, and mentions and custom emoji are turned back into Discord's raw tokens
(`<@id>`, `<a:name:id>`) from the export's own `mentions` and `inlineEmojis`, as the Discord API delivers them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from datetime import datetime
from pathlib import Path

import pytest

import chatclone.config  # noqa: F401  (registers the schemas)
from chatclone import runs
from chatclone.bot.addressing import FORGET, REPLY, Addressing, Places
from chatclone.bot.backends import Http, InProcess
from chatclone.bot.clones import BotClone, clone_id, find_clones, process_rules
from chatclone.bot.context import Context, Rules, channel_context, openai_messages
from chatclone.bot.credentials import TOKEN_ENV, read_token, token_arguments
from chatclone.bot.limits import CAP, COOLDOWN, Limits, OneAtATime
from chatclone.bot.records import ChannelMessage
from chatclone.bot.replies import DISCORD_LIMIT, FORGET_NOTICE, read_label, reply_messages, split_text
from chatclone.bot.service import CONVERSATIONS, CloneService
from chatclone.chat_records import read_records
from chatclone.config.discord_bot import DiscordBotConfig
from chatclone.config.process_messages import CleaningConfig, SegmentationConfig
from chatclone.errors import ChatcloneError
from chatclone.stages.discord_bot import discord_bot
from chatclone.stages.process_messages import process_messages
from tests.conftest import DM, GUILD, SHARED, TARGET_ID, compose, make_config, quiet, run_script

BOT_ID = 1400000000000000001
LABEL = "AI clone"
TEXT_OF_TURN_MARKERS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>")


def fake_token(user_id: int = BOT_ID) -> str:
    """A token of a bot token's shape (nobody's: Discord would refuse it)."""
    first = base64.urlsafe_b64encode(str(user_id).encode()).decode().rstrip("=")
    return f"{first}.GhJkLm.{'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6'}"


# --- the sample exports as the messages a bot reads back from Discord -----------------------------------------

API_TYPES = {
    "Default": 0,
    "Reply": 19,
    "Call": 3,
    "ChannelPinnedMessage": 6,
    "GuildMemberJoin": 7,
    "ThreadCreated": 18,
    "20": 20,
}  # DiscordChatExporter's message types -> Discord API message types
BOT_USER = {
    "id": str(BOT_ID),
    "username": "chatclone",
    "discriminator": "0",
    "global_name": None,
    "avatar": None,
    "bot": True,
}


def export_messages(name: str, target_name: str) -> list[ChannelMessage]:
    """Every message of a sample export as the bot would read it from Discord: rebuilt as the Discord API's message
    payload (raw `<@id>` and `<a:emoji:id>` tokens from the export's own mentions and inline emoji; the target's
    messages posted by the bot with the clone's label), made a real discord.Message, and translated by the glue."""
    import discord

    from chatclone.bot.client import channel_message, intents

    export = json.loads((SHARED / f"{name}.json").read_text(encoding="utf-8"))
    state = discord.Client(intents=intents())._connection
    channel_id, guild_id = export["channel"]["id"], export["guild"]["id"]
    if guild_id == "0":  # a DM
        channel = discord.DMChannel(
            me=discord.ClientUser(state=state, data=BOT_USER),
            state=state,
            data={"id": channel_id, "type": 1, "recipients": []},
        )
    else:
        guild = discord.Guild(data={"id": guild_id, "name": export["guild"]["name"]}, state=state)
        channel = discord.TextChannel(
            state=state,
            guild=guild,
            data={"id": channel_id, "type": 0, "position": 0, "name": export["channel"]["name"]},
        )
    payloads = {m["id"]: api_payload(m, target_name, channel_id, guild_id != "0") for m in export["messages"]}
    out = []
    for m in export["messages"]:
        payload = dict(payloads[m["id"]])
        if m["type"] == "Reply" and (m.get("reference") or {}).get("messageId"):
            payload["message_reference"] = {
                "type": 0,
                "message_id": m["reference"]["messageId"],
                "channel_id": channel_id,
            }
            payload["referenced_message"] = payloads.get(m["reference"]["messageId"])
        out.append(channel_message(discord.Message(state=state, channel=channel, data=payload)))
    return out


def api_payload(m: dict, target_name: str, channel_id: str, in_guild: bool) -> dict:
    """A DiscordChatExporter JSON message as the Discord API sends it."""

    def user(author: dict) -> dict:
        nick = author.get("nickname")
        data = {
            "id": author["id"],
            "username": author["name"],
            "discriminator": "0",
            "avatar": None,
            "global_name": None if in_guild or nick == author["name"] else nick,
            "bot": author.get("isBot", False),
        }
        if in_guild:
            data["member"] = {
                "nick": None if nick == author["name"] else nick,
                "roles": [],
                "deaf": False,
                "mute": False,
                "flags": 0,
                "joined_at": "2025-01-01T00:00:00+00:00",
            }
        return data

    is_target = m["author"]["id"] == TARGET_ID
    author = BOT_USER if is_target else user(m["author"])
    payload = {
        "id": m["id"],
        "channel_id": channel_id,
        "type": API_TYPES[m["type"]],
        "timestamp": m["timestamp"],
        "content": f"{target_name} ({LABEL}): {m['content']}" if is_target else discord_raw(m["content"], m),
        "author": {k: v for k, v in author.items() if k != "member"},
        "mentions": [user(u) for u in m.get("mentions", [])],
        "mention_roles": [],
        "pinned": False,
        "tts": False,
        "mention_everyone": False,
        "embeds": [],
        "edited_timestamp": None,
        "attachments": [
            {
                "id": a["id"],
                "filename": a["fileName"],
                "size": a["fileSizeBytes"],
                "url": a["url"],
                "proxy_url": a["url"],
            }
            for a in m.get("attachments", [])
        ],
        "sticker_items": [{"id": st["id"], "name": st["name"], "format_type": 1} for st in m.get("stickers", [])],
    }
    if in_guild and "member" in author:
        payload["member"] = author["member"]
    return payload


def discord_raw(content: str, meta: dict) -> str:
    """DiscordChatExporter's rendered text back in Discord's raw form: `@Name` -> `<@id>`, `:emoji:` ->
    `<:emoji:id>` (`<a:...>` when animated), from the export's own mentions and inline emoji."""
    for user in meta.get("mentions", []):
        content = content.replace("@" + (user.get("nickname") or user["name"]), f"<@{user['id']}>")
    for emoji in meta.get("inlineEmojis", []):
        if emoji.get("id"):
            token = f"<{'a' if emoji.get('isAnimated') else ''}:{emoji['name']}:{emoji['id']}>"
            content = content.replace(f":{emoji['name']}:", token)
    return content


@pytest.fixture(scope="module")
def guild_messages() -> list[ChannelMessage]:
    return export_messages(GUILD, "tam")


@pytest.fixture(scope="module")
def dm_messages() -> list[ChannelMessage]:
    return export_messages(DM, "Tamsin")


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """process_messages runs of the two sample channels (the training data the bot must match)."""
    root = tmp_path_factory.mktemp("bot-processed")
    dirs = {}
    for name in (DM, GUILD):
        dirs[name] = root / name[:20]
        process_messages(make_config([SHARED / f"{name}.json"]), dirs[name], console=quiet())
    return dirs


def rules(**segmentation) -> Rules:
    return Rules(CleaningConfig(), SegmentationConfig(**segmentation), LABEL)


def turns(context: Context) -> list[tuple[str, str, str]]:
    return [(m["role"], m["name"], m["content"]) for m in context.messages]


def test_the_glue_translates_discord_messages(guild_messages, dm_messages):
    by_name = {m.username: m for m in guild_messages}
    assert (by_name["pip.marsh"].display, by_name["ezraloom"].display) == ("Pippa", "ezraloom")
    assert by_name["Lanternkeeper"].is_bot and not by_name["pip.marsh"].is_bot
    assert {m.guild_id for m in guild_messages} == {888880572137955508} and all(m.is_dm for m in dm_messages)
    assert any(m.system for m in guild_messages) and any(m.attachments for m in guild_messages)
    to_clone = [m for m in guild_messages if m.reply_to_author == BOT_ID]
    assert to_clone and all(m.reply_to_content.startswith("tam (AI clone): ") for m in to_clone)
    welcome = next(m for m in guild_messages if "grab a role" in m.content)
    assert welcome.mentions == {1312811829431557830: "Marlow"} and welcome.reply_to is None
    assert sum(m.author_id == BOT_ID for m in dm_messages) == 35 and len(dm_messages) == 61


# --- context: a channel's history rendered exactly as in training ----------------------------------------------


@pytest.mark.parametrize("name, clone", [(DM, "Tamsin"), (GUILD, "tam")])
def test_context_equals_the_training_records(name, clone, processed, dm_messages, guild_messages):
    """For every training window, the bot's context after the same messages (read back from Discord, the target's
    posted by the bot) is the window's conversation: same speakers, merged turns, cleaned text."""
    history = {DM: dm_messages, GUILD: guild_messages}[name]
    rule = process_rules(processed[name], LABEL)
    keep = rule.segmentation.max_turns - 1
    records = [
        r
        for split in ("train", "validation")
        if (processed[name] / f"{split}.jsonl").exists()
        for r in read_records(processed[name] / f"{split}.jsonl")
    ]
    assert len(records) >= 2
    for record in records:
        end = datetime.fromisoformat(record.end.replace("Z", "+00:00")).timestamp()
        seen = [m for m in history if m.ts < end + 1]
        got = turns(channel_context(seen, clone, [clone], BOT_ID, rule))
        want = [(m.role, m.name, m.content) for m in record.messages]
        k = min(len(want), keep)
        assert got[-k:] == want[-k:], record.id
        if record.id.endswith("-w0") and len(want) <= keep:
            assert got == want, record.id


def test_raw_mentions_and_custom_emoji_are_cleaned_as_in_training(guild_messages):
    welcome = next(m for m in guild_messages if "grab a role" in m.content)
    dance = next(m for m in guild_messages if "lets gooo" in m.content)
    assert "<@1312811829431557830>" in welcome.content and "<a:lanterndance:" in dance.content  # Discord's raw form
    got = [
        c
        for _, _, c in turns(
            channel_context(guild_messages[: guild_messages.index(dance) + 1], "tam", ["tam"], BOT_ID, rules())
        )
    ]
    text = "\n".join(got)
    assert "welcome @Marlow! grab a role in #roles" in text and ":lanterndance: lets gooo" in text
    assert "<@" not in text and "<a:" not in text
    assert "!weather" not in text and "Oslo" not in text  # a prefix command and the bot's answer: dropped


def test_context_starts_after_the_last_silence_and_forget(dm_messages):
    rule = rules()
    gap = rule.segmentation.session_gap_minutes * 60
    cut = next(i for i in range(1, len(dm_messages)) if dm_messages[i].ts - dm_messages[i - 1].ts > gap)
    after = channel_context(dm_messages[: cut + 1], "Tamsin", ["Tamsin"], BOT_ID, rule)
    assert len(after.messages) == 1 and after.speakers == ["Orrin"]  # the message after a 38.5 h silence, alone
    history = dm_messages[:8]
    whole = channel_context(history, "Tamsin", ["Tamsin"], BOT_ID, rule)
    assert len(whole.messages) > 2
    orrin = next(m for m in history if not m.is_bot)
    forget = ChannelMessage(
        id=1,
        channel_id=orrin.channel_id,
        author_id=orrin.author_id,
        username=orrin.username,
        display=orrin.display,
        content="!forget",
        ts=history[4].ts + 1,
    )
    notice = ChannelMessage(
        id=2,
        channel_id=orrin.channel_id,
        author_id=BOT_ID,
        username="bot",
        display="bot",
        content=FORGET_NOTICE,
        ts=history[4].ts + 1,
        is_bot=True,
    )
    for boundary in (forget, notice):
        fresh = channel_context([*history[:5], boundary, *history[5:]], "Tamsin", ["Tamsin"], BOT_ID, rule)
        assert turns(fresh) == turns(channel_context(history[5:], "Tamsin", ["Tamsin"], BOT_ID, rule))
        assert len(fresh.messages) < len(whole.messages)


def test_another_clone_is_another_speaker_and_other_bots_are_dropped(guild_messages):
    """With two clones, one clone's messages are a named speaker in the other's context."""
    history = guild_messages[:12]
    as_pippa = [
        ChannelMessage(
            **{**m.__dict__, "author_id": BOT_ID, "is_bot": True, "content": f"Pippa ({LABEL}): {m.content}"}
        )
        if m.display == "Pippa"
        else m
        for m in history
    ]
    for_tam = channel_context(as_pippa, "tam", ["tam", "Pippa"], BOT_ID, rules())
    for_pippa = channel_context(as_pippa, "Pippa", ["tam", "Pippa"], BOT_ID, rules())
    assert ("user", "Pippa") in {(r, n) for r, n, _ in turns(for_tam)}
    assert ("assistant", "Pippa") in {(r, n) for r, n, _ in turns(for_pippa)}
    assert ("user", "tam") in {(r, n) for r, n, _ in turns(for_pippa)}
    assert "Lanternkeeper" not in for_tam.speakers + for_pippa.speakers


def test_openai_messages_name_every_speaker(dm_messages):
    context = channel_context(dm_messages[:8], "Tamsin", ["Tamsin"], BOT_ID, rules())
    messages = openai_messages(context.messages)
    assert {m["role"] for m in messages} == {"user", "assistant"}
    assert all(m["name"] == ("Tamsin" if m["role"] == "assistant" else "Orrin") for m in messages)
    assert [m["content"] for m in messages] == [m["content"] for m in context.messages]


# --- addressing: who is addressed, and where ----------------------------------------------------------------------


def addressing(**places) -> Addressing:
    where = Places.of(places.get("guilds", []), places.get("channels", [888880580528273654]), places.get("dms", False))
    return Addressing(["tam", "Pippa"], BOT_ID, LABEL, where)


def said(message: ChannelMessage, content: str, **changes) -> ChannelMessage:
    return ChannelMessage(
        **{
            **message.__dict__,
            "content": content,
            "reply_to": None,
            "reply_to_author": None,
            "reply_to_content": None,
            "mentions": {},
            **changes,
        }
    )


def test_called_by_name_replied_to_or_mentioned(guild_messages):
    ezra = next(m for m in guild_messages if m.username == "ezraloom" and not m.is_bot)
    decide = addressing().decide
    cases = {
        "tam, are you coming?": "tam",
        "TAM: ramen?": "tam",
        "pippa!": "Pippa",
        "hey tam how was it": "tam",
        "are you coming, pippa?": "Pippa",
        "Pippa": "Pippa",
        "i saw tam yesterday": None,
        "tamale time": None,
        ezra.content: None,
    }
    for text, clone in cases.items():
        got = decide(said(ezra, text))
        assert (got.clone if got else None) == clone, text
    pippa_post = next(m for m in guild_messages if m.display == "Pippa")
    reply = said(
        ezra,
        "haha yes",
        reply_to=pippa_post.id,
        reply_to_author=BOT_ID,
        reply_to_content=f"Pippa ({LABEL}): {pippa_post.content}",
    )
    assert decide(reply).clone == "Pippa" and decide(reply).how == "reply"
    assert decide(said(ezra, "<@1400000000000000001> you there?", mentions={BOT_ID: "bot"})).clone == "tam"
    assert decide(said(ezra, "<@1400000000000000001> is pippa around?", mentions={BOT_ID: "bot"})).clone == "Pippa"
    assert decide(said(ezra, "!forget")).action == FORGET and decide(said(ezra, "tam, hi")).action == REPLY


def test_bots_itself_system_and_unlisted_places_are_never_answered(guild_messages, dm_messages):
    ezra = next(m for m in guild_messages if m.username == "ezraloom" and not m.is_bot)
    keeper = next(m for m in guild_messages if m.username.startswith("Lanternkeeper"))
    joined = next(m for m in guild_messages if m.system)
    decide = addressing().decide
    assert decide(said(keeper, "tam, are you coming?")) is None
    assert decide(said(ezra, "tam, hi", author_id=BOT_ID)) is None
    assert decide(said(joined, "tam, hi")) is None
    elsewhere = said(ezra, "tam, hi", channel_id=5, guild_id=6)
    assert decide(elsewhere) is None
    assert addressing(guilds=[6], channels=[]).decide(elsewhere).clone == "tam"
    assert addressing(channels=[77]).decide(said(ezra, "tam, hi", channel_id=78, parent_id=77)).clone == "tam"
    orrin = next(m for m in dm_messages if not m.is_bot)
    assert orrin.is_dm and decide(said(orrin, "tam, hi")) is None
    assert addressing(dms=True).decide(said(orrin, "tam, hi")).clone == "tam"
    assert addressing(dms=True).decide(said(orrin, "free saturday?")).how == "dm"  # a DM is to the bot
    assert addressing(dms=True).decide(said(orrin, "is pippa free saturday?")).clone == "Pippa"
    assert addressing(channels=[]).decide(said(ezra, "tam, hi")) is None  # nothing listed: nowhere


# --- limits: cooldowns, the per-minute cap, one generation at a time ----------------------------------------------


def test_cooldown_per_channel_and_cap_per_minute():
    now = [0.0]
    limits = Limits(cooldown_s=20, per_minute=3, clock=lambda: now[0])
    assert limits.take(1) is None and limits.take(1) == COOLDOWN and limits.take(2) is None
    now[0] = 19.9
    assert limits.take(1) == COOLDOWN and limits.wait(1) == pytest.approx(0.1)
    now[0] = 20.0
    assert limits.take(1) is None  # a third reply this minute
    assert limits.take(3) == CAP  # the fourth waits for the minute to pass
    now[0] = 60.0
    assert limits.take(3) is None and limits.take(4) is None  # the two replies at 0 s have left the window
    assert limits.take(5) == CAP  # the one at 20 s has not


def test_one_generation_at_a_time_and_a_full_queue_refuses():
    async def scenario() -> tuple[list[str], list[bool], int]:
        jobs, order, running, peak = OneAtATime(size=2), [], [0], [0]
        release = asyncio.Event()

        def job(name: str):
            async def run() -> None:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
                await release.wait()
                order.append(name)
                running[0] -= 1

            return run

        async def broken() -> None:
            raise RuntimeError("backend down")

        worker = asyncio.ensure_future(jobs.work())
        offered = [jobs.offer(job("a"))]
        await asyncio.sleep(0)  # the worker takes "a"; two may wait
        offered += [jobs.offer(broken), jobs.offer(job("b")), jobs.offer(job("c"))]
        release.set()
        await jobs.queue.join()
        worker.cancel()
        return order, offered, peak[0] * 10 + jobs.failed

    order, offered, peak_failed = asyncio.run(scenario())
    assert offered == [True, True, True, False] and order == ["a", "b"] and peak_failed == 11


# --- replies: the label and Discord's 2,000 characters ------------------------------------------------------------


def test_long_replies_split_on_lines_then_words_each_labelled(dm_messages):
    words = " ".join(m.content for m in dm_messages if m.content) * 8
    posts = reply_messages("Tamsin", words, LABEL)
    assert len(posts) > 2 and all(len(p) <= DISCORD_LIMIT for p in posts)
    assert all(p.startswith("Tamsin (AI clone): ") for p in posts)
    assert " ".join(read_label(p, ["Tamsin"], LABEL)[1] for p in posts).split() == words.split()
    lines = "\n".join(["a" * 1200, "b" * 700, "c" * 300])
    assert split_text(lines, 1980) == ["a" * 1200 + "\n" + "b" * 700, "c" * 300]
    assert split_text("x" * 4500, 2000) == ["x" * 2000, "x" * 2000, "x" * 500]
    assert reply_messages("Tamsin", "  ", LABEL) == [] and read_label("Tamsin: hi", ["Tamsin"], LABEL) is None


# --- backends -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bot_root(clone_root: Path) -> Path:
    """outputs_root with one finished train run of the tiny Llama on the bundled DM (conftest's clone_root)."""
    return clone_root


def bot_cfg(root: Path, *overrides: str, clones: str = "[latest]") -> DiscordBotConfig:
    return compose(
        "discord_bot",
        [
            f"outputs_root={root}",
            f"clones={clones}",
            "channels=[888880580528273654]",
            "sampling.max_new_tokens=8",
            "seed=0",
            *overrides,
        ],
    )


def test_in_process_backend_answers_a_channel_as_in_training(bot_root, dm_messages):
    cfg = bot_cfg(bot_root)
    [clone] = find_clones(cfg)
    assert (clone.name, clone.id) == ("Tamsin", "tamsin") and clone.rules.segmentation.session_gap_minutes == 60
    backend = InProcess([clone], cfg)
    context = channel_context(dm_messages[:8], clone.name, [clone.name], BOT_ID, clone.rules)
    loaded = backend.sessions["Tamsin"].clone
    system = {"role": "system", "content": loaded.spec.format.style.system_prompt}
    rendered = [system] + [
        {"role": m["role"], "content": m["content"] if m["role"] == "assistant" else f"{m['name']}: {m['content']}"}
        for m in context.messages
    ]
    assert backend.prompt(clone, context) == loaded.tokenizer.apply_chat_template(
        rendered, tokenize=False, add_generation_prompt=True
    )
    first = backend.reply(clone, context)
    again = backend.reply(clone, Context(context.messages[:1], context.speakers))
    for text in (first, again):
        assert isinstance(text, str) and not any(marker in text for marker in TEXT_OF_TURN_MARKERS)
        assert not any(line.lstrip().startswith("Orrin:") for line in text.split("\n"))
    assert backend.sessions["Tamsin"].history[:1] == context.messages[:1]  # each reply from its own context


def served(body_seen: list, reply: dict | None = None, models: tuple[str, ...] = ("tamsin",), status: int = 200):
    import httpx

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": m, "object": "model"} for m in models]})
        body_seen.append(json.loads(request.content))
        return httpx.Response(
            status,
            json=reply
            or {
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": " yesss\nsaturday! "},
                    }
                ]
            },
        )

    return httpx.MockTransport(handle)


def test_http_backend_speaks_openai_chat_completions(dm_messages):
    import httpx

    cfg = DiscordBotConfig(clones=["x"], backend="http://127.0.0.1:8000", seed=3)
    clone = BotClone("Tamsin", clone_id("Tamsin"), "x", None, rules())
    context = channel_context(dm_messages[:8], "Tamsin", ["Tamsin"], BOT_ID, rules())
    seen: list = []
    http = Http(cfg.backend, 5, cfg.sampling, cfg.seed, transport=served(seen))
    http.check([clone])
    assert http.reply(clone, context) == "yesss\nsaturday!"
    [body] = seen
    assert body["model"] == "tamsin" and body["messages"] == openai_messages(context.messages)
    assert body["max_tokens"] == cfg.sampling.max_new_tokens and body["seed"] == 3 and body["n"] == 1
    cut = {"choices": [{"finish_reason": "length", "message": {"role": "assistant", "content": "i was going to"}}]}
    assert Http(cfg.backend, 5, cfg.sampling, transport=served([], cut)).reply(clone, context) == "i was going to…"
    with pytest.raises(ChatcloneError, match="serves orrin, not tamsin: start serve.py"):
        Http(cfg.backend, 5, cfg.sampling, transport=served([], models=("orrin",))).check([clone])
    with pytest.raises(ChatcloneError, match="HTTP 500"):
        Http(cfg.backend, 5, cfg.sampling, transport=served([], status=500)).reply(clone, context)

    def refused(request):
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with pytest.raises(ChatcloneError, match=r"ConnectError: \[Errno 111\] Connection refused \(is serve.py running"):
        Http(cfg.backend, 2, cfg.sampling, transport=httpx.MockTransport(refused)).check([clone])


def test_nothing_left_to_answer_asks_no_backend(guild_messages):
    """A history with nothing a clone could answer after cleaning (a bot's message, a prefix command) gets no
    reply, without a backend being asked (there is none here)."""
    clone = BotClone("tam", "tam", "x", None, rules())
    service = CloneService(DiscordBotConfig(clones=["x"]), [clone], None, Path("."))
    service.connected(BOT_ID)
    command = next(m for m in guild_messages if m.content.startswith("!weather"))
    keeper = next(m for m in guild_messages if m.username.startswith("Lanternkeeper"))
    assert service.answer("tam", [command, keeper]) == [] and service.counts == {"no_reply": 1}


# --- the discord.py client, built without connecting --------------------------------------------------------------


def test_client_has_the_intents_and_commands_without_connecting(bot_root):
    from chatclone.bot.client import CloneClient

    cfg = bot_cfg(bot_root)
    service = CloneService(cfg, find_clones(cfg), None, bot_root)
    client = CloneClient(service)
    intents = client.intents
    assert intents.message_content and intents.guilds and intents.guild_messages and intents.dm_messages
    assert not intents.members and not intents.presences  # nothing privileged beyond message content
    commands = {c.name: c for c in client.tree.get_commands()}
    assert set(commands) == {"as", "forget"}
    options = {p.name: p for p in commands["as"].parameters}
    assert set(options) == {"clone", "text"} and [c.value for c in options["clone"].choices] == ["Tamsin"]
    assert client.allowed_mentions.everyone is False and client.allowed_mentions.users is False
    assert client.ws is None and not client.is_ready() and client.user is None


# --- the token, the config and the stage --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token, why",
    [
        (None, "DISCORD_TOKEN is not set"),
        ("  ", "DISCORD_TOKEN is not set"),
        ("Bot " + fake_token(), "`Bot `"),
        ("mfa.abcdefghijklmnopqrstuvwxyz0123456789", "user account's token"),
        ("not-a-token", "does not look like"),
        ("aGVsbG8gd29ybGQhIQ.GhJkLm.a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6", "does not look like"),
    ],
)  # part 1 is no id
def test_a_missing_or_malformed_token_is_one_line(token, why):
    with pytest.raises(ChatcloneError, match=why) as error:
        read_token({} if token is None else {TOKEN_ENV: token})
    assert "\n" not in str(error.value) and (not (token or "").strip() or token.strip() not in str(error.value))


def test_token_checks_come_before_any_clone_loads(tmp_path):
    cfg = DiscordBotConfig(clones=[str(tmp_path / "no such run")], channels=["1"], outputs_root=str(tmp_path))
    with pytest.raises(ChatcloneError, match="DISCORD_TOKEN is not set"):
        discord_bot(cfg, tmp_path / "run", environ={})
    assert not (tmp_path / "run").exists()
    with pytest.raises(ChatcloneError, match="clones: .*no such run"):  # a good token: the clones come next
        discord_bot(cfg, tmp_path / "run2", environ={TOKEN_ENV: fake_token()})
    assert read_token({TOKEN_ENV: fake_token() + "\n"}) == fake_token()


def test_the_script_refuses_a_token_on_the_command_line_and_without_one(tmp_path):
    # none of this shell's variables but PATH and HOME: no DISCORD_TOKEN
    env = {**dict.fromkeys(os.environ), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for args, says in (
        [["token=abc.def.ghi"], "token=...: the bot token is never taken from the command line"],
        [[], "DISCORD_TOKEN is not set"],
    ):
        done = run_script("discord_bot", f"outputs_root={tmp_path}", "clones=[latest]", *args, env=env)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], (
            done.stderr
        )
        assert "abc.def.ghi" not in done.stderr and done.stdout == ""
    assert token_arguments(["channels=[1]", "DISCORD_TOKEN=x", "-m", "+bot.token=y"]) == ["discord_token", "bot.token"]


def test_help_shows_usage_and_only_the_sampling_group():
    done = run_script("discord_bot", "--help")
    assert done.returncode == 0, done.stderr
    head, rest = done.stdout.split("== Configuration groups (group=option) ==\n")
    assert "export DISCORD_TOKEN=" in head and "python discord_bot.py clones=[outputs/train/<run>]" in head
    groups = rest.split("\n\n== Config")[0].splitlines()
    assert groups == ["sampling: creative, default, focused, greedy   (now: default)"]


def test_config_composes_with_ids_as_text_and_bad_values_name_the_key():
    cfg = compose("discord_bot", ["clones=[latest]", "channels=[888880580528273654]", "guilds=[1,2]"])
    assert isinstance(cfg, DiscordBotConfig) and cfg.channels == ["888880580528273654"] and cfg.guilds == ["1", "2"]
    assert cfg.dms is False and cfg.log_conversations is False and cfg.in_process
    cfg.check()
    bad = {
        "cooldown_s": -1,
        "replies_per_minute": 0,
        "queue_size": 0,
        "max_context_messages": 0,
        "ai_label": " ",
        "backend": "ftp://x",
        "channels": ["#general"],
        "clones": [],
        "reply_attempts": 0,
    }
    for key, value in bad.items():
        wrong = compose("discord_bot", ["clones=[latest]"])
        setattr(wrong, key, value)
        with pytest.raises(ChatcloneError, match=key):
            wrong.check()
    with pytest.raises(Exception, match="token"):  # the schema has no token key: a config file cannot hold one
        compose("discord_bot", ["token=abc"])


def test_the_stage_runs_the_bot_and_writes_nothing_from_discord(bot_root, dm_messages, tmp_path, capsys):
    """The stage end to end with `connect` in place of Discord's gateway: the clone loads in process, the client is
    built, a channel's history is answered with labelled posts, and the run holds counts only, unless
    log_conversations=true."""
    history = dm_messages[:8]
    orrin_said = history[0].content
    assert not history[0].is_bot and "http" not in orrin_said
    for log, run in ((False, tmp_path / "quiet"), (True, tmp_path / "logged")):
        posts: list[str] = []

        def connect(client, token: str, posts: list[str] = posts) -> None:
            assert token == fake_token() and client.intents.message_content
            client.service.connected(BOT_ID)
            posts.extend(client.service.answer("Tamsin", history))

        summary = discord_bot(
            bot_cfg(bot_root, f"log_conversations={str(log).lower()}"),
            run,
            environ={TOKEN_ENV: fake_token()},
            connect=connect,
        )
        assert all(p.startswith("Tamsin (AI clone): ") and len(p) <= DISCORD_LIMIT for p in posts)
        assert sum(summary["counts"].values()) == 1 and summary["clones"]["Tamsin"]["id"] == "tamsin"
        manifest = runs.read_manifest(run)
        assert manifest["stage"] == "discord_bot" and "DISCORD_TOKEN" not in json.dumps(manifest)
        assert (run / CONVERSATIONS).exists() is log and manifest["outputs"] == ([CONVERSATIONS] if log else [])
        written = "".join(p.read_text(encoding="utf-8") for p in run.rglob("*") if p.is_file())
        assert (orrin_said in written) is log and fake_token() not in written
    assert "answer nowhere" not in capsys.readouterr().err
    with pytest.raises(ChatcloneError, match="clones: .* are both clones of Tamsin"):
        find_clones(bot_cfg(bot_root, clones=f"[latest,{bot_root / 'train' / 'run'}]"))


def test_answering_nowhere_is_warned_at_start(bot_root, tmp_path, capsys):
    discord_bot(
        bot_cfg(bot_root, "channels=[]"),
        tmp_path / "run",
        environ={TOKEN_ENV: fake_token()},
        connect=lambda client, token: None,
    )
    assert "the bot will answer nowhere" in capsys.readouterr().err


def test_http_backend_against_a_real_serve_py_renders_the_same_prompt(bot_root, dm_messages, tmp_path):
    """backend=http://...: the bot's context, sent to a real serve.py as OpenAI messages, comes back to the same
    history (serve's to_history) and is rendered to the same prompt as the in-process backend renders (the server's
    usage.prompt_tokens = the in-process prompt's tokens): one rendering path either way."""
    from chatclone.serving.messages import Speakers, to_history
    from tests.serving_helpers import Server

    server = Server(tmp_path / "serve", [f"outputs_root={bot_root}", "clones=[latest]", "sampling=greedy"])
    try:
        cfg = bot_cfg(bot_root, f"backend={server.url}")
        [clone] = find_clones(cfg)
        context = channel_context(dm_messages[:8], clone.name, [clone.name], BOT_ID, clone.rules)
        partner = clone.spec.partners[0]
        assert (
            to_history(
                openai_messages(context.messages), Speakers(clone.name, partner, clone.spec.format.style.system_prompt)
            )
            == context.messages
        )
        http = Http(server.url, 60, cfg.sampling, seed=0)
        http.check([clone])
        text = http.reply(clone, context)
        assert isinstance(text, str) and not any(marker in text for marker in TEXT_OF_TURN_MARKERS)
        answer = http.client.post("/v1/chat/completions", json=http.request(clone, context)).json()
        local = InProcess([clone], bot_cfg(bot_root))
        prompt = local.prompt(clone, context)
        tokens = local.sessions[clone.name].clone.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert answer["usage"]["prompt_tokens"] == len(tokens)
    finally:
        server.stop()
