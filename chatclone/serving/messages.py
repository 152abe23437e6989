"""OpenAI chat `messages` as a clone's conversation: the history that inference.py's PromptBuilder renders.

The one conversion every front end shares (serve.py's API, a chat bot): a `user` message is the clone's partner
(`name` says which speaker it is in a group chat; without one, the partner inference.py would name), an
`assistant` message is the target, and a `system` (or `developer`) message is checked against the system prompt the
clone was trained with: training ran with exactly one, and a different one is the drift from training that makes a
clone sound like an assistant again. `refuse` (the default) answers a different one with an error naming the
message; `ignore` drops every system message (for UIs that always send their own). Either way the prompt is the
training one.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatclone.config.serve import SystemMessages
from chatclone.formatting import ASSISTANT, USER

SYSTEM_ROLES = ("system", "developer")
MAX_NAME_CHARS = 64


class MessageError(ValueError):
    """A message that cannot be part of a clone's conversation; `param` names it (`messages[2].name`)."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Speakers:
    """Who is who: the clone's target, the partner an unnamed user message is from, the training system prompt."""

    target: str
    partner: str
    system_prompt: str
    system_messages: SystemMessages = SystemMessages.refuse


def message_text(content: object, param: str) -> str:
    """A message's text: a string, or OpenAI content parts of type `text` (other parts are refused)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise MessageError(
                    f"{param}[{index}]: only text content parts are supported, not {kind!r}", f"{param}[{index}]"
                )
            texts.append(part["text"])
        return "\n".join(texts)
    raise MessageError(f"{param}: must be a string or a list of text parts", param)


def speaker_name(name: object, speakers: Speakers, param: str) -> str:
    if not isinstance(name, str) or not name.strip() or ":" in name or "\n" in name or len(name) > MAX_NAME_CHARS:
        raise MessageError(
            f"{param}: {name!r} is not a speaker name (1-{MAX_NAME_CHARS} characters, no colons or newlines)", param
        )
    name = name.strip()
    if name.casefold() == speakers.target.casefold():
        raise MessageError(
            f"{param}: {name!r} is the clone's own name; the clone's turns are `assistant` messages", param
        )
    return name


def to_history(messages: list[dict], speakers: Speakers) -> list[dict]:
    """process_messages-style messages (`role`, `name`, `content`) for PromptBuilder, from OpenAI `messages`."""
    history: list[dict] = []
    for index, message in enumerate(messages):
        at = f"messages[{index}]"
        role = message.get("role")
        text = message_text(message.get("content"), f"{at}.content").strip()
        if role in SYSTEM_ROLES:
            _check_system(text, speakers, at)
            continue
        if role == "user":
            name = message.get("name")
            who = speakers.partner if name is None else speaker_name(name, speakers, f"{at}.name")
            history.append({"role": USER, "name": who, "content": text})
        elif role == "assistant":
            history.append({"role": ASSISTANT, "name": speakers.target, "content": text})
        else:
            raise MessageError(f"{at}.role: {role!r} is not supported (system, user or assistant)", f"{at}.role")
        if not text:
            raise MessageError(f"{at}.content: empty; every user and assistant message needs text", f"{at}.content")
    if not history:
        raise MessageError("messages: at least one user or assistant message is needed", "messages")
    return history


def _check_system(text: str, speakers: Speakers, at: str) -> None:
    if speakers.system_messages is SystemMessages.ignore or text == speakers.system_prompt.strip():
        return
    raise MessageError(
        f"{at}: a system message that differs from the one the clone was trained with is refused "
        "(a new system prompt pulls a clone back to an assistant's voice); leave it out, send "
        "the training one (GET /v1/models lists it), or start the server with "
        "system_messages=ignore",
        f"{at}.content",
    )


def names_in(history: list[dict]) -> list[str]:
    """Every speaker of a history, in order of appearance (the speaker safety net must know them all)."""
    return list(dict.fromkeys(m["name"] for m in history))
