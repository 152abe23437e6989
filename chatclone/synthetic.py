"""Synthetic DiscordChatExporter JSON exports, byte-compatible with DCE's layout, for benchmarks and tests.

Every person, id and message here is invented. Messages follow a simple conversational rhythm:
bursts from one speaker, replies from others, minutes between turns and hours between sessions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

DISCORD_EPOCH_MS = 1420070400000
WORDS = (
    "ok so",
    "wait",
    "lol",
    "honestly",
    "the",
    "game",
    "soup",
    "tomorrow",
    "tonight",
    "bus",
    "rain",
    "thursday",
    "that",
    "was",
    "so",
    "good",
    "i think",
    "maybe",
    "we should",
    "go",
    "bring",
    "snacks",
    "no way",
    "yes",
    "pls",
    "haha",
    "same",
    "did you see",
    "the new one",
    "running late",
    "brb",
)
EXTRAS = ("", "", "", "", " 😂", " 🎉", "!!", "?", " :frogwave:", " https://example.com/x")


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    nickname: str
    is_bot: bool = False

    def author_json(self, indent: str) -> str:
        avatar = f"https://cdn.discordapp.com/embed/avatars/{int(self.id) % 5}.png"
        fields = [
            f'"id": "{self.id}"',
            f'"name": "{self.name}"',
            f'"discriminator": "{"7342" if self.is_bot else "0000"}"',
            f'"nickname": "{self.nickname}"',
            '"color": null',
            f'"isBot": {"true" if self.is_bot else "false"}',
            '"roles": []',
            f'"avatarUrl": "{avatar}"',
        ]
        inner = indent + "  "
        return "{\n" + ",\n".join(inner + f for f in fields) + "\n" + indent + "}"


DEFAULT_PEOPLE = (
    Person("607216646228391176", "tamsin.vale", "Tamsin"),
    Person("779633133880087953", "orrin.byrd", "Orrin"),
    Person("444946876206750889", "pip.marsh", "Pippa"),
    Person("806285809287494512", "ezraloom", "ezraloom"),
)


def write_dce_json(
    path: Path,
    n_messages: int,
    seed: int = 0,
    people: tuple[Person, ...] = DEFAULT_PEOPLE,
    channel_id: str = "900000000000000001",
) -> Path:
    """Write an n-message server-channel export in DCE's exact JSON layout, streaming (constant memory)."""
    rng = random.Random(seed)
    authors = {p.id: p.author_json("      ") for p in people}
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(_header(channel_id))
        speaker = people[0]
        for i in range(n_messages):
            speaker = _next_speaker(rng, speaker, people)
            when += _gap(rng)
            f.write(_message(i, when, speaker, authors[speaker.id], rng))
            f.write(",\n" if i < n_messages - 1 else "\n")
        f.write(f'  ],\n  "messageCount": {n_messages}\n}}')
    return path


def _header(channel_id: str) -> str:
    head = {
        "guild": {
            "id": "900000000000000000",
            "name": "Synthetic Server",
            "iconUrl": "https://cdn.discordapp.com/embed/avatars/0.png",
        },
        "channel": {
            "id": channel_id,
            "type": "GuildTextChat",
            "categoryId": "900000000000000002",
            "category": "Text Channels",
            "name": "general",
            "topic": None,
        },
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2025-01-01T00:00:00.0000000+00:00",
    }
    text = orjson.dumps(head, option=orjson.OPT_INDENT_2).decode()
    return text[:-2] + ',\n  "messages": [\n'


def _next_speaker(rng: random.Random, current: Person, people: tuple[Person, ...]) -> Person:
    return current if rng.random() < 0.35 else rng.choice(people)


def _gap(rng: random.Random) -> timedelta:
    roll = rng.random()
    seconds = rng.uniform(3600, 40000) if roll < 0.01 else rng.uniform(5, 240)
    return timedelta(seconds=seconds)


def _message(i: int, when: datetime, person: Person, author: str, rng: random.Random) -> str:
    ms = int(when.timestamp() * 1000)
    snowflake = ((ms - DISCORD_EPOCH_MS) << 22) + (i % 4096)
    content = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 9))) + rng.choice(EXTRAS)
    stamp = when.isoformat(timespec="milliseconds")
    return (
        f'    {{\n      "id": "{snowflake}",\n      "type": "Default",\n      "timestamp": "{stamp}",\n'
        f'      "timestampEdited": null,\n      "callEndedTimestamp": null,\n      "isPinned": false,\n'
        f'      "content": {orjson.dumps(content).decode()},\n      "author": {author},\n'
        f'      "attachments": [],\n      "embeds": [],\n      "stickers": [],\n      "reactions": [],\n'
        f'      "mentions": [],\n      "inlineEmojis": []\n    }}'
    )
