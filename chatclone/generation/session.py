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

EMPTY_RETRIES = 2   # further draws for a sampled turn that came out empty


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

    def __init__(self, clone: Clone, generator: Generator, printer: Printer, names: list[str]):
        self.clone, self.generator, self.printer = clone, generator, printer
        self.names = list(dict.fromkeys([clone.spec.target, *names]))
        self.history: list[dict] = []
        self.transcript: list[dict] = []
        self.replies: list[Reply] = []
        self.conversation = 0   # bumped by reset()

    @property
    def target(self) -> str:
        return self.clone.spec.target

    def add(self, speaker: str, content: str, by: str) -> None:
        """A turn not generated here (typed by the user, or from the prompt)."""
        self.history.append(self.clone.prompts.message(speaker, content))
        self.transcript.append({"conversation": self.conversation, "turn": len(self.history), "speaker": speaker,
                                "by": by, "text": content, "time": time.time()})

    def generate(self, speaker: str, stream: bool = True, n: int = 1, show: bool = True) -> list[Reply]:
        """The model's next turn(s) for `speaker`; the first candidate joins the history (if not empty)."""
        budget = self.clone.spec.format.max_length - self.generator.sampling.max_new_tokens
        if budget < 1:
            raise ChatcloneError(f"sampling.max_new_tokens={self.generator.sampling.max_new_tokens} leaves no room "
                                 f"for the prompt in the model's max_length {self.clone.spec.format.max_length}")
        ids, _ = self.clone.prompts.fit(self.history, speaker, budget)
        stop_texts = (self.clone.spec.format.end_of_turn, self.clone.prompts.turn_end(speaker))
        if stream and show and n == 1:
            emit, attempts = self.printer.start(speaker), 0
            while True:  # a sampled turn cut to nothing (it began with someone's `Name:`) gets another draw
                replies, attempts = self.generator.turn(ids, speaker, stop_texts, 1, emit), attempts + 1
                self.replies += replies
                if replies[0].text or self.generator.sampling.greedy or attempts > EMPTY_RETRIES:
                    break
            self.printer.end()
        else:
            replies, attempts = self.generator.turn(ids, speaker, stop_texts, n), 1
            self.replies += replies
            for reply in replies if show else ():
                self.printer.turn(speaker, reply.text, reply.candidate + 1 if n > 1 else None)
        first = replies[0]
        if first.text:
            self.history.append(self.clone.prompts.message(speaker, first.text))
        self.transcript.append({"conversation": self.conversation, "turn": len(self.history), "speaker": speaker,
                                "by": "model", "time": time.time(), **first.record(), "attempts": attempts})
        return replies

    def reset(self) -> None:
        self.history.clear()
        self.conversation += 1

    def open_with(self, messages: list[dict], by: str = "prompt") -> None:
        for message in messages:
            self.add(message["name"], message["content"], by)
            self.printer.turn(message["name"], message["content"])


def next_speaker(history: list[dict], target: str, others: list[str], rng: random.Random) -> str:
    """The target answers anyone else; after the target (or at the start) one of the others speaks."""
    if history and history[-1]["name"] != target:
        return target
    return rng.choice(others)


def grow(session: Session, others: list[str], turns: int, rng: random.Random) -> None:
    """Generate `turns` further turns of the conversation, each printed as it streams."""
    for _ in range(turns):
        session.generate(next_speaker(session.history, session.target, others, rng))


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
