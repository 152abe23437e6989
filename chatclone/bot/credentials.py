"""The bot token: from the DISCORD_TOKEN environment variable only, and only a bot account's.

A token on the command line or in a config file would be saved in the run's `.hydra/` record (and the shell's
history), so `token=...` is refused before Hydra reads the command line; the schema has no such key either. The
token is checked for the shape Discord's tokens have (three base64url parts separated by dots, the first the
account's numeric id) before anything loads; a user account's token (`mfa.` tokens, or any token Discord refuses
as a bot's at login) is never used: self-bots break Discord's terms of service. No message ever shows the token.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import sys
from collections.abc import Mapping

from chatclone.errors import ChatcloneError

TOKEN_ENV = "DISCORD_TOKEN"
SHAPE = re.compile(r"^([A-Za-z0-9_-]{16,})\.([A-Za-z0-9_-]{4,})\.([A-Za-z0-9_-]{20,})$")
HOW = (
    "create a bot in the Discord developer portal (Applications > your app > Bot > Reset Token) and "
    f"`export {TOKEN_ENV}=<the token>`"
)


def read_token(environ: Mapping[str, str] | None = None) -> str:
    """The bot token from the environment, checked for shape; a missing or malformed one is a ChatcloneError."""
    token = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
    if not token:
        raise ChatcloneError(f"{TOKEN_ENV} is not set: the bot's token comes from the environment only; {HOW}")
    if token.lower().startswith("bot "):
        raise ChatcloneError(f"{TOKEN_ENV} starts with `Bot `: give the token alone (discord.py adds the prefix)")
    if token.startswith("mfa."):
        raise ChatcloneError(
            f"{TOKEN_ENV} holds a user account's token: chatclone runs as a bot account only "
            f"(self-bots break Discord's terms); {HOW}"
        )
    match = SHAPE.match(token)
    if match is None or not _is_account_id(match.group(1)):
        raise ChatcloneError(
            f"{TOKEN_ENV} does not look like a Discord bot token (three base64url parts separated "
            f"by dots, the first the bot's user id); {HOW}"
        )
    return token


def _is_account_id(part: str) -> bool:
    try:
        decoded = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        return False
    return decoded.isdigit()


def token_arguments(argv: list[str]) -> list[str]:
    """The command-line overrides that would set a token (`token=`, `+bot.token=`, `DISCORD_TOKEN=`, ...)."""
    keys = [arg.split("=", 1)[0].lstrip("+~").casefold() for arg in argv if "=" in arg and not arg.startswith("-")]
    return [key for key in keys if key.split(".")[-1] in ("token", TOKEN_ENV.casefold())]


def refuse_token_arguments(argv: list[str] | None = None) -> None:
    """Before Hydra reads (and records) the command line: a token given on it is `error: ...`, exit 2."""
    found = token_arguments((sys.argv if argv is None else argv)[1:])
    if found:
        print(
            f"error: {found[0]}=...: the bot token is never taken from the command line or a config file (it "
            f"would be saved in the run's .hydra/ record); `export {TOKEN_ENV}=<the token>` instead",
            file=sys.stderr,
        )
        sys.exit(2)
