"""Go text/template semantics for exactly the constructs chatclone's Ollama TEMPLATE uses, to check it in Python.

Supported: text; `{{ .Field }}`, `{{ $var }}`, `{{ "string literal" }}`; `{{ $var := pipeline }}` and
`{{ $var = pipeline }}` (one function-wide scope, which is what a variable declared before a `range` and assigned
inside it gets in Go); `{{ if p }}` / `{{ else if p }}` / `{{ else }}` / `{{ end }}`; `{{ range .List }}`; the
functions `eq`, `or` and `printf "%.Ns"` (a string's first N runes), with parenthesised calls. Truth as in Go:
empty strings, lists and false are false. No trim markers (`{{-`), no pipes `|`, nothing else: anything else raises.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r'\s*(?:(\()|(\))|("(?:[^"\\]|\\.)*")|(:=|=)|(\.[A-Za-z_]\w*|\$\w*)|([A-Za-z_]\w*))')
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)")


def _unquote(literal: str) -> str:
    def one(match: re.Match) -> str:
        code = match.group(1)
        if code[0] in "uU" and len(code) > 1:
            return chr(int(code[1:], 16))
        return {"n": "\n", "t": "\t", "r": "\r"}.get(code, code)

    return _ESCAPE.sub(one, literal[1:-1])


def _split(template: str) -> list[tuple[str, str]]:
    """[("text", ...), ("action", inside {{ }})], quotes inside actions respected."""
    parts, at = [], 0
    while (start := template.find("{{", at)) >= 0:
        parts.append(("text", template[at:start]))
        i, quoted = start + 2, False
        while True:
            if i >= len(template):
                raise ValueError("unclosed action")
            ch = template[i]
            if quoted and ch == "\\":
                i += 2
                continue
            if ch == '"':
                quoted = not quoted
            elif not quoted and template.startswith("}}", i):
                break
            i += 1
        action = template[start + 2 : i]
        if action.startswith("-") or action.endswith("-"):
            raise ValueError("trim markers are not supported")
        parts.append(("action", action.strip()))
        at = i + 2
    parts.append(("text", template[at:]))
    return parts


def _tokens(action: str) -> list[str]:
    out, at = [], 0
    while at < len(action.rstrip()):
        match = _TOKEN.match(action, at)
        if not match:
            raise ValueError(f"unsupported action {action!r}")
        out.append(next(g for g in match.groups() if g is not None))
        at = match.end()
    return out


def _parse(parts: list[tuple[str, str]], at: int = 0, stop: tuple[str, ...] = ()) -> tuple[list, int, str]:
    """Nodes up to one of `stop` (`end`, `else`); returns (nodes, next index, the action that stopped)."""
    nodes: list = []
    while at < len(parts):
        kind, value = parts[at]
        at += 1
        if kind == "text":
            nodes.append(("text", value))
            continue
        words = _tokens(value)
        head = words[0] if words else ""
        if head in ("end", "else") and stop:
            return nodes, at, value
        if head == "if":
            branches, otherwise = [], []
            cond = words[1:]
            while True:
                body, at, ended = _parse(parts, at, ("end", "else"))
                branches.append((cond, body))
                rest = _tokens(ended)
                if rest[0] == "end":
                    break
                if rest[1:2] == ["if"]:
                    cond = rest[2:]
                    continue
                otherwise, at, _ = _parse(parts, at, ("end",))
                break
            nodes.append(("if", branches, otherwise))
        elif head == "range":
            body, at, _ = _parse(parts, at, ("end",))
            nodes.append(("range", words[1:], body))
        elif len(words) >= 2 and words[0].startswith("$") and words[1] in (":=", "="):
            nodes.append(("set", words[0], words[2:]))
        else:
            nodes.append(("print", words))
    if stop:
        raise ValueError("missing {{ end }}")
    return nodes, at, ""


def _value(words: list[str], dot: Any, variables: dict) -> Any:
    value, rest = _operand(words, 0, dot, variables)
    if rest == len(words):
        return value
    return _call(words, dot, variables)


def _call(words: list[str], dot: Any, variables: dict) -> Any:
    name, args, at = words[0], [], 1
    while at < len(words):
        value, at = _operand(words, at, dot, variables)
        args.append(value)
    if name == "eq":
        return any(args[0] == other for other in args[1:])
    if name == "or":
        return next((a for a in args if a), args[-1])
    if name == "printf":
        match = re.fullmatch(r"%\.(\d+)s", args[0])
        if not match:
            raise ValueError(f"unsupported printf format {args[0]!r}")
        return str(args[1])[: int(match.group(1))]
    raise ValueError(f"unsupported function {name!r}")


def _operand(words: list[str], at: int, dot: Any, variables: dict) -> tuple[Any, int]:
    word = words[at]
    if word == "(":
        depth, end = 1, at + 1
        while depth:
            depth += {"(": 1, ")": -1}.get(words[end], 0)
            end += 1
        return _value(words[at + 1 : end - 1], dot, variables), end
    if word.startswith('"'):
        return _unquote(word), at + 1
    if word.startswith("."):
        return dot.get(word[1:], "") if isinstance(dot, dict) else "", at + 1
    if word.startswith("$"):
        return variables[word], at + 1
    if at == 0:
        return None, at  # a function call: handled by _call
    raise ValueError(f"unsupported operand {word!r}")


def _run(nodes: list, dot: Any, variables: dict, out: list[str]) -> None:
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "print":
            out.append(str(_value(node[1], dot, variables)))
        elif node[0] == "set":
            variables[node[1]] = _value(node[2], dot, variables)
        elif node[0] == "if":
            for cond, body in node[1]:
                if _value(cond, dot, variables):
                    _run(body, dot, variables, out)
                    break
            else:
                _run(node[2], dot, variables, out)
        elif node[0] == "range":
            for item in _value(node[1], dot, variables) or []:
                _run(node[2], item, variables, out)


def render(template: str, data: dict) -> str:
    """`template` executed on `data` (dicts for Go structs) as Ollama's text/template would execute it."""
    nodes, _, _ = _parse(_split(template))
    out: list[str] = []
    _run(nodes, data, {"$": data}, out)
    return "".join(out)
