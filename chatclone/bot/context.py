"""A channel's recent messages -> the conversation a clone answers, made exactly as its training data was made.

The history (oldest first, ending with the message being answered) becomes process_messages' own `Message`
records and goes through the same `Cleaner` (with the clone's training run's `cleaning` settings: raw mentions and
custom emoji rendered as DiscordChatExporter renders them, bots, commands and system messages dropped, URLs and
PII scrubbed, ...) and the same segmentation (`conversations.sessions`, with the run's `segmentation` settings:
consecutive messages of one speaker merged, the conversation starting after the last silence longer than the
session gap, a reply's original as context). The bot's own messages are read back by their label as the clone that
wrote them: the answering clone's are its own (assistant) turns, another clone's are that speaker's. Nothing before
the last `!forget` or `/forget` is used.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from chatclone.bot.addressing import FORGET_COMMAND
from chatclone.bot.records import ChannelMessage
from chatclone.bot.replies import is_forget_notice, read_label
from chatclone.chat_records import ASSISTANT, USER
from chatclone.cleaning import Cleaner
from chatclone.config.process_messages import CleaningConfig, SegmentationConfig
from chatclone.conversations import sessions
from chatclone.exports.records import Kind, Message

CLONE_AUTHOR = "clone:"  # author ids of the bot's labelled messages: one speaker per clone


@dataclass
class Context:
    messages: list[dict]  # process_messages-style {"role", "name", "content"}; the answering clone is `assistant`
    speakers: list[str]  # everyone else who speaks in it, first appearance first


@dataclass(frozen=True)
class Rules:
    """How a clone's training data was made (its process_messages run's settings), and how the bot labels."""

    cleaning: CleaningConfig
    segmentation: SegmentationConfig
    ai_label: str


def channel_context(history: list[ChannelMessage], clone: str, names: list[str], bot_id: int, rules: Rules) -> Context:
    """The conversation `clone` answers after `history` (oldest first; its last message is the one answered).
    `names` are all the bot's clones; `bot_id` is the bot account's user id."""
    history = history[_start(history, bot_id) :]
    if not history:
        return Context([], [])
    records = [r for i, m in enumerate(history) if (r := _record(m, i, names, bot_id, rules.ai_label)) is not None]
    mentioned = {str(i): name for m in history for i, name in m.mentions.items()}
    mentioned |= {r.author_id: r.display for r in records if not r.author_id.startswith(CLONE_AUTHOR)}
    mentioned[str(bot_id)] = clone  # `@bot` reads as a mention of the clone answering (`@Tamsin` in training)
    kept = list(Cleaner(rules.cleaning).clean(records, mentioned))
    me = CLONE_AUTHOR + clone
    found = sessions(kept, lambda m: m.author_id == me, "", rules.segmentation, Counter())
    if not found or history[-1].ts - found[-1].turns[-1].end > rules.segmentation.session_gap_minutes * 60:
        return Context([], [])  # the answered message itself did not survive cleaning, and the rest is old
    turns = found[-1].turns[-(rules.segmentation.max_turns - 1) :] if rules.segmentation.max_turns > 1 else []
    messages = [{"role": ASSISTANT if t.is_target else USER, "name": t.name, "content": t.content} for t in turns]
    return Context(messages, list(dict.fromkeys(t.name for t in turns if not t.is_target)))


def _start(history: list[ChannelMessage], bot_id: int) -> int:
    """Where the context may begin: after the last `!forget` or the bot's `/forget` notice."""
    for i in range(len(history) - 1, -1, -1):
        m = history[i]
        said = m.content.strip().casefold().split(" ")[0]
        if (said == FORGET_COMMAND and not m.is_bot) or (m.author_id == bot_id and is_forget_notice(m.content)):
            return i + 1
    return 0


def _record(m: ChannelMessage, order: int, names: list[str], bot_id: int, ai_label: str) -> Message | None:
    """process_messages' record of `m`; the bot's messages as the clone whose label they carry (unlabelled ones,
    such as the /forget notice, are left out)."""
    author, username, display, content, is_bot = str(m.author_id), m.username, m.display, m.content, m.is_bot
    if m.author_id == bot_id:
        labelled = read_label(m.content, names, ai_label)
        if labelled is None:
            return None
        name, content = labelled
        author, username, display, is_bot = CLONE_AUTHOR + name, name, name, False
    return Message(
        channel=str(m.channel_id),
        id=m.id,
        author_id=author,
        username=username,
        display=display,
        is_bot=is_bot,
        kind=Kind.SYSTEM if m.system else Kind.DEFAULT,
        ts=m.ts,
        content=content,
        reply_to=m.reply_to,
        attachments=m.attachments,
        stickers=m.stickers,
        order=order,
    )


def openai_messages(messages: list[dict]) -> list[dict]:
    """A context's messages in the OpenAI chat-completions format: `user` messages name their speaker in `name`,
    the clone is `assistant`. serve.py renders them back through the same chat template (no system message: the
    server adds the clone's own system prompt)."""
    return [{"role": m["role"], "name": m["name"], "content": m["content"]} for m in messages]
