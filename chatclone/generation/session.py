"""A conversation held with a clone: its history, who speaks next, generating and printing turns, the transcript.

The same `Session` serves a chat (inference.py), a grown conversation (generate_from_prompt.py) and a simulated
group chat (simulate_conversation.py). Output goes to an injected text stream, so tests drive it with StringIO.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TextIO

from chatclone.errors import ChatcloneError
from chatclone.generation.clone import Clone
from chatclone.generation.generate import Generator, Reply

NO_REPLY = "(no reply)"  # shown for a turn whose every draw was empty (cut at another speaker's line at once)
CUT_MARK = "…"  # shown after a reply cut at sampling.max_new_tokens


def shown_text(reply: Reply) -> str:
    """A model turn as printed: its text, `…` when max_new_tokens cut it, or `(no reply)`."""
    if not reply.text:
        return NO_REPLY
    return reply.text + (CUT_MARK if reply.stopped == "max_new_tokens" else "")


class Printer:
    """`Name: text` turns on a text stream; a turn's further lines are indented under its first."""

    def __init__(self, out: TextIO):
        self.out = out

    def start(self, speaker: str, candidate: int | None = None) -> Callable[[str], None]:
        label = f"[{candidate}] {speaker}: " if candidate is not None else f"{speaker}: "
        self.out.write(label)
        self.out.flush()
        pad = "\n" + " " * len(label)

        def emit(text: str) -> None:
            self.out.write(text.replace("\n", pad))
            self.out.flush()

        return emit

    def turn(self, speaker: str, text: str, candidate: int | None = None) -> None:
        self.start(speaker, candidate)(text)
        self.end()

    def end(self) -> None:
        self.out.write("\n")
        self.out.flush()


class Session:
    """History (process_messages-style messages), the transcript of every turn, and the model's replies."""

    def __init__(self, clone: Clone, generator: Generator, printer: Printer, names: list[str], attempts: int = 3):
        self.clone, self.generator, self.printer = clone, generator, printer
        self.attempts = attempts  # draws for a sampled turn that keeps coming out empty
        self.names = list(dict.fromkeys([clone.spec.target, *names]))
        self.history: list[dict] = []
        self.transcript: list[dict] = []
        self.replies: list[Reply] = []
        self.conversation = 0  # bumped by reset()

    @property
    def target(self) -> str:
        return self.clone.spec.target

    def add(self, speaker: str, content: str, by: str) -> None:
        """A turn not generated here (typed by the user, or from the prompt)."""
        self.history.append(self.clone.prompts.message(speaker, content))
        self.transcript.append(
            {
                "conversation": self.conversation,
                "turn": len(self.history),
                "speaker": speaker,
                "by": by,
                "text": content,
                "time": time.time(),
            }
        )

    def generate(self, speaker: str, stream: bool = True, n: int = 1, show: bool = True) -> list[Reply]:
        """The model's next turn(s) for `speaker`; the first candidate joins the history (if not empty). A streamed
        turn that comes out empty (it began with someone's `Name:`) is drawn again, up to `attempts` draws (one when
        greedy: it would come out the same), and then shown as `(no reply)`; only its last draw counts as shown."""
        budget = self.clone.spec.format.max_length - self.generator.sampling.max_new_tokens
        if budget < 1:
            raise ChatcloneError(
                f"sampling.max_new_tokens={self.generator.sampling.max_new_tokens} leaves no room "
                f"for the prompt in the model's max_length {self.clone.spec.format.max_length}"
            )
        ids, _ = self.clone.prompts.fit(self.history, speaker, budget)
        stop_texts = (self.clone.spec.format.end_of_turn, self.clone.prompts.turn_end(speaker))
        if stream and show and n == 1:
            emit = self.printer.start(speaker)
            draws = 1 if self.generator.sampling.greedy else self.attempts
            for attempt in range(1, draws + 1):
                replies = self.generator.turn(ids, speaker, stop_texts, 1, emit)
                done = bool(replies[0].text) or replies[0].stopped == "interrupted" or attempt == draws
                replies[0].attempt, replies[0].shown = attempt, done
                self.replies += replies
                if done:
                    break
            emit(shown_text(replies[0])[len(replies[0].text) :])  # the `…` mark, or `(no reply)`
            self.printer.end()
        else:
            replies = self.generator.turn(ids, speaker, stop_texts, n)
            self.replies += replies
            for reply in replies if show else ():
                self.printer.turn(speaker, shown_text(reply), reply.candidate + 1 if n > 1 else None)
        first = replies[0]
        if first.text:
            self.history.append(self.clone.prompts.message(speaker, first.text))
        self.transcript.append(
            {
                "conversation": self.conversation,
                "turn": len(self.history),
                "speaker": speaker,
                "by": "model",
                "time": time.time(),
                **first.record(),
                "attempts": first.attempt,
            }
        )
        for key in ("attempt", "shown"):  # `attempts` says it for the transcript
            self.transcript[-1].pop(key)
        return replies

    @property
    def last_speaker(self) -> str | None:
        """Who spoke the last turn shown in the current conversation (a `(no reply)` turn included)."""
        last = self.transcript[-1] if self.transcript else None
        return last["speaker"] if last and last["conversation"] == self.conversation else None

    def reset(self) -> None:
        self.history.clear()
        self.conversation += 1

    def open_with(self, messages: list[dict], by: str = "prompt") -> None:
        for message in messages:
            self.add(message["name"], message["content"], by)
            self.printer.turn(message["name"], message["content"])


def next_speaker(last: str | None, target: str, others: list[str], rng: random.Random, allow_same: bool = False) -> str:
    """The target answers anyone else; after the target (or at the start) one of the others speaks. Nobody speaks
    twice in a row unless `allow_same`, which lets the last speaker go on as one more choice."""
    choices = [target] if last is not None and last != target else list(others)
    if allow_same and last is not None:
        choices = list(dict.fromkeys([*choices, last]))
    return choices[0] if len(choices) == 1 else rng.choice(choices)


def grow(session: Session, others: list[str], turns: int, rng: random.Random, allow_same: bool = False) -> None:
    """Generate `turns` further turns of the conversation, each printed as it streams."""
    for _ in range(turns):
        session.generate(next_speaker(session.last_speaker, session.target, others, rng, allow_same))


def read_line(stdin: TextIO, out: TextIO, err: TextIO, prompt: str, interactive: bool) -> str | None:
    """A line typed or piped in (None at EOF or Ctrl-C). The input prompt is shown only to a person at a terminal:
    with input() (line editing) when the conversation goes to the terminal too, else on stderr."""
    import sys

    try:
        if interactive and stdin is sys.stdin and out is sys.stdout and out.isatty():
            try:
                import readline  # noqa: F401  (line editing and history for input())
            except ImportError:
                pass
            return input(prompt)
        if interactive:
            err.write(prompt)
            err.flush()
        line = stdin.readline()
    except (EOFError, KeyboardInterrupt):
        if interactive:
            err.write("\n")
        return None
    return None if line == "" else line.rstrip("\r\n")
