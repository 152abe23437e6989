"""Conversations -> the turns a chat template renders, and which characters of each turn are trained.

A process_messages record is a list of `{"role", "name", "content", "train"?}` messages in which the target is
`assistant`. Here each message becomes a `Part` of a `Unit` (one turn as the template sees it; same-role runs
merge into one unit for templates that need alternating roles), and a window of units becomes the `Turn`s
handed to the template, with the system prompt placed the way the template can express it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from chatclone.chat_records import ASSISTANT, USER, is_trained
from chatclone.errors import ChatcloneError

SYSTEM = "system"  # USER and ASSISTANT are the roles process_messages writes (chatclone.chat_records)
SYSTEM_FOLD_SEPARATOR = "\n\n"
RESERVED = "\ue000\ue001\ue002"  # private-use characters render.py marks message text with; dropped from messages
_DROP_RESERVED = str.maketrans("", "", RESERVED)


@dataclass(frozen=True)
class Part:
    """One message's text inside a unit; `prefix` joins it to the part before (merged same-role messages)."""

    text: str
    trained: bool
    prefix: str = ""


@dataclass
class Unit:
    """One turn of the conversation as the template sees it."""

    role: str
    parts: list[Part]

    @property
    def trained_parts(self) -> int:
        return sum(p.trained for p in self.parts)


@dataclass(frozen=True)
class Turn:
    """A message handed to the chat template, with the character spans (relative to `content`) to label.

    `end_trained`: the end-of-turn marker the template writes right after `content` is labelled too.
    `unit`: index of the unit it renders, or None for a system turn or an inserted user turn.
    """

    role: str
    content: str
    spans: tuple[tuple[int, int], ...] = ()
    end_trained: bool = False
    unit: int | None = None


@dataclass(frozen=True)
class Style:
    """How turns are shaped for one template (from ModelConfig and FormattingConfig)."""

    system_prompt: str = ""
    system_role: bool = True
    alternating_roles: bool = False
    speaker_names: bool = True
    merge_separator: str = "\n"


def build_units(messages: Iterable[Mapping], style: Style) -> list[Unit]:
    """Units of a record: user turns get their speaker's name, assistant turns are trained unless train=false."""
    units: list[Unit] = []
    for message in messages:
        role = message.get("role")
        if role not in (USER, ASSISTANT):
            raise ChatcloneError(f"unexpected role {role!r}: process_messages writes only user and assistant turns")
        text = (message.get("content") or "").translate(_DROP_RESERVED).strip()
        name = message.get("name")
        if role == USER and style.speaker_names and name:
            text = f"{name}: {text}"
        trained = is_trained(message)
        if style.alternating_roles and units and units[-1].role == role:
            units[-1].parts.append(Part(text, trained, style.merge_separator))
        else:
            units.append(Unit(role, [Part(text, trained)]))
    return units


def unit_turn(unit: Unit, index: int, labelled: bool) -> Turn:
    """The turn rendering `unit`; its trained parts are labelled when `labelled` (not yet trained elsewhere)."""
    content, spans, at, previous = [], [], 0, False
    for part in unit.parts:
        trained = labelled and part.trained
        if trained and previous:  # the separator between two trained messages is trained too: the model
            spans[-1] = (spans[-1][0], at + len(part.prefix) + len(part.text))  # must learn to send a burst
        elif trained:
            spans.append((at + len(part.prefix), at + len(part.prefix) + len(part.text)))
        content += [part.prefix, part.text]
        at += len(part.prefix) + len(part.text)
        previous = trained
    end_trained = labelled and unit.role == ASSISTANT and unit.parts[-1].trained
    return Turn(unit.role, "".join(content), tuple(spans), end_trained, index)


def window_turns(units: list[Unit], start: int, end: int, first_trained: int, style: Style) -> list[Turn]:
    """Turns for units[start..end] (inclusive); units before `first_trained` are context only.

    The system prompt becomes a system turn, or (style.system_role false) is folded into the first user turn.
    Templates needing alternating roles get an (otherwise empty) user turn before a leading assistant turn.
    """
    turns = [unit_turn(units[i], i, i >= first_trained) for i in range(start, end + 1)]
    system = style.system_prompt
    if turns[0].role == ASSISTANT and (style.alternating_roles or (system and not style.system_role)):
        turns.insert(0, Turn(USER, ""))
    if not system:
        return turns
    if style.system_role:
        return [Turn(SYSTEM, system)] + turns
    first = turns[0]
    prefix = system + SYSTEM_FOLD_SEPARATOR if first.content else system
    shifted = tuple((s + len(prefix), e + len(prefix)) for s, e in first.spans)
    turns[0] = Turn(first.role, prefix + first.content, shifted, first.end_trained, first.unit)
    return turns
