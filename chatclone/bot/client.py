"""The discord.py glue, kept thin: intents, the `/as` and `/forget` commands, the message handler, and the
translation of discord.py's messages into chatclone.bot.records.ChannelMessage. Every decision is the policy's
(chatclone.bot.service); this module only reads from and writes to Discord.

Intents: guilds, guild and DM messages, and message content (a privileged intent: enable "Message Content Intent"
on the bot's page in the developer portal). Replies go out with no allowed mentions (a clone never pings anyone),
under a typing indicator, one generation at a time. discord.py waits out and retries Discord's 429s itself.
"""

from __future__ import annotations

import asyncio
import logging
import time

import discord
from discord import app_commands

from chatclone.bot.addressing import FORGET, Addressed
from chatclone.bot.limits import OneAtATime
from chatclone.bot.records import ChannelMessage
from chatclone.bot.replies import FORGET_NOTICE
from chatclone.bot.service import CloneService
from chatclone.errors import ChatcloneError

FAILED_REACTION = "⚠️"  # the reply failed (backend down, prompt too long): see the bot's log
log = logging.getLogger("chatclone.bot")


def intents() -> discord.Intents:
    wanted = discord.Intents.none()
    wanted.guilds = True  # which guilds and channels exist (threads' parents)
    wanted.messages = True  # guild and DM message events
    wanted.message_content = True  # the text of messages that do not mention the bot (privileged)
    return wanted


def channel_message(message: discord.Message) -> ChannelMessage:
    """The plain record of a discord.py message."""
    channel = message.channel
    ref = message.reference
    resolved = ref.resolved if ref is not None and isinstance(ref.resolved, discord.Message) else None
    return ChannelMessage(
        id=message.id,
        channel_id=channel.id,
        author_id=message.author.id,
        username=message.author.name,
        display=message.author.display_name,
        content=message.content,
        ts=message.created_at.timestamp(),
        is_bot=message.author.bot or message.webhook_id is not None,
        system=message.is_system(),
        guild_id=message.guild.id if message.guild else None,
        parent_id=getattr(channel, "parent_id", None),
        reply_to=ref.message_id if ref is not None and message.type is discord.MessageType.reply else None,
        reply_to_author=resolved.author.id if resolved else None,
        reply_to_content=resolved.content if resolved else None,
        mentions={u.id: u.display_name for u in message.mentions},
        attachments=len(message.attachments),
        stickers=len(message.stickers),
    )


class CloneClient(discord.Client):
    """One bot account speaking as the service's clones."""

    def __init__(self, service: CloneService):
        super().__init__(intents=intents(), allowed_mentions=discord.AllowedMentions.none())
        self.service = service
        self.jobs: OneAtATime | None = None
        self.worker: asyncio.Task | None = None
        self.tree = app_commands.CommandTree(self)
        self._add_commands()

    def _add_commands(self) -> None:
        names = self.service.names

        @self.tree.command(name="as", description="Have an AI clone answer you (its replies are labelled AI)")
        @app_commands.describe(clone="which clone answers", text="what you say to it")
        @app_commands.choices(clone=[app_commands.Choice(name=n, value=n) for n in names])
        async def as_clone(interaction: discord.Interaction, clone: app_commands.Choice[str], text: str) -> None:
            await self._slash_as(interaction, clone.value, text)

        @self.tree.command(name="forget", description="The AI clones forget this channel's conversation so far")
        async def forget(interaction: discord.Interaction) -> None:
            if interaction.channel is None or not self._allowed(interaction.channel, interaction.guild_id):
                await interaction.response.send_message("The clones are not enabled here.", ephemeral=True)
                return
            self.service.counts["forget"] += 1
            await interaction.response.send_message(FORGET_NOTICE)

    async def setup_hook(self) -> None:
        self.jobs = OneAtATime(self.service.cfg.queue_size)
        self.worker = self.loop.create_task(self.jobs.work(lambda e: log.warning("a reply failed: %s", e)))
        if self.service.cfg.sync_commands:
            await self.tree.sync()

    async def on_ready(self) -> None:
        self.service.connected(self.user.id)
        log.info("connected as bot user %s; clones: %s", self.user.id, ", ".join(self.service.names))

    def _allowed(self, channel: object, guild_id: int | None) -> bool:
        return self.service.places.allow(guild_id, getattr(channel, "id", 0), getattr(channel, "parent_id", None))

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or self.user is None:
            return
        incoming = channel_message(message)
        decision = self.service.decide(incoming)
        if decision is None:
            return
        if decision.action == FORGET:
            self.service.counts["forget"] += 1
            await message.add_reaction(self.service.cfg.forget_reaction)
            return
        await self._queue(message, decision, incoming)

    async def _queue(self, message: discord.Message, decision: Addressed, incoming: ChannelMessage) -> None:
        if not self._enqueue(incoming.channel_id, lambda: self._reply(message, decision.clone, incoming)):
            await message.add_reaction(self.service.cfg.busy_reaction)

    def _enqueue(self, channel_id: int, job) -> bool:
        """Queue a reply if the queue has room and the channel's cooldown and the per-minute cap allow one (no
        await between the checks and the queueing: nothing else runs in between)."""
        if self.jobs is None or self.jobs.queue.full():
            self.service.counts["refused_queue_full"] += 1
            return False
        return self.service.admit(channel_id) is None and self.jobs.offer(job)

    async def _history(self, channel: discord.abc.Messageable, before: object = None) -> list[ChannelMessage]:
        """The channel's last max_context_messages messages (before `before`), oldest first."""
        found = [
            channel_message(m)
            async for m in channel.history(limit=self.service.cfg.max_context_messages, before=before)
        ]
        return found[::-1]

    async def _generate(self, channel: discord.abc.Messageable, clone: str, history: list[ChannelMessage]) -> list[str]:
        async with channel.typing():
            return await asyncio.to_thread(self.service.answer, clone, history)

    async def _reply(self, message: discord.Message, clone: str, incoming: ChannelMessage) -> None:
        try:
            history = await self._history(message.channel, before=message) + [incoming]
            posts = await self._generate(message.channel, clone, history)
            if not self._allowed(message.channel, incoming.guild_id):  # never, but never post where not allowed
                return
            for i, post in enumerate(posts):
                await (message.reply(post, mention_author=False) if i == 0 else message.channel.send(post))
        except (ChatcloneError, discord.HTTPException) as error:
            log.warning("no reply in channel %s: %s", incoming.channel_id, error)
            await message.add_reaction(FAILED_REACTION)

    async def _slash_as(self, interaction: discord.Interaction, clone: str, text: str) -> None:
        channel = interaction.channel
        if channel is None or not self._allowed(channel, interaction.guild_id) or not text.strip():
            await interaction.response.send_message(
                "The clones are not enabled here." if text.strip() else "Say something to the clone.", ephemeral=True
            )
            return
        deferred = asyncio.Event()  # the job answers only once Discord has the deferral (within its 3 s)

        async def job() -> None:
            await deferred.wait()
            await self._answer_slash(interaction, clone, text)

        if not self._enqueue(channel.id, job):
            await interaction.response.send_message("The clones are busy; try again in a moment.", ephemeral=True)
            return
        try:
            await interaction.response.defer(thinking=True)
        finally:
            deferred.set()

    async def _answer_slash(self, interaction: discord.Interaction, clone: str, text: str) -> None:
        user = interaction.user
        asked = ChannelMessage(
            id=interaction.id,
            channel_id=interaction.channel.id,
            author_id=user.id,
            username=user.name,
            display=user.display_name,
            content=text,
            ts=time.time(),
            guild_id=interaction.guild_id,
            parent_id=getattr(interaction.channel, "parent_id", None),
        )
        try:
            history = await self._history(interaction.channel) + [asked]
            posts = await self._generate(interaction.channel, clone, history)
            for post in posts or [f"({clone} has nothing to say.)"]:
                await interaction.followup.send(post, allowed_mentions=discord.AllowedMentions.none())
        except (ChatcloneError, discord.HTTPException) as error:
            log.warning("no reply to /as in channel %s: %s", asked.channel_id, error)
            await interaction.followup.send("The clone could not answer (see the bot's log).", ephemeral=True)
