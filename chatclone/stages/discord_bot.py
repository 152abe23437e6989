"""discord_bot: one bot account speaks as the trained clones in the channels the config lists, until stopped.

Order: the config's values, then the token (DISCORD_TOKEN), then the clones' runs (no weights), then the backend
(the models load, or serve.py is asked what it serves), then Discord. Nothing from Discord is written to the run
dir unless log_conversations=true; manifest.json (counts only) is written when the bot stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

from chatclone import runs
from chatclone.bot.backends import backend_for
from chatclone.bot.clones import find_clones
from chatclone.bot.credentials import TOKEN_ENV, read_token
from chatclone.bot.service import CONVERSATIONS, CloneService
from chatclone.config.discord_bot import DiscordBotConfig
from chatclone.errors import ChatcloneError
from chatclone.logs import warn

STAGE = "discord_bot"


def discord_bot(
    cfg: DiscordBotConfig,
    run_dir: Path,
    environ: Mapping[str, str] | None = None,
    connect: Callable[[object, str], None] | None = None,
) -> dict:
    """Run the bot until it is stopped (Ctrl-C); `connect(client, token)` replaces logging in to Discord (tests)."""
    cfg.check()
    token = read_token(environ)
    runs.start_run(run_dir)
    if cfg.answers_nowhere:
        warn(
            "guilds, channels and dms are all empty: the bot will answer nowhere; list where it may speak, e.g. "
            "channels=[<channel id>] (and dms=true for direct messages)"
        )
    clones = find_clones(cfg)
    from chatclone.bot.client import CloneClient  # discord.py, only once the cheap checks passed

    service = CloneService(cfg, clones, backend_for(cfg, clones), run_dir)
    client = CloneClient(service)
    try:
        (connect or _connect)(client, token)
    except KeyboardInterrupt:
        pass
    outputs = [CONVERSATIONS] if (Path(run_dir) / CONVERSATIONS).exists() else []
    summary = service.summary()
    runs.finish_run(run_dir, STAGE, cfg, inputs=[str(c.spec.run_dir) for c in clones], outputs=outputs, summary=summary)
    return summary


def _connect(client, token: str) -> None:
    import discord

    async def run() -> None:
        async with client:
            await client.start(token)

    try:
        asyncio.run(run())
    except discord.LoginFailure:
        raise ChatcloneError(
            f"Discord refused the token in {TOKEN_ENV}: it is not a valid bot token (reset it on "
            "the Bot page of your application; a user account's token never works)"
        ) from None
    except discord.PrivilegedIntentsRequired:
        raise ChatcloneError(
            "Discord refused the Message Content intent: enable it on the Bot page of your "
            "application (Privileged Gateway Intents > Message Content Intent)"
        ) from None
