"""A synthetic server channel of five invented people with strongly different texting styles, written as a
DiscordChatExporter JSON export: a test bed for measuring clone fidelity end to end.

The target, `mossy.wren`, writes in a style a 135M model can pick up in a short LoRA run: short messages,
all lower case, no punctuation but a closing "!!", signature words (lowkey, ngl, fr, bestie, rn) and
signature emoji (🌙 🍄 ✨), about plants, the moon and night walks. The others differ clearly:
`alistair.penhallow` writes long, formal, punctuated sentences without emoji; `tobes.krell` SHOUTS in
capitals about games with "!!!" and 💀😂🔥; `maggie.quill` asks questions with "..." and ":)"; `dev.okafor`
answers in a few capitalised words ending in a full stop, sometimes 👍.

Conversation structure: sessions on one topic (the session's people also bring up their own favourite
topics) separated by 3 to 26 hours; within a session bursts of 1-4 messages from one person seconds
apart, turns minutes apart, answers after questions, and some messages are DCE `Reply`s (with the
`reference` and the mention of the replied-to author). `sessions="long"` (the default): 12-60 turns among
3-5 people, so conversations fill 512-token windows. `sessions="short"`: the shape of a DM history, most
sessions a quick exchange of 2-8 turns between the target and one other, a few long ones (2 + an exponential
with mean 6 turns, at most 60).

Layout (see /work/shared/docs/discordchatexporter_formats.md §2, DCE 2.47): 2-space indentation, DCE's
key order, author objects with id/name/discriminator/nickname/color/isBot/roles/avatarUrl, standard emoji
in `inlineEmojis`, emoji outside the BMP escaped as upper-case UTF-16 surrogate pairs, dates with the
fraction's trailing zeros removed, no newline at the end. Written streaming; deterministic by seed.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from chatclone.errors import ChatcloneError
from chatclone.synthetic import DISCORD_EPOCH_MS, Person

GUILD_ID, CHANNEL_ID, CATEGORY_ID = "1098765432101234567", "1101234567890123456", "1098765432101234568"
FILE_NAME = f"Style Garden - Text Channels - hangout [{CHANNEL_ID}].json"
START_MS = 1709280000000  # 2024-03-01T08:00:00+00:00
PET_SHARE = 0.35  # how often a speaker brings up one of their own topics instead of the session's
REPLY_SHARE = 0.12  # how often a message is a DCE Reply to a recent message by someone else
EMOJI = {
    "🌙": "crescent_moon",
    "🍄": "mushroom",
    "✨": "sparkles",
    "💀": "skull",
    "😂": "joy",
    "🔥": "fire",
    "👍": "thumbsup",
}
DCE_ESCAPED = re.compile("[\U00010000-\U0010ffff\u200d\u202f\u3000]")
TOPICS = {
    "plants": ("the monstera", "the fern", "repotting", "the cactus", "the herb garden", "grow lights"),
    "games": ("the new patch", "ranked", "the raid", "that boss", "speedruns", "the tournament"),
    "food": ("ramen", "the taco place", "dumplings", "pho", "the bakery", "pizza night"),
    "plans": ("friday night", "the concert", "the hike", "movie night", "karaoke", "the beach trip"),
    "music": ("that synth album", "the vinyl shop", "lofi beats", "the gig", "the new single", "the playlist"),
}


@dataclass(frozen=True)
class Speaker:
    """One invented person and the habits their messages are generated from."""

    person: Person
    style: str  # one line, for people reading the corpus
    templates: tuple[str, ...]  # "{x}" takes a topic phrase
    answers: tuple[str, ...]  # openings of a reply to a question
    pets: tuple[str, ...]  # their own favourite topics
    casing: str  # lower, upper or sentence (first letter upper-case)
    endings: tuple[str, ...]  # one is appended to each message ("" for none)
    emoji: tuple[str, ...]
    emoji_prob: float
    emoji_max: int  # at most this many emoji (repeats of one) at the end
    clauses: tuple[int, int]  # templates strung together per message
    burst: tuple[int, int]  # messages in a row
    weight: float  # how often they take the turn
    role: tuple[str, str, str, int] | None  # role id, name, colour, position


SPEAKERS = (
    Speaker(
        Person("731952308516208640", "mossy.wren", "wren"),
        "short, all lower case, no punctuation but '!!', lowkey/ngl/fr/bestie, 🌙🍄✨, plants and the moon",
        (
            "lowkey obsessed with {x}",
            "ngl {x} slaps",
            "{x} is so good",
            "ok but {x}",
            "need {x} rn",
            "omg {x}",
            "{x} hours",
            "cant stop thinking about {x}",
            "bestie {x} tho",
            "{x} fr",
            "this is so {x} coded",
            "me and {x} vs the world",
            "wait {x}",
        ),
        ("omg yes", "lowkey yes", "ngl no", "bestie no", "yes yes", "fr fr"),
        ("the moon", "my moss terrarium", "night walks", "the mushroom lamp", "the pothos", "stargazing"),
        "lower",
        ("", "", "", "!!"),
        ("🌙", "🍄", "✨"),
        0.45,
        1,
        (1, 1),
        (1, 4),
        0.34,
        ("1098765432101234601", "night owls", "#9B59B6", 3),
    ),
    Speaker(
        Person("688214530197450752", "alistair.penhallow", "Alistair"),
        "long formal sentences, commas and full stops, no emoji, trains and cooking",
        (
            "I must say, {x} was rather excellent.",
            "To be fair, {x} is overrated; the reviews were generous.",
            "I shall bring up {x} on Saturday, if that suits everyone.",
            "Frankly, I would rather discuss {x}.",
            "I have been reading about {x}, and it is quite fascinating.",
            "Has anyone else considered {x}? It seems worth a proper look.",
            "In my experience, {x} improves considerably with patience.",
        ),
        ("Certainly.", "I am afraid not.", "That would be acceptable.", "Indeed, I agree."),
        ("the 7:15 train", "sourdough starters", "the weather forecast", "timetables", "cast iron pans"),
        "sentence",
        ("",),
        (),
        0.0,
        0,
        (2, 3),
        (1, 2),
        0.17,
        ("1098765432101234602", "moderators", "#2ECC71", 5),
    ),
    Speaker(
        Person("802473991056113664", "tobes.krell", "TOBES"),
        "ALL CAPS, 'LMAO'/'BRO', '!!!' and '?!', 💀😂🔥 in runs, games",
        (
            "BRO {x} IS INSANE",
            "NO WAY {x}",
            "LMAO {x}",
            "{x} GOT ME",
            "WHO IS DOING {x}",
            "{x} AGAIN",
            "I AM SO DONE WITH {x}",
            "{x} IS FREE WIN",
        ),
        ("BRO YES", "NAH", "NO WAY", "LMAO YES"),
        ("ranked", "the new patch", "that boss", "the raid"),
        "upper",
        ("!!!", "?!", "", "!!!"),
        ("💀", "😂", "🔥"),
        0.55,
        3,
        (1, 1),
        (1, 3),
        0.2,
        None,
    ),
    Speaker(
        Person("759310647281287168", "maggie.quill", "Mags"),
        "questions, '...' and ':)', capitalised, plans and films",
        (
            "Does anyone know if {x} is any good?",
            "What time works for {x}?",
            "Should we do {x} this weekend?",
            "Wait, is {x} still happening?",
            "Hmm... what about {x}?",
            "I was thinking about {x}...",
            "Who else is up for {x}?",
        ),
        ("Oh, really?", "Maybe?", "Honestly... yes?", "Wait, seriously?"),
        ("movie night", "the book club", "the film festival", "the escape room"),
        "sentence",
        ("", "", " :)"),
        (),
        0.0,
        0,
        (1, 2),
        (1, 2),
        0.17,
        ("1098765432101234603", "planners", "#E67E22", 2),
    ),
    Speaker(
        Person("716605938452750336", "dev.okafor", "Dev"),
        "a few capitalised words with a full stop, sometimes 👍, logistics",
        (
            "Sure.",
            "Ok.",
            "Yep.",
            "On my way.",
            "Sounds good.",
            "Can't tonight.",
            "Works for me.",
            "Running late.",
            "10 min.",
            "Noted.",
            "{x} works.",
            "{x}?",
        ),
        ("Yes.", "No.", "Sure.", "Can't."),
        ("the bus", "parking", "the 6pm slot"),
        "sentence",
        ("",),
        ("👍",),
        0.2,
        1,
        (1, 1),
        (1, 1),
        0.12,
        None,
    ),
)
TARGET = SPEAKERS[0]


def write_style_corpus(path: Path | str, n_messages: int = 4000, seed: int = 0, sessions: str = "long") -> dict:
    """Write the corpus to `path` (a .json file; `FILE_NAME` is DCE's name for it) and describe it.
    `sessions`: "long" (group sessions filling 512-token windows) or "short" (DM-like; see the module doc).

    Returns {"path", "channel_id", "messages", "seed", "target": {id, username, nickname},
    "speakers": [{id, username, nickname, is_target, style}]}.
    """
    if n_messages < 1:
        raise ChatcloneError(f"n_messages must be at least 1, not {n_messages}")
    if sessions not in ("long", "short"):
        raise ChatcloneError(f"sessions must be 'long' or 'short', not {sessions!r}")
    path = Path(path)
    rng = random.Random(seed)
    authors = {s.person.id: _author(s) for s in SPEAKERS}
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(_header())
        for i, message in enumerate(_messages(rng, n_messages, authors, sessions == "short")):
            f.write(("" if i == 0 else ",\n") + _dce_dump(message))
        f.write(f'\n  ],\n  "messageCount": {n_messages}\n}}')
    speakers = [
        {
            "id": s.person.id,
            "username": s.person.name,
            "nickname": s.person.nickname,
            "is_target": s is TARGET,
            "style": s.style,
        }
        for s in SPEAKERS
    ]
    return {
        "path": str(path),
        "channel_id": CHANNEL_ID,
        "messages": n_messages,
        "seed": seed,
        "sessions": sessions,
        "target": {k: speakers[0][k] for k in ("id", "username", "nickname")},
        "speakers": speakers,
    }


def _messages(rng: random.Random, n_messages: int, authors: dict[str, dict], short: bool = False):
    """Message objects in export order: sessions of bursts and turns, hours apart."""
    ms, count = START_MS, 0
    while count < n_messages:
        topic = rng.choice(sorted(TOPICS))
        if short:  # a DM-like exchange: the target and one other, mostly a few turns
            people, turns = [TARGET, rng.choice(SPEAKERS[1:])], min(60, 2 + int(rng.expovariate(1 / 6)))
        else:
            others = rng.sample(SPEAKERS[1:], rng.randint(2, len(SPEAKERS) - 1))
            people, turns = ([TARGET] if rng.random() < 0.85 else []) + others, rng.randint(12, 60)
        speaker, asked, recent = None, False, []  # recent: the session's last (message id, speaker)s
        for _ in range(turns):
            speaker = _next_speaker(rng, people, speaker)
            for b in range(rng.randint(*speaker.burst)):
                if count == n_messages:
                    return
                ms += rng.randint(2000, 25000) if b else rng.randint(15000, 300000)
                text = _compose(rng, speaker, topic, answering=asked and b == 0)
                reply = _reply_target(rng, recent, speaker, asked and b == 0)
                message = _message(
                    count,
                    ms,
                    text,
                    authors[speaker.person.id],
                    (reply[0], authors[reply[1].person.id]) if reply else None,
                )
                recent, asked, count = (recent + [(message["id"], speaker)])[-6:], "?" in text, count + 1
                yield message
        ms += rng.randint(3 * 3600_000, 26 * 3600_000)


def _next_speaker(rng: random.Random, people: list[Speaker], last: Speaker | None) -> Speaker:
    choices = [s for s in people if s is not last] or people
    return rng.choices(choices, weights=[s.weight for s in choices])[0]


def _reply_target(rng: random.Random, recent: list, speaker: Speaker, answering: bool):
    """(message id, speaker) this message replies to, or None."""
    candidates = [r for r in recent if r[1] is not speaker]
    if not candidates or rng.random() >= (0.3 if answering else REPLY_SHARE):
        return None
    return candidates[-1] if answering else rng.choice(candidates)


def _compose(rng: random.Random, speaker: Speaker, topic: str, answering: bool) -> str:
    """One message in the speaker's style: maybe an answer, then distinct templates about the topic or a pet topic."""
    n_clauses = rng.randint(*speaker.clauses)
    parts = [rng.choice(speaker.answers)] if answering and rng.random() < 0.7 else []
    for template in rng.sample(speaker.templates, max(0, n_clauses - len(parts))):
        phrase = rng.choice(speaker.pets if rng.random() < PET_SHARE else TOPICS[topic])
        parts.append(template.format(x=phrase))
    text = " ".join(parts)
    if speaker.casing == "lower":
        text = text.lower()
    elif speaker.casing == "upper":
        text = text.upper()
    else:
        text = text[0].upper() + text[1:]
    text += rng.choice(speaker.endings)
    if speaker.emoji and rng.random() < speaker.emoji_prob:
        text += " " + rng.choice(speaker.emoji) * rng.randint(1, speaker.emoji_max)
    return text


def _message(index: int, ms: int, content: str, author: dict, reply_to: tuple[str, dict] | None) -> dict:
    """A message object with DCE's keys in DCE's order."""
    message = {
        "id": str(((ms - DISCORD_EPOCH_MS) << 22) + (index & 0xFFF)),
        "type": "Reply" if reply_to else "Default",
        "timestamp": _stamp(ms),
        "timestampEdited": None,
        "callEndedTimestamp": None,
        "isPinned": False,
        "content": content,
        "author": author,
        "attachments": [],
        "embeds": [],
        "stickers": [],
        "reactions": [],
        "mentions": [reply_to[1]] if reply_to else [],
    }
    if reply_to:
        message["reference"] = {
            "type": "Default",
            "messageId": reply_to[0],
            "channelId": CHANNEL_ID,
            "guildId": GUILD_ID,
        }
    message["inlineEmojis"] = [_emoji(e) for e in dict.fromkeys(c for c in content if c in EMOJI)]
    return message


def _author(speaker: Speaker) -> dict:
    p, role = speaker.person, speaker.role
    avatar_hash = hashlib.md5(p.name.encode()).hexdigest()
    return {
        "id": p.id,
        "name": p.name,
        "discriminator": "0000",
        "nickname": p.nickname,
        "color": role[2] if role else None,
        "isBot": False,
        "roles": [{"id": role[0], "name": role[1], "color": role[2], "position": role[3]}] if role else [],
        "avatarUrl": f"https://cdn.discordapp.com/avatars/{p.id}/{avatar_hash}.png?size=512",
    }


def _emoji(char: str) -> dict:
    hexes = "-".join(f"{ord(c):x}" for c in char if c != "\ufe0f")
    return {
        "id": "",
        "name": char,
        "code": EMOJI[char],
        "isAnimated": False,
        "imageUrl": f"https://cdn.jsdelivr.net/gh/twitter/twemoji@latest/assets/svg/{hexes}.svg",
    }


def _stamp(ms: int) -> str:
    """DCE's date: seconds, then the millisecond fraction without trailing zeros (none if zero), +00:00."""
    base = datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{ms % 1000:03d}".rstrip("0")
    return base + (f".{fraction}" if fraction else "") + "+00:00"


def _header() -> str:
    head = {
        "guild": {"id": GUILD_ID, "name": "Style Garden", "iconUrl": "https://cdn.discordapp.com/embed/avatars/0.png"},
        "channel": {
            "id": CHANNEL_ID,
            "type": "GuildTextChat",
            "categoryId": CATEGORY_ID,
            "category": "Text Channels",
            "name": "hangout",
            "topic": None,
        },
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2025-01-01T00:00:00.1234567+00:00",
    }
    return json.dumps(head, indent=2)[:-2] + ',\n  "messages": [\n'


def _dce_dump(message: dict) -> str:
    """One message as DCE writes it inside the array: 4-space base indent, non-BMP as surrogate pairs."""
    text = json.dumps(message, indent=2, ensure_ascii=False)
    text = DCE_ESCAPED.sub(lambda m: _utf16_escape(m.group()), text)
    return "\n".join("    " + line for line in text.split("\n"))


def _utf16_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04X}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"
