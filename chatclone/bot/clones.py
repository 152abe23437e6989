"""The bot's clones: each train run in `clones`, found as inference.py finds its run (no weights loaded), with its
name (the target's name in its training data, which people call it by), its id on a serve.py backend, and the
cleaning and segmentation settings its training data was made with (from the process_messages run behind it), so
that a channel's messages are turned into context by the same rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

from omegaconf import OmegaConf

from chatclone import runs
from chatclone.bot.context import Rules
from chatclone.config.discord_bot import DiscordBotConfig
from chatclone.config.process_messages import CleaningConfig, SegmentationConfig
from chatclone.errors import ChatcloneError
from chatclone.generation.clone import CloneSpec, locate


@dataclass
class BotClone:
    name: str  # the target's name in the training data: `Tamsin`
    id: str  # its model id on a serve.py backend: `tamsin`
    run: str  # as given in `clones`
    spec: CloneSpec
    rules: Rules


def clone_id(name: str) -> str:
    """The OpenAI `model` id of the clone of `name`: lower case, runs of anything but letters, digits, `.`, `_` and
    `-` made one `-` (`Tamsin` -> `tamsin`, `Mags O'Neill` -> `mags-o-neill`)."""
    return re.sub(r"[^a-z0-9._-]+", "-", name.casefold()).strip("-") or "clone"


def find_clones(cfg: DiscordBotConfig) -> list[BotClone]:
    """Every clone of `cfg.clones`, checked without loading weights; two clones of one name are refused."""
    found = []
    for run in cfg.clones:
        try:
            spec = locate(cfg.clone_config(run))
        except ChatcloneError as error:
            where = "" if error.path is not None else f"{run}: "  # the error names the run's path itself
            raise ChatcloneError(f"clones: {where}{error}") from None
        found.append(BotClone(spec.target, clone_id(spec.target), run, spec, training_rules(spec, cfg.ai_label)))
    seen: dict[str, str] = {}
    for clone in found:
        other = seen.setdefault(clone.name.casefold(), clone.run)
        if other != clone.run:
            raise ChatcloneError(
                f"clones: {other} and {clone.run} are both clones of {clone.name}: each clone "
                "answers to its own name, so list one of them"
            )
    return found


def training_rules(spec: CloneSpec, ai_label: str) -> Rules:
    """The cleaning and segmentation settings of the process_messages run behind the clone's dataset."""
    inputs = runs.read_manifest(spec.data_dir).get("inputs") or []
    if not inputs:
        raise ChatcloneError(
            "the dataset run names no process_messages run: cannot tell how its messages were cleaned",
            path=spec.data_dir / runs.MANIFEST,
        )
    return process_rules(Path(inputs[0]), ai_label)


def process_rules(process_dir: Path, ai_label: str) -> Rules:
    """The `cleaning` and `segmentation` settings a process_messages run recorded in its manifest."""
    config = runs.read_manifest(process_dir).get("config") or {}
    return Rules(
        _section(CleaningConfig, config.get("cleaning"), process_dir, "cleaning"),
        _section(SegmentationConfig, config.get("segmentation"), process_dir, "segmentation"),
        ai_label,
    )


def _section(schema: type, values: object, run_dir: Path, key: str):
    if not isinstance(values, dict):
        raise ChatcloneError(f"the process_messages run's manifest has no `{key}` settings", path=run_dir)
    known = {f.name for f in fields(schema)}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), {k: v for k, v in values.items() if k in known})
    except Exception as error:  # noqa: BLE001  (OmegaConf's validation errors have several types)
        raise ChatcloneError(
            f"unreadable `{key}` settings in the manifest: {str(error).splitlines()[0]}", path=run_dir / runs.MANIFEST
        ) from None
    return OmegaConf.to_object(merged)
