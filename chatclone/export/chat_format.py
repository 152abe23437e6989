"""The training chat format as an Ollama TEMPLATE (Go text/template), checked against chatclone's own renderer.

A chat template renders each turn as `prefix(role) + content + suffix(role)` for the templates chatclone trains
(ChatML, Mistral's [INST]); `turn_pieces` finds those pieces by rendering probe turns through the run's template
with chatclone's Renderer (which locates every turn's content exactly), and `go_template` writes them as a template
of a few constructs: `if`/`else if`/`else`, `range .Messages`, `eq`, `or`, `printf "%.Ns"` (a content's first N
characters) and one variable (the system prompt folded into the first user turn, for templates without a system
role). Ollama hands a template the conversation as `.Messages` (role + content) and the system prompt as `.System`.

Other speakers: training wrote every other speaker's turn as `Name: text`. A user message that already starts with
a partner's `Name: ` (the way API clients pass several speakers) is written as it is; any other user message is the
default partner's (`user_name`) and gets `user_name: ` in front, so what you type in `ollama run` reads as training.
`jinja_template` writes the same format as a Jinja chat template, for llama.cpp (`--jinja`) and LM Studio, which read
it from the GGUF. `check_templates` renders validation conversations with both and with chatclone's renderer
(chatclone.export.gotemplate mirrors Go's semantics for exactly the constructs used) and refuses the export if one
byte differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from chatclone.errors import ChatcloneError
from chatclone.formatting import ASSISTANT, SYSTEM, USER, Turn
from chatclone.formatting.turns import SYSTEM_FOLD_SEPARATOR
from chatclone.generation.prompt import PromptBuilder


@dataclass(frozen=True)
class TurnPieces:
    head: str  # before the first turn, with no system prompt (a template's default system turn too)
    system_open: str  # system_role templates: before the system prompt (head included) ...
    system_close: str  # ... and after it
    user: tuple[str, str]  # text before and after a user turn's content
    assistant: tuple[str, str]
    reply: str  # what opens the target's reply (the prompt ends with it)
    fold: bool  # no system role: the system prompt opens the first user turn's content


def _chrome(builder: PromptBuilder, turns: list[Turn]) -> list[str]:
    """Text before each turn's content, then the text after the last one."""
    text, starts = builder.renderer.render(turns)
    ends = [s + len(t.content) for s, t in zip(starts, turns)]
    return [text[(ends[i - 1] if i else 0) : s] for i, s in enumerate(starts)] + [text[ends[-1] :]]


def _strip(text: str, prefix: str = "", suffix: str = "") -> str:
    if not text.startswith(prefix) or not text.endswith(suffix) or len(text) < len(prefix) + len(suffix):
        raise ValueError(text)
    return text[len(prefix) : len(text) - len(suffix)]


def turn_pieces(builder: PromptBuilder) -> TurnPieces:
    """The run's template as per-role pieces; one line if it does not render turns independently."""
    u, a, u2 = Turn(USER, "hey"), Turn(ASSISTANT, "yo"), Turn(USER, "ok")
    fold = not builder.format.style.system_role
    try:
        c_u, after_u = _chrome(builder, [u])
        _, c_a, after_a = _chrome(builder, [u, a])
        _, _, c_u2, _ = _chrome(builder, [u, a, u2])
        user_open = _strip(c_u2, prefix=after_a)
        assistant_open = _strip(c_a, prefix=after_u)
        head = _strip(c_u, suffix=user_open)
        system_open = system_close = ""
        if not fold:
            c_s, c_su, _ = _chrome(builder, [Turn(SYSTEM, "be brief"), u])
            system_open, system_close = c_s, _strip(c_su, suffix=user_open)
    except (ValueError, ChatcloneError) as error:
        raise ChatcloneError(
            "the run's chat template does not render each turn as prefix + text + suffix, so no "
            f"Ollama TEMPLATE can reproduce it ({error}); use the GGUF with the prompt built by "
            "chatclone (inference.py)"
        ) from None
    reply = assistant_open.rstrip(" ")  # PromptBuilder.render leaves trailing spaces for the model to write
    return TurnPieces(head, system_open, system_close, (user_open, after_u), (assistant_open, after_a), reply, fold)


def go_literal(text: str) -> str:
    """`text` as Go template text that survives the Modelfile parser: `{{`, a third `"` in a row (it would close the
    TEMPLATE \"\"\"...\"\"\") and characters the parser drops (non-printable) become string-literal actions."""
    out, quotes = [], 0
    for i, ch in enumerate(text):
        risky = (
            (ch == "{" and text[i + 1 : i + 2] == "{")
            or (ch == '"' and quotes >= 2)
            or not (ch.isprintable() or ch in "\n\t")
        )
        if risky:
            out.append("{{ " + go_string(ch) + " }}")
            quotes = 0
        else:
            out.append(ch)
            quotes = quotes + 1 if ch == '"' else 0
    return "".join(out)


def go_string(text: str) -> str:
    """A Go interpreted string literal (ASCII only, so the Modelfile parser keeps every character)."""
    body = []
    for ch in text:
        if ch in '"\\':
            body.append("\\" + ch)
        elif 32 <= ord(ch) < 127:
            body.append(ch)
        else:
            body.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return '"' + "".join(body) + '"'


def _name_check(names: list[str], user_name: str) -> str:
    """Write `user_name: ` before a user message unless it already starts with a known speaker's `Name: `."""
    tests = " ".join(f'(eq (printf "%.{len(n) + 2}s" .Content) {go_string(n + ": ")})' for n in names)
    return f"{{{{ if or {tests} }}}}{{{{ else }}}}{go_literal(user_name + ': ')}{{{{ end }}}}"


def go_template(pieces: TurnPieces, names: list[str], user_name: str | None) -> str:
    """The Ollama TEMPLATE: no trim markers (`{{-`), so every byte of literal text is written as it stands."""
    lit = go_literal
    name = _name_check(names, user_name) if user_name else ""
    (u_open, u_close), (a_open, a_close) = pieces.user, pieces.assistant
    if pieces.fold:
        head = lit(pieces.head) + "{{ $system := .System }}"
        user = (
            f"{lit(u_open)}{{{{ if $system }}}}{{{{ $system }}}}{lit(SYSTEM_FOLD_SEPARATOR)}"
            f'{{{{ $system = "" }}}}{{{{ end }}}}{name}{{{{ .Content }}}}{lit(u_close)}'
        )
    else:
        head = (
            f"{{{{ if .System }}}}{lit(pieces.system_open)}{{{{ .System }}}}{lit(pieces.system_close)}"
            f"{{{{ else }}}}{lit(pieces.head)}{{{{ end }}}}"
        )
        user = f"{lit(u_open)}{name}{{{{ .Content }}}}{lit(u_close)}"
    assistant = f"{lit(a_open)}{{{{ .Content }}}}{lit(a_close)}"
    return (
        f'{head}{{{{ range .Messages }}}}{{{{ if eq .Role "user" }}}}{user}'
        f'{{{{ else if eq .Role "assistant" }}}}{assistant}{{{{ end }}}}{{{{ end }}}}{lit(pieces.reply)}'
    )


def jinja_string(text: str) -> str:
    """A Jinja string literal (jinja2 unescapes literals with Python's unicode-escape codec)."""
    escapes = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return '"' + "".join(escapes.get(ch) or (ch if ch.isprintable() else f"\\U{ord(ch):08x}") for ch in text) + '"'


def jinja_template(pieces: TurnPieces, names: list[str], user_name: str | None, system: str) -> str:
    """The same format as a Jinja chat template (llama.cpp `--jinja`, llama-server, LM Studio read it from the GGUF):
    `messages` of role + content, a leading system message replacing the run's system prompt, and no literal text
    (every piece is a string literal), so whitespace control cannot eat a newline of the format."""
    s = jinja_string
    (u_open, u_close), (a_open, a_close) = pieces.user, pieces.assistant
    name = ""
    if user_name:
        tests = " or ".join(f"m['content'].startswith({s(n + ': ')})" for n in names)
        name = f"{{%- if not ({tests}) -%}}{{{{ {s(user_name + ': ')} }}}}{{%- endif -%}}"
    parts = [
        "{%- if messages and messages[0]['role'] == 'system' -%}{%- set system = messages[0]['content'] -%}"
        "{%- set turns = messages[1:] -%}{%- else -%}"
        f"{{%- set system = {s(system)} -%}}{{%- set turns = messages -%}}{{%- endif -%}}"
    ]
    if pieces.fold:
        parts.append(f"{{{{ {s(pieces.head)} }}}}{{%- set ns = namespace(system=system) -%}}")
        fold = (
            f"{{%- if ns.system -%}}{{{{ ns.system }}}}{{{{ {s(SYSTEM_FOLD_SEPARATOR)} }}}}"
            "{%- set ns.system = '' -%}{%- endif -%}"
        )
    else:
        parts.append(
            f"{{%- if system -%}}{{{{ {s(pieces.system_open)} }}}}{{{{ system }}}}"
            f"{{{{ {s(pieces.system_close)} }}}}{{%- else -%}}{{{{ {s(pieces.head)} }}}}{{%- endif -%}}"
        )
        fold = ""
    parts.append(
        "{%- for m in turns -%}{%- if m['role'] == 'user' -%}"
        f"{{{{ {s(u_open)} }}}}{fold}{name}{{{{ m['content'] }}}}{{{{ {s(u_close)} }}}}"
        f"{{%- elif m['role'] == 'assistant' -%}}{{{{ {s(a_open)} }}}}{{{{ m['content'] }}}}"
        f"{{{{ {s(a_close)} }}}}{{%- endif -%}}{{%- endfor -%}}"
    )
    parts.append(f"{{%- if add_generation_prompt -%}}{{{{ {s(pieces.reply)} }}}}{{%- endif -%}}")
    return "\n".join(parts)


def ollama_messages(
    history: list[dict], target: str, user_name: str | None, system: str, collate: bool = True
) -> list[dict]:
    """A chatclone conversation as the messages an Ollama client sends (other speakers as `Name: text`), then
    collated as Ollama does before the template sees them (consecutive messages of one role joined by a blank line)."""
    messages = [{"role": "system", "content": system}] if system else []
    for m in history:
        if m["name"] == target:
            messages.append({"role": "assistant", "content": m["content"]})
        else:
            named = user_name is not None and m["name"] != user_name
            messages.append({"role": "user", "content": f"{m['name']}: {m['content']}" if named else m["content"]})
    if not collate:  # what a Jinja chat template gets from llama.cpp or LM Studio
        return messages
    collated: list[dict] = []
    for m in messages:
        if collated and collated[-1]["role"] == m["role"]:
            collated[-1] = {**collated[-1], "content": collated[-1]["content"] + "\n\n" + m["content"]}
        else:
            collated.append(dict(m))
    return collated


def template_data(messages: list[dict]) -> dict:
    """What Ollama's template.Execute hands a `.Messages` template: the collated messages as Go structs (`.Role`,
    `.Content`) and `.System`, every system message joined by a blank line."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return {"System": system, "Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages]}


def check_templates(
    go: str,
    jinja: str,
    builder: PromptBuilder,
    conversations: list[list[dict]],
    user_name: str | None,
    names: list[str],
) -> int:
    """Render the prompt of every target turn of `conversations` with both templates and with chatclone's renderer;
    the number of target turns compared. The Ollama template gets each history from the latest point where roles
    alternate (Ollama merges consecutive messages of one role); the Jinja one gets that and, for templates that
    keep same-role turns apart, the whole history. One differing byte refuses the export, naming the turn.

    The target's turns are the `assistant` ones, whatever name they carry (a server nickname is still the
    target). Histories no template could tell apart are passed over (`_ambiguous`)."""
    from transformers.utils.chat_template_utils import _compile_jinja_template

    from chatclone.export.gotemplate import render

    target, system = builder.format.target, builder.format.style.system_prompt
    compiled = _compile_jinja_template(jinja)
    compared = 0
    for number, messages in enumerate(conversations):
        chat = [
            {
                "role": m["role"],
                "name": target if m["role"] == ASSISTANT else m["name"],
                "content": m["content"].strip(),
            }
            for m in messages
        ]
        for k, message in enumerate(chat):
            full = chat[:k]
            tail = alternating_tail(full, target)
            if message["name"] != target or not tail or _ambiguous(full, target, user_name, names):
                continue
            cases = [
                ("Ollama", tail, lambda h: render(go, template_data(ollama_messages(h, target, user_name, system))))
            ]
            jinja_cases = [tail] + ([full] if not builder.format.style.alternating_roles and full != tail else [])
            cases += [
                (
                    "Jinja",
                    h,
                    lambda h: compiled.render(
                        messages=ollama_messages(h, target, user_name, system, collate=False),
                        add_generation_prompt=True,
                    ),
                )
                for h in jinja_cases
            ]
            for which, history, fill in cases:
                got, expected = fill(history), builder.render(history, target)[0]
                if got != expected:
                    raise ChatcloneError(
                        f"the {which} template renders validation conversation {number + 1}, turn "
                        f"{k + 1} differently from training: {json.dumps(got[-80:])} vs "
                        f"{json.dumps(expected[-80:])}"
                    )
            compared += 1
    return compared


def _ambiguous(history: list[dict], target: str, user_name: str | None, names: list[str]) -> bool:
    """What the templates cannot tell apart: a message of `user_name` that itself starts like another speaker's
    `Name: ` line (the template would take it for that speaker's), or a speaker the export does not know (not a
    partner in the training data: the template would take their `Name: text` for `user_name`'s text)."""
    if user_name is None:  # no speaker names in the prompt: every other message is plainly the user's
        return False
    unknown = any(m["name"] != target and m["name"] not in names for m in history)
    return unknown or any(m["name"] == user_name and m["content"].startswith(f"{n}: ") for m in history for n in names)


def alternating_tail(history: list[dict], target: str) -> list[dict]:
    """The end of `history` from where the target and the others alternate ([] unless it ends on another's turn)."""
    if not history or history[-1]["name"] == target:
        return []
    start = len(history) - 1
    while start > 0 and (history[start - 1]["name"] == target) != (history[start]["name"] == target):
        start -= 1
    return history[start:]
