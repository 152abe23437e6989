"""Render turns through a chat template and locate every turn's content in the rendered text.

Where is each message in the rendered string? Searching the text for the message (or for a header such as
`<|im_start|>assistant\n`) breaks when a user says exactly what the target says next, or when a template moves
text around (Mistral's v3 template puts the system prompt inside the *last* user turn). Instead, each message's
content is wrapped in private-use marker characters, the conversation is rendered once through the template,
and the markers show exactly where each message landed; removing them gives the text to tokenize. Every render
is checked: each message must appear once, verbatim, and each assistant turn must be followed by the
end-of-turn token, otherwise chatclone stops with an error instead of labelling the wrong characters.
`check` (run on a probe and the first conversations before the long work) also compares the result with
transformers' own `apply_chat_template` on the unmarked messages.
"""

from __future__ import annotations

import re
from typing import Any

from chatclone.errors import ChatcloneError
from chatclone.formatting.turns import ASSISTANT, RESERVED, SYSTEM, Turn

_OPEN, _MID, _CLOSE = RESERVED  # private-use characters: never in a template's text, removed from messages
_MARKED = re.compile(f"{_OPEN}(\\d+){_MID}(.*?){_CLOSE}", re.DOTALL)


class Renderer:
    """Renders turns with `template`; returns the text and the character offset of each turn's content."""

    def __init__(self, tokenizer: Any, template: str, end_of_turn: str, where: str, hints: str = ""):
        self.tokenizer, self.template, self.end_of_turn = tokenizer, template, end_of_turn
        self.where, self.hints = where, hints
        self._special_tokens = dict(tokenizer.special_tokens_map)
        self._compiled: Any = None

    def __getstate__(self) -> dict:  # compiled Jinja templates do not pickle (datasets.map workers)
        return {**self.__dict__, "_compiled": None}

    def render(self, turns: list[Turn]) -> tuple[str, list[int]]:
        marked = self._apply(
            [{"role": t.role, "content": f"{_OPEN}{i}{_MID}{t.content}{_CLOSE}"} for i, t in enumerate(turns)]
        )
        pieces, starts, at, previous, last = [], [-1] * len(turns), 0, 0, None
        for match in _MARKED.finditer(marked):
            index, content = int(match.group(1)), match.group(2)
            if index >= len(turns) or starts[index] >= 0 or content != turns[index].content:
                self._fail(
                    turns,
                    "does not render each message once and verbatim (it trims, escapes, rewrites or repeats them)",
                )
            chrome = marked[previous : match.start()]
            self._check_end(turns, last, chrome)
            starts[index] = at + len(chrome)
            pieces += [chrome, content]
            at, previous, last = starts[index] + len(content), match.end(), index
        tail = marked[previous:]
        self._check_end(turns, last, tail)
        if -1 in starts:
            dropped = turns[starts.index(-1)].role
            what = "the system prompt" if dropped == SYSTEM else f"{dropped} turns"
            hint = " (set model.system_role=false to fold it into the first user turn)" if dropped == SYSTEM else ""
            self._fail(turns, f"drops {what}{hint}")
        return "".join(pieces) + tail, starts

    def _check_end(self, turns: list[Turn], index: int | None, after: str) -> None:
        """The template's text right after an assistant turn must start with the end-of-turn token."""
        if index is not None and turns[index].role == ASSISTANT and not after.startswith(self.end_of_turn):
            self._fail(
                turns,
                f"does not end assistant turns with model.end_of_turn={self.end_of_turn!r} (it writes "
                f"{after[:20]!r}); set model.end_of_turn to the token it does write",
            )

    def check(self, turns: list[Turn]) -> None:
        """The text `render` produces must be what transformers renders for the same (unmarked) messages."""
        text, _ = self.render(turns)
        if text != self._apply([{"role": t.role, "content": t.content} for t in turns], reference=True):
            self._fail(
                turns,
                "renders differently once message text is marked (it inspects message content), "
                "so the target's tokens cannot be located; use another template (model.chat_template)",
            )

    def _fail(self, turns: list[Turn], what: str) -> None:
        raise ChatcloneError(f"{self.where}: the chat template {what}, in a conversation of roles {_roles(turns)}")

    def _apply(self, messages: list[dict], reference: bool = False) -> str:
        """Render plain {role, content} messages. The template compiled by transformers is called directly (what
        `apply_chat_template` does after copying and checking its inputs, a third of its time); `check` compares
        the two (`reference=True` goes through `apply_chat_template`)."""
        from jinja2 import TemplateError

        try:
            if reference:
                return self.tokenizer.apply_chat_template(messages, chat_template=self.template, tokenize=False)
            if self._compiled is None:
                from transformers.utils.chat_template_utils import _compile_jinja_template

                self._compiled = _compile_jinja_template(self.template)
            return self._compiled.render(
                messages=messages, tools=None, documents=None, add_generation_prompt=False, **self._special_tokens
            )
        except TemplateError as error:
            raise ChatcloneError(
                f"{self.where}: the chat template cannot express a conversation of roles "
                f"{_roles(messages)} ({' '.join(str(error).split())}){self.hints}"
            ) from None


def _roles(turns: list) -> str:
    text = "/".join(t["role"] if isinstance(t, dict) else t.role for t in turns)
    return text if len(text) <= 80 else text[:77] + "..."
