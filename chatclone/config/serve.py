"""Schema of serve.py: which clones to serve, where, and the limits a stranger cannot push past.

Defaults and the reasons for them live in conf/serve.yaml. The api key is never part of a saved config record
(chatclone.cli redacts `api_key`), and CHATCLONE_API_KEY is read by `resolved_api_key`.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Optional

from chatclone.config.generation import Checkpoint, Device, SamplingConfig
from chatclone.config.judging import JudgingConfig
from chatclone.config.threads import ThreadsConfig
from chatclone.errors import ChatcloneError

API_KEY_ENV = "CHATCLONE_API_KEY"
LOOPBACK_NAMES = ("localhost",)


class SystemMessages(str, Enum):
    refuse = "refuse"  # a system message that differs from the training system prompt is a 400
    ignore = "ignore"  # every system message is dropped: the training system prompt is always used


@dataclass
class LimitsConfig:
    max_body_bytes: int = 262144
    max_messages: int = 200
    max_message_chars: int = 4000
    max_tokens: int = 256
    max_n: int = 4
    max_stop: int = 4
    max_stop_chars: int = 64
    requests_per_minute: int = 120  # per client address; 0 = no rate limit

    def check(self) -> None:
        for key in (
            "max_body_bytes",
            "max_messages",
            "max_message_chars",
            "max_tokens",
            "max_n",
            "max_stop",
            "max_stop_chars",
        ):
            if getattr(self, key) < 1:
                raise ChatcloneError(f"limits.{key}={getattr(self, key)}: must be at least 1")
        if self.requests_per_minute < 0:
            raise ChatcloneError(f"limits.requests_per_minute={self.requests_per_minute}: must be >= 0 (0 = off)")


@dataclass
class ServeConfig(ThreadsConfig):
    free_cores: int = 1  # threads=auto leaves one core to the event loop and the scheduler thread
    clones: list[str] = field(default_factory=lambda: ["latest"])  # train run dirs; `latest` = the newest
    checkpoint: Checkpoint = Checkpoint.final
    outputs_root: str = "outputs"
    dtype: Optional[str] = None
    device: Device = Device.auto
    fuse_adapter: bool = True
    fast_decode: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: Optional[str] = None  # or CHATCLONE_API_KEY; required for any non-loopback host
    max_batch: int = 8  # rows (sequences) decoded together
    queue_size: int = 32  # requests waiting for a batch; beyond: 503 + Retry-After
    retry_after_s: int = 2
    system_messages: SystemMessages = SystemMessages.refuse
    user_name: Optional[str] = None  # a user message without `name`; null = the target's top partner
    log_conversations: bool = False
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    judging: JudgingConfig = field(default_factory=JudgingConfig)  # the blind test at /judge (off by default)

    def check(self) -> None:
        self.check_threads()
        self.judging.check()
        self.sampling.check()
        self.limits.check()
        if not self.clones or not all(str(c).strip() for c in self.clones):
            raise ChatcloneError(
                "clones: give one or more train run dirs (or `latest`), e.g. "
                "clones=[outputs/train/<run a>,outputs/train/<run b>]"
            )
        if self.dtype is not None and self.dtype not in ("float32", "bfloat16", "float16", "auto"):
            raise ChatcloneError(f"dtype={self.dtype}: use float32, bfloat16, float16, auto or null")
        if not 0 <= self.port <= 65535:
            raise ChatcloneError(f"port={self.port}: must be in 0-65535 (0 = any free port)")
        for key in ("max_batch", "queue_size", "retry_after_s"):
            if getattr(self, key) < 1:
                raise ChatcloneError(f"{key}={getattr(self, key)}: must be at least 1")
        if self.sampling.max_new_tokens > self.limits.max_tokens:
            raise ChatcloneError(
                f"sampling.max_new_tokens={self.sampling.max_new_tokens} is above "
                f"limits.max_tokens={self.limits.max_tokens}: the default must be within the cap"
            )
        if self.user_name is not None and (
            not self.user_name.strip() or ":" in self.user_name or "\n" in self.user_name
        ):
            raise ChatcloneError(f"user_name: {self.user_name!r} is not a speaker name (no colons or newlines)")
        if not is_loopback(self.host) and not self.resolved_api_key():
            raise ChatcloneError(
                f"host={self.host} is not a loopback address: anyone who can reach it could use "
                f"the clone; set {API_KEY_ENV} (or api_key=...) to require a key, or keep "
                "host=127.0.0.1"
            )

    def resolved_api_key(self) -> str | None:
        key = self.api_key if self.api_key is not None else os.environ.get(API_KEY_ENV)
        return key.strip() if key and key.strip() else None


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`: only this machine can connect."""
    if host.strip().lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False
