"""Schema of discord_bot.py's config: which clones speak, where they may, how often, and through which backend.

Defaults and the reasons for them live in conf/discord_bot.yaml. There is deliberately no `token` key: the bot token
is read from the DISCORD_TOKEN environment variable only (chatclone.bot.credentials), so it never lands in a config
file, on a command line or in the run's `.hydra/` record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from chatclone.config.generation import (
    BASE_RUN,
    Checkpoint,
    ConversationStageConfig,
    Device,
    SamplingConfig,
    clone_settings,
)
from chatclone.config.threads import ThreadsConfig
from chatclone.errors import ChatcloneError

IN_PROCESS = "in_process"  # backend=in_process: the clones are loaded here, with inference.py's code
MAX_CLONES = 25  # choices of the /as command's `clone` option: Discord lists at most 25
MAX_HISTORY = 500  # messages read back from a channel at most (Discord pages them 100 at a time)


@dataclass
class DiscordBotConfig(ThreadsConfig):
    clones: list[str] = field(default_factory=list)  # train run dirs (or `latest`); each clone answers to its name
    checkpoint: Checkpoint = Checkpoint.final
    outputs_root: str = "outputs"
    backend: str = IN_PROCESS  # in_process | http(s)://host:port of a running serve.py
    backend_timeout_s: float = 120.0
    guilds: list[str] = field(default_factory=list)  # guild ids: every channel of these guilds
    channels: list[str] = field(default_factory=list)  # channel ids (a thread counts as its parent channel)
    dms: bool = False
    cooldown_s: float = 20.0
    replies_per_minute: int = 6
    queue_size: int = 4
    max_context_messages: int = 50
    ai_label: str = "AI clone"
    busy_reaction: str = "⏳"
    forget_reaction: str = "🧹"
    sync_commands: bool = True
    log_conversations: bool = False
    dtype: Optional[str] = None
    device: Device = Device.auto
    fuse_adapter: bool = True
    fast_decode: bool = True
    compile_decode: bool = False
    seed: Optional[int] = None
    reply_attempts: int = 3
    sampling: SamplingConfig = field(default_factory=SamplingConfig)

    @property
    def in_process(self) -> bool:
        return self.backend == IN_PROCESS

    def check(self) -> None:
        """Value checks the types cannot express; errors name the override to fix."""
        self.check_threads()
        self.sampling.check()
        self.check_one_sequence()
        if not self.clones or not all(str(c).strip() for c in self.clones):
            raise ChatcloneError(
                "clones: name one or more train runs, e.g. clones=[outputs/train/<run>] (or clones=[latest])"
            )
        if BASE_RUN in self.clones:
            raise ChatcloneError("clones: `base` is the bare base model, not a clone of anybody; name train runs")
        if len(self.clones) > MAX_CLONES:
            raise ChatcloneError(
                f"clones: {len(self.clones)} runs; one bot offers at most {MAX_CLONES} (the most "
                "choices a Discord slash command can list)"
            )
        if len(set(self.clones)) != len(self.clones):
            raise ChatcloneError(f"clones={self.clones}: a run is listed twice")
        if not (self.in_process or self.backend.startswith(("http://", "https://"))):
            raise ChatcloneError(
                f"backend={self.backend}: use {IN_PROCESS} or the URL of a running serve.py, "
                "e.g. backend=http://127.0.0.1:8000"
            )
        for key in ("guilds", "channels"):
            bad = [i for i in getattr(self, key) if not str(i).strip().isdigit()]
            if bad:
                raise ChatcloneError(
                    f"{key}: {bad[0]!r} is not a Discord id (a number: turn on Developer Mode, "
                    "then right-click the server or channel and Copy ID)"
                )
        checks = [
            (self.cooldown_s >= 0, "cooldown_s", "must be >= 0 (0 = no cooldown)"),
            (self.replies_per_minute >= 1, "replies_per_minute", "must be at least 1"),
            (self.queue_size >= 1, "queue_size", "must be at least 1"),
            (1 <= self.max_context_messages <= MAX_HISTORY, "max_context_messages", f"must be 1 to {MAX_HISTORY}"),
            (self.backend_timeout_s > 0, "backend_timeout_s", "must be > 0"),
            (self.reply_attempts >= 1, "reply_attempts", "must be at least 1"),
            (
                bool(self.ai_label.strip()) and "\n" not in self.ai_label,
                "ai_label",
                "must be a visible one-line label: every reply says it comes from an AI clone",
            ),
        ]
        for ok, key, why in checks:
            if not ok:
                raise ChatcloneError(f"{key}={getattr(self, key)!r}: {why}")
        if self.dtype is not None and self.dtype not in ("float32", "bfloat16", "float16", "auto"):
            raise ChatcloneError(f"dtype={self.dtype}: use float32, bfloat16, float16, auto or null")

    def check_one_sequence(self) -> None:
        if self.sampling.num_return_sequences != 1:
            raise ChatcloneError(
                f"sampling.num_return_sequences={self.sampling.num_return_sequences}: the bot "
                "posts one reply per message (set it to 1)"
            )

    @property
    def answers_nowhere(self) -> bool:
        return not self.guilds and not self.channels and not self.dms

    def clone_config(self, run: str) -> ConversationStageConfig:
        """The generation scripts' clone settings for one of `clones`: found, loaded and sampled exactly as
        inference.py finds, loads and samples its `run`."""
        return clone_settings(self, run, ConversationStageConfig)
