"""The interactive loops: a chat with the clone (inference.py mode=chat) and a simulated group chat in which the
user plays one participant (simulate_conversation.py).

Both read one message a line from an injected stdin and stream replies to an injected stdout. At a terminal the
user gets an input prompt and a help line (on stderr); from a pipe, stdout holds nothing but the conversation, every
turn as `Name: text`, the piped ones included (`Orrin: hey` then `Tamsin: ...`).
"""

from __future__ import annotations

import random
from typing import TextIO

from chatclone.errors import ChatcloneError
from chatclone.generation.session import Session, next_speaker, read_line

COMMANDS = {"/reset": "forget the conversation so far", "/quit": "end; so do /exit, Ctrl-D, Ctrl-C"}
SIMULATE_COMMANDS = {**COMMANDS, "/skip": "let the model take your turn"}


def _help(commands: dict[str, str]) -> str:
    return "commands: " + ", ".join(f"{c} ({what})" for c, what in commands.items())


def _command(line: str, session: Session, commands: dict[str, str], err: TextIO) -> str | None:
    """quit | reset | skip | help for a command line; None for an ordinary message."""
    word = line.strip().split(" ")[0].lower() if line.strip().startswith("/") else None
    if word is None:
        return None
    if word in ("/quit", "/exit"):
        return "quit"
    if word == "/reset":
        session.reset()
        err.write("(conversation reset)\n")
        return "reset"
    if word == "/skip" and word in commands:
        return "skip"
    err.write(f"unknown command {word}; {_help(commands)}\n" if word != "/help" else _help(commands) + "\n")
    return "help"


def chat(
    session: Session,
    user: str,
    stdin: TextIO,
    out: TextIO,
    err: TextIO,
    interactive: bool,
    opening: list[dict] | None = None,
) -> None:
    """Chat as `user` until /quit or EOF; each message gets the target's streamed reply."""
    if interactive:
        err.write(f"chatting with {session.target} as {user}. {_help(COMMANDS)}\n")
    if opening:
        session.open_with(opening)
        _reply(session, err)
    while True:
        line = read_line(stdin, out, err, f"{user}> ", interactive)
        if line is None:
            return
        if not line.strip():
            continue
        action = _command(line, session, COMMANDS, err)
        if action == "quit":
            return
        if action is None:
            session.add(user, line.strip(), "user")
            if not interactive:  # piped: stdout reads as the conversation (a person sees what they typed)
                session.printer.turn(user, line.strip())
            _reply(session, err)


def _reply(session: Session, err: TextIO, speaker: str | None = None) -> None:
    """One model turn; a prompt that no longer fits is reported and the session goes on."""
    try:
        session.generate(speaker or session.target)
    except ChatcloneError as error:
        err.write(f"error: {error}\n")


def simulate(
    session: Session,
    player: str,
    others: list[str],
    rng: random.Random,
    stdin: TextIO,
    out: TextIO,
    err: TextIO,
    interactive: bool,
    max_turns: int,
    opening: list[dict] | None = None,
) -> str:
    """The user plays `player`, the model everyone else; returns why it ended (quit, eof, max_turns). The player opens
    (unless they play the target); then the target answers everyone, and after the target one of the others (the
    player included) speaks, drawn with `rng`."""
    if interactive:
        err.write(
            f"you are {player}; the model plays {', '.join(n for n in session.names if n != player)}. "
            f"{_help(SIMULATE_COMMANDS)}\n"
        )
    if opening:
        session.open_with(opening)
    rotation = [n for n in dict.fromkeys(others + ([player] if player != session.target else []))]
    for _ in range(max_turns):
        opener = player if player != session.target and not session.history else None
        speaker = opener or next_speaker(session.last_speaker, session.target, rotation, rng)
        if speaker != player:
            _reply(session, err, speaker)
            continue
        while True:
            line = read_line(stdin, out, err, f"{player}> ", interactive)
            if line is None:
                return "eof"
            action = _command(line, session, SIMULATE_COMMANDS, err) if line.strip() else "help"
            if action == "quit":
                return "quit"
            if action == "skip":
                _reply(session, err, player)
            elif action is None:
                session.add(player, line.strip(), "user")
                if not interactive:  # piped: stdout is the whole conversation (a person sees what they typed)
                    session.printer.turn(player, line.strip())
            if action in (None, "skip", "reset"):
                break
    return "max_turns"
