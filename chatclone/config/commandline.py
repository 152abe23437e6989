"""Plain text on the command line: `input=Direct Messages - Orrin [1118608583297251434].json`, `prompt=hey, you up?`,
`prompt=what's up` and `prompt=are you free? (maybe)` mean what they say, instead of failing in Hydra's override
parser (brackets read as a list, a comma as a sweep, an apostrophe as an unclosed quote, parentheses as a function).

`accept_plain_text(config_name)`, called by each script before `@hydra.main` reads `sys.argv`, rewrites the value of
every free-text key (a `str`, `Optional[str]`, `list[str]` or `Any` field of the script's schema that is not a
config group) into Hydra's quoted form. Real Hydra syntax keeps its meaning: `null`, values already quoted,
interpolations, lists (`input='[a,b]'`, `speakers=[Orrin,Pippa]`) and, with `-m`, comma sweeps (`-m prompt=a,b`).
An override that still cannot be read (a key that is not free text, a comma without `-m`) fails with one line that
shows the quoted form to copy.
"""

from __future__ import annotations

import shlex
import sys
import typing
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from chatclone.errors import ChatcloneError

# Optional[str]; str (where `null` is the word); list[str]; Any (a path or a list of paths)
TEXT, REQUIRED_TEXT, LIST, PATHS = "text", "required text", "list", "paths"
FLAGS_WITH_VALUE = {
    "-c",
    "--cfg",
    "-p",
    "--package",
    "-cp",
    "--config-path",
    "-cn",
    "--config-name",
    "-cd",
    "--config-dir",
    "--experimental-rerun",
    "-i",
    "--info",
}
MULTIRUN_FLAGS = {"-m", "--multirun"}
CONF = Path(__file__).resolve().parents[2] / "conf"


def accept_plain_text(config_name: str, argv: list[str] | None = None) -> None:
    """Rewrite `sys.argv` (or `argv`) in place for `config_name`'s script; a bad override: `error: ...`, exit 2."""
    argv = sys.argv if argv is None else argv
    try:
        argv[1:] = plain_text_overrides(argv[1:], free_text_keys(schema_of(config_name)))
    except ChatcloneError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def schemas() -> dict[str, type]:
    """Every script's config name -> its schema, in pipeline order (the one list of the scripts)."""
    from chatclone import config

    return {
        "process_messages": config.ProcessMessagesConfig,
        "tokenize_dataset": config.TokenizeDatasetConfig,
        "train": config.TrainConfig,
        "inference": config.InferenceConfig,
        "generate_from_prompt": config.GenerateFromPromptConfig,
        "simulate_conversation": config.SimulateConversationConfig,
        "evaluate_clone": config.EvaluateCloneConfig,
        "serve": config.ServeConfig,
        "discord_bot": config.DiscordBotConfig,
        "export_model": config.ExportModelConfig,
        "judge_report": config.JudgeReportConfig,
    }


def compose(script: str, overrides: Sequence[str] = ()) -> Any:
    """`script`'s config as `python <script>.py <overrides>` builds it once its free text is quoted (the overrides
    are in Hydra's syntax): conf/<script>.yaml composed by Hydra, as the typed schema object the stage receives.
    For code that calls a stage without its script (the tests, the benchmarks), so every value it does not set is
    the one a user gets."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from chatclone import config  # noqa: F401  (registers the schemas, as every script does)

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name=script):
        return OmegaConf.to_object(hydra_compose(config_name=script, overrides=list(overrides)))


def schema_of(config_name: str) -> type:
    return schemas()[config_name]


def free_text_keys(schema: type, prefix: str = "", conf: Path = CONF) -> dict[str, str]:
    """Dotted key -> TEXT | REQUIRED_TEXT | LIST | PATHS for every free-text field of a dataclass schema, config
    groups left out (`preset=overfit` picks conf/preset/overfit.yaml: it must stay unquoted)."""
    keys: dict[str, str] = {}
    hints = typing.get_type_hints(schema)
    for f in fields(schema):
        key, hint = prefix + f.name, hints[f.name]
        if is_dataclass(hint):
            keys.update(free_text_keys(hint, key + ".", conf))
        elif (conf / key.replace(".", "/")).is_dir():
            continue
        elif hint is Any:
            keys[key] = PATHS
        elif hint == typing.Optional[str]:
            keys[key] = TEXT
        elif hint is str:
            keys[key] = REQUIRED_TEXT
        elif typing.get_origin(hint) is list and typing.get_args(hint) == (str,):
            keys[key] = LIST
    return keys


def plain_text_overrides(args: list[str], keys: dict[str, str]) -> list[str]:
    """`args` (sys.argv[1:]) with free-text values quoted for Hydra; raises ChatcloneError for an override that
    Hydra still could not read."""
    multirun = bool(MULTIRUN_FLAGS & set(args)) or "hydra.mode=MULTIRUN" in args
    out, skip_next = [], False
    for arg in args:
        override = not skip_next and not arg.startswith("-") and "=" in arg
        skip_next = arg in FLAGS_WITH_VALUE
        if override:
            key, value = arg.split("=", 1)
            kind = keys.get(key.lstrip("+"))
            if kind is not None:
                arg = f"{key}={_rewrite(key, value, kind, multirun)}"
            _check(arg, multirun)
        out.append(arg)
    return out


def _parse(override: str) -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_override(override)
    except Exception:  # noqa: BLE001  (Hydra raises its own exception types for every grammar error)
        return None


def _rewrite(key: str, value: str, kind: str, multirun: bool) -> str:
    parsed = _parse(f"{key}={value}")
    if (value == "null" and kind != REQUIRED_TEXT) or (
        parsed is not None and (_is_quoted(parsed) or "${" in value or (multirun and parsed.is_sweep_override()))
    ):
        return value
    if kind != LIST and parsed is not None and not parsed.is_sweep_override() and parsed.value() == value:
        return value  # Hydra reads it as typed: leave it (and .hydra/overrides.yaml) as the user wrote it
    if kind == PATHS and Path(value.strip()).expanduser().exists():
        return quote(value.strip())
    bracketed = value.startswith("[") and value.endswith("]")
    if kind in (LIST, PATHS) and parsed is not None and isinstance(parsed.value(), list):
        return value
    if bracketed and kind in (LIST, PATHS):
        return "[" + ",".join(quote(v) for v in _items(value[1:-1], kind)) + "]"
    if multirun and "," in value:
        return ",".join(quote(v) for v in _items(value, kind))
    if kind == LIST:  # speakers=Orrin,Pippa: a list key's commas separate its items
        return "[" + ",".join(quote(v) for v in _items(value, kind)) + "]"
    return quote(value)


def _is_quoted(parsed: Any) -> bool:
    return not parsed.is_sweep_override() and parsed.get_value_element_as_str()[:1] in ("'", '"')


def _items(text: str, kind: str) -> list[str]:
    """Comma-separated items (commas inside brackets stay); for paths, items that are one existing path with
    commas in its name (a group DM: `Direct Messages - Alice, Bob [id].json`) are joined back together."""
    pieces, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    if kind != PATHS:
        return [p.strip() for p in pieces]
    items, i = [], 0
    while i < len(pieces):
        j = next(
            (j for j in range(len(pieces), i + 1, -1) if Path(",".join(pieces[i:j]).strip()).expanduser().exists()),
            i + 1,
        )
        items.append(",".join(pieces[i:j]).strip())
        i = j
    return items


def quote(text: str) -> str:
    """`text` as a Hydra quoted string: backslashes escape only quotes (and the backslashes right before them)."""
    out, run = [], 0
    for ch in text + "'":
        if ch == "\\":
            run += 1
            continue
        out.append("\\" * (run * 2 if ch == "'" else run))
        out.append("\\'" if ch == "'" else ch)
        run = 0
    return "'" + "".join(out)[:-2] + "'"


def shell_form(key: str, value: str) -> str:
    """`key=value`, quoted for Hydra and then for the shell: what to type."""
    quoted = quote(value)
    if not set(quoted) & set('"$`\\!'):
        return f'{key}="{quoted}"'
    return shlex.quote(f"{key}={quoted}")


def _check(arg: str, multirun: bool) -> None:
    key, _, value = arg.partition("=")
    parsed = _parse(arg)
    if parsed is None:
        raise ChatcloneError(
            f"Hydra cannot read the override {arg!r}; to pass the value as text, quote it: {shell_form(key, value)}"
        )
    if parsed.is_sweep_override() and not multirun:
        raise ChatcloneError(
            f"{arg}: a comma makes a sweep, which needs -m (multirun); for a list write "
            f"{key}=[{value}], for text quote it: {shell_form(key, value)}"
        )
