"""Where a generated turn ends: the speaker's end of turn (token ids, handled by generate) and, as a safety net,
a line where another known speaker starts talking (`Orrin: ...`), which the model must never write for them, or
where the speaker starts a second named turn of their own.

`SpeakerCut` applies the net to finished text; `StreamGate` applies it while tokens stream, printing only text
that can no longer turn out to be another speaker's line, and asking generation to stop once one appears.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Cut:
    text: str  # the turn's text, stripped
    speaker: str | None  # the speaker whose `Name:` line it was cut at, if any
    at_stop_text: bool = False  # cut at an end-of-turn text that was not a stop token


class SpeakerCut:
    """Cuts a turn of `speaker` at the first line another of `names` starts (or where the speaker starts a second
    `Name:` turn of their own: a transcript, never a burst, which training data writes without names), and at any
    of `stop_texts`. A `Name:` of the speaker's own at the very start is stripped."""

    def __init__(self, names: Iterable[str], speaker: str, stop_texts: Iterable[str] = ()):
        self.speaker = speaker
        self.others = sorted({n for n in names if n and n != speaker}, key=len, reverse=True)
        self.own = f"{speaker}:"
        self.patterns = [f"{n}:" for n in self.others] + [self.own]
        self.stop_texts = [s for s in stop_texts if s]
        alternatives = "|".join(re.escape(n) for n in [*self.others, speaker])
        self._line = re.compile(rf"^[ \t]*({alternatives}):", re.MULTILINE)

    def raw_end(self, text: str) -> tuple[int, str | None, bool]:
        """(end of the turn within `text`, speaker cut at, cut at a stop text)."""
        end, who, stop = len(text), None, False
        for stop_text in self.stop_texts:
            at = text.find(stop_text)
            if 0 <= at < end:
                end, stop = at, True
        for match in self._line.finditer(text, 0, end):
            if match.group(1) != self.speaker or text[: match.start()].strip():  # a leading own name is stripped
                return match.start(), match.group(1), False
        return end, who, stop

    def clean(self, text: str) -> str:
        """The turn as shown: without leading blanks or the speaker's own `Name:` (the template already says who)."""
        text = text.lstrip()
        if text.startswith(self.own):
            text = text[len(self.own) :].lstrip()
        return text

    def cut(self, text: str) -> Cut:
        end, who, stop = self.raw_end(text)
        return Cut(self.clean(text[:end]).rstrip(), who, stop)

    def undecided(self, line: str) -> bool:
        """Whether a line's beginning could still become a speaker's `Name:` line (or a stop text)."""
        line = line.lstrip(" \t")
        return any(p.startswith(line) for p in self.patterns) or any(
            line.startswith(s[: len(line)]) and len(line) < len(s) for s in self.stop_texts if "\n" not in s
        )


class StreamGate:
    """Streams a turn's text to `emit`, holding back what a later cut could remove; `stop()` becomes true at a cut."""

    def __init__(self, cut: SpeakerCut, emit: Callable[[str], None]):
        self.cut, self.emit = cut, emit
        self.text, self.shown, self.stopped = "", 0, False

    def feed(self, chunk: str) -> None:
        if self.stopped:
            return
        self.text += chunk
        end, who, stop = self.cut.raw_end(self.text)
        if who is not None or stop:
            self.stopped = True
            self._show(self.cut.clean(self.text[:end]).rstrip())
            return
        line_start = self.text.rfind("\n") + 1
        safe = line_start if self.cut.undecided(self.text[line_start:]) else len(self.text)
        safe = min(safe, len(self.text[:safe].rstrip()))  # trailing blanks wait for what follows them
        self._show(self.cut.clean(self.text[:safe]))

    def close(self) -> None:
        if not self.stopped:
            self._show(self.cut.cut(self.text).text)

    def _show(self, shown: str) -> None:
        if len(shown) > self.shown:
            self.emit(shown[self.shown :])
            self.shown = len(shown)
