"""Schema of process_messages.py's config. Defaults and the reasons for them live in conf/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from chatclone.errors import ChatcloneError


class UrlPolicy(str, Enum):
    keep = "keep"
    placeholder = "placeholder"
    drop = "drop"


class MediaPolicy(str, Enum):
    drop = "drop"
    placeholder = "placeholder"


class MentionPolicy(str, Enum):
    keep = "keep"  # "@Tamsin", as DCE renders it
    name = "name"  # "Tamsin"
    placeholder = "placeholder"


class SpeakerNames(str, Enum):
    display = "display"  # server nickname / display name (what people see in the chat)
    username = "username"  # unique handle


class SplitStrategy(str, Enum):
    temporal = "temporal"
    random = "random"


class DateOrder(str, Enum):
    auto = "auto"
    mdy = "mdy"
    dmy = "dmy"
    ymd = "ymd"


@dataclass
class ReadingConfig:
    recursive: bool = True
    timezone: Optional[str] = None  # null: UTC, with a warning naming the TXT/HTML files read
    date_order: DateOrder = DateOrder.auto
    allow_truncated: bool = False
    skip_unreadable: bool = False


@dataclass
class CleaningConfig:
    drop_system: bool = True
    drop_bots: bool = True
    extra_bots: list[str] = field(default_factory=list)
    drop_commands: bool = True
    command_prefixes: list[str] = field(default_factory=lambda: ["!", "/", "$", ";", "%"])
    drop_forwards: bool = True
    media_only: MediaPolicy = MediaPolicy.drop
    media_placeholder: str = "<attachment>"
    mentions: MentionPolicy = MentionPolicy.keep
    mention_placeholder: str = "@user"
    urls: UrlPolicy = UrlPolicy.placeholder
    url_placeholder: str = "<url>"
    scrub_pii: bool = True
    email_placeholder: str = "<email>"
    phone_placeholder: str = "<phone>"
    min_chars: int = 1
    max_chars: int = 1000
    drop_repeats: bool = True
    repeat_window_minutes: float = 10.0


@dataclass
class SegmentationConfig:
    merge_gap_minutes: float = 7.0
    session_gap_minutes: float = 60.0
    min_turns: int = 2
    max_turns: int = 24
    context_turns: int = 6
    speaker_names: SpeakerNames = SpeakerNames.display
    reply_context: bool = True


@dataclass
class SplitConfig:
    strategy: SplitStrategy = SplitStrategy.temporal
    validation_fraction: float = 0.1
    seed: int = 42


@dataclass
class ProcessMessagesConfig:
    input: Any = "examples/sample_exports"  # a path, or a list of paths
    target: Optional[str] = None
    outputs_root: str = "outputs"
    progress: bool = True
    reading: ReadingConfig = field(default_factory=ReadingConfig)
    cleaning: CleaningConfig = field(default_factory=CleaningConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    split: SplitConfig = field(default_factory=SplitConfig)

    def check(self) -> None:
        """Value checks the schema's types cannot express; errors name the override to fix."""
        checks = [
            (0 < self.split.validation_fraction < 1, "split.validation_fraction", "must be between 0 and 1"),
            (self.segmentation.min_turns >= 1, "segmentation.min_turns", "must be at least 1"),
            (
                self.segmentation.max_turns >= max(2, self.segmentation.min_turns),
                "segmentation.max_turns",
                "must be at least 2 and at least segmentation.min_turns",
            ),
            (
                0 <= self.segmentation.context_turns < self.segmentation.max_turns,
                "segmentation.context_turns",
                "must be between 0 and segmentation.max_turns - 1",
            ),
            (self.segmentation.merge_gap_minutes >= 0, "segmentation.merge_gap_minutes", "must be >= 0"),
            (self.segmentation.session_gap_minutes > 0, "segmentation.session_gap_minutes", "must be > 0"),
            (self.cleaning.max_chars >= 1, "cleaning.max_chars", "must be at least 1"),
            (
                0 <= self.cleaning.min_chars <= self.cleaning.max_chars,
                "cleaning.min_chars",
                "must be between 0 and cleaning.max_chars",
            ),
            (bool(self.input), "input", "name an export file or folder"),
        ]
        for ok, key, why in checks:
            if not ok:
                raise ChatcloneError(f"{key}={_value(self, key)}: {why}")

    @property
    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else [str(p) for p in self.input]


def _value(cfg: object, dotted: str) -> object:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg
