"""Schemas of the blind judging test: the `judging` section the web server mounts (conf/judging/default.yaml) and
judge_report.py's config (conf/judge_report.yaml).

Defaults and the reasons for them live in the YAML files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from chatclone.errors import ChatcloneError

MAX_JUDGE_NAME = 40  # characters; a name is shown on the page and in the report table


def check_judge_name(name: object, key: str) -> str:
    """The judge's name, stripped; a ChatcloneError naming `key` when it is no usable name."""
    if not isinstance(name, str) or not name.strip():
        raise ChatcloneError(f"{key}: a judge needs a non-empty name")
    name = name.strip()
    if len(name) > MAX_JUDGE_NAME:
        raise ChatcloneError(f"{key}: a judge's name has at most {MAX_JUDGE_NAME} characters, not {len(name)}")
    if not name.isprintable():
        raise ChatcloneError(f"{key}: a judge's name cannot hold control characters or line breaks: {name!r}")
    return name


@dataclass
class JudgingConfig:
    source: Optional[str] = None  # evaluate_clone run to build a new judging run from (latest or a run dir)
    run: Optional[str] = None  # judging run to go on with (latest or outputs/judging/<stamp>)
    judges: list[str] = field(default_factory=list)  # a personal link is printed for each
    seed: int = 0  # which side (A or B) each item's clone reply is shown on

    @property
    def enabled(self) -> bool:
        return self.source is not None or self.run is not None

    def check(self) -> None:
        if self.source is not None and self.run is not None:
            raise ChatcloneError(
                "judging.source and judging.run are both set: source starts a new judging run from "
                "an evaluate_clone run, run goes on with an existing one; set one of them"
            )
        names = [check_judge_name(n, "judging.judges") for n in self.judges]
        if len(set(names)) != len(names):
            raise ChatcloneError(f"judging.judges: each judge once, not {names}")
        if self.judges and not self.enabled:
            raise ChatcloneError(
                "judging.judges is set but judging is off: set judging.source=<evaluate_clone run> "
                "or judging.run=<judging run>"
            )


@dataclass
class JudgeReportConfig:
    run: str = "latest"  # the judging run to report on: latest or outputs/judging/<stamp>
    outputs_root: str = "outputs"
