"""Prompts at inference, rendered exactly as the training data was: same units, turns and chat template.

A conversation is a list of process_messages-style messages (`{"role", "name", "content"}`, the target being
`assistant`). The prompt for the next turn is the conversation plus that turn with a placeholder for its text,
rendered through chatclone.formatting (speaker names, merged same-role runs, system prompt placement) and cut at
the placeholder: whatever the template writes before a turn's text (`<|im_start|>assistant\n`, or `Orrin: ` inside a
user turn) is in the prompt, as in training. Trailing spaces are left for the model to write (a tokenizer
attaches them to the next word), so the reply is stripped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from chatclone.errors import ChatcloneError
from chatclone.formatting import ASSISTANT, USER, Renderer, Style, build_units, window_turns

PLACEHOLDER = "\ue00f"  # private use: never in a template or a message (the Renderer's markers are \ue000-\ue002)


@dataclass(frozen=True)
class PromptFormat:
    """How the clone's training data was rendered (from its tokenize_dataset run)."""

    target: str
    style: Style
    template: str
    end_of_turn: str
    max_length: int


class PromptBuilder:
    """Prompt text for the next turn of a conversation, for the target or any other speaker."""

    def __init__(self, tokenizer: Any, fmt: PromptFormat):
        self.tokenizer, self.format = tokenizer, fmt
        self.renderer = Renderer(tokenizer, fmt.template, fmt.end_of_turn, where="the clone's chat template")

    def message(self, speaker: str, content: str) -> dict:
        role = ASSISTANT if speaker == self.format.target else USER
        return {"role": role, "name": speaker, "content": content}

    def render(self, history: list[dict], speaker: str) -> tuple[str, str]:
        """(prompt text for `speaker`'s next turn, the template's text right after that turn's content)."""
        units = build_units([*history, self.message(speaker, PLACEHOLDER)], self.format.style)
        turns = window_turns(units, 0, len(units) - 1, len(units), self.format.style)
        text, _ = self.renderer.render(turns)
        at = text.index(PLACEHOLDER)
        return text[:at].rstrip(" "), text[at + 1 :]

    def fit(self, history: list[dict], speaker: str, budget: int) -> tuple[list[int], int]:
        """Token ids of the prompt, dropping the oldest messages until it fits `budget` tokens; (ids, dropped)."""
        for dropped in range(len(history) + 1):
            text, _ = self.render(history[dropped:], speaker)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) <= budget:
                return ids, dropped
        raise ChatcloneError(
            f"the prompt takes {len(ids)} tokens even without earlier messages, more than the "
            f"{budget} the model has room for (model max_length {self.format.max_length} minus "
            "sampling.max_new_tokens): shorten the message or lower sampling.max_new_tokens"
        )

    def turn_end(self, speaker: str) -> str:
        """What the template writes after a turn of `speaker` (its first line, stripped): a stop text."""
        _, after = self.render([], speaker)
        return after.strip().split("\n")[0].strip()


def parse_prompt(text: str, names: list[str], default_speaker: str) -> list[dict]:
    """Opening messages from prompt text: a line `Name: text` with a known name starts that speaker's message;
    other lines continue the message before (or start one by `default_speaker`)."""
    known = {n.casefold(): n for n in names}
    messages: list[dict] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        match = re.match(r"\s*([^:\n]{1,64}):\s?(.*)$", line)
        name = known.get(match.group(1).strip().casefold()) if match else None
        if name is not None:
            messages.append({"name": name, "content": match.group(2)})
        elif messages:
            messages[-1]["content"] += "\n" + line
        else:
            messages.append({"name": default_speaker, "content": line})
    out = [{**m, "content": m["content"].strip()} for m in messages]
    if not any(m["content"] for m in out):
        raise ChatcloneError("prompt is empty: give the opening message some text")
    return [m for m in out if m["content"]]
