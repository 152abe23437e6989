"""Where log records and warnings go, and the known-harmless third-party ones silenced, in one place.

Every script selects `hydra/job_logging: chatclone` and `hydra/hydra_logging: chatclone` (registered in
`chatclone/config`): records of every logger (ours, Hydra's, third-party) go to stderr and to the run's
`<script>.log`, never to stdout, which carries only what the script is for (a piped chat's replies, a stage's
summary). `silence_known_warnings` (called by `chatclone.cli.run_stage`) routes Python warnings there too.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import warnings
from typing import TextIO

FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"

# (logger name, start of the message): records known to be harmless, dropped from stderr and the log.
KNOWN_HARMLESS_LOGS = (
    # bitsandbytes on a CPU with AVX512-BF16 (at import) looks for an optional fused 4-bit kernel in the `kernels`
    # package (which would fetch it from the hub); without it, its own CPU kernel runs. Nothing is wrong.
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community"),
)
# (category, regex matched at the start of the message): warnings known to be harmless, ignored.
KNOWN_HARMLESS_WARNINGS = (
    # peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing` when it wraps or loads an adapter.
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
    # torch's own modules (torch._inductor -> torch.utils.mkldnn) still decorate with TorchScript at import.
    (DeprecationWarning, r"`torch\.jit\.\w+` is (deprecated|not supported)"),
)


class KnownHarmless(logging.Filter):
    """Drops the records in KNOWN_HARMLESS_LOGS; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(record.name == name and str(record.msg).startswith(start) for name, start in KNOWN_HARMLESS_LOGS)


SHOWN = "chatclone_shown"  # a record's attribute: the user already saw it on stderr (the console handler skips it)


class AlreadyShown(logging.Filter):
    """Drops records that `warn` already printed, so that stderr shows each warning once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, SHOWN, False)


def warn(text: str) -> None:
    """A warning for the user: `warning: text` on stderr (never stdout; under torchrun only the main process
    says it), and the same record in the run's log."""
    if os.environ.get("RANK", "0") != "0":
        return
    print(f"warning: {text}", file=sys.stderr, flush=True)
    logging.getLogger("chatclone").warning(text, extra={SHOWN: True})


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
CONSOLE_LOGGER = "chatclone.console"


class LoggedStream(io.TextIOBase):
    """A stream that writes to `stream` and records each complete line in the run's log (logger chatclone.console,
    marked as shown: the stderr handler skips it), styling stripped: what a stage's console showed the user."""

    def __init__(self, stream: TextIO):
        self.stream, self.pending = stream, ""

    def write(self, text: str) -> int:
        self.stream.write(text)
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if line := ANSI.sub("", line).rstrip():
                logging.getLogger(CONSOLE_LOGGER).info(line, extra={SHOWN: True})
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"


def console(stream: TextIO | None = None):
    """A stage's console (notes, summaries; not progress bars, which redraw): on `stream` (None = stdout) and, line
    by line, in the run's log, so that the log holds what the user saw."""
    from rich.console import Console

    return Console(file=LoggedStream(stream or sys.stdout))


def silence_known_warnings() -> None:
    """Ignore KNOWN_HARMLESS_WARNINGS; route every other warning through logging (stderr and the run's log)."""
    for category, message in KNOWN_HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    logging.captureWarnings(True)


# Hydra's job logging (`hydra/job_logging: chatclone`): Hydra's default sends records to stdout. The log file is
# opened at the first record (`delay`), so a run refused before doing anything (a finished run dir) leaves no trace.
JOB_LOGGING = {
    "version": 1,
    "formatters": {"simple": {"format": FORMAT}},
    "filters": {
        "known_harmless": {"()": f"{__name__}.KnownHarmless"},
        "already_shown": {"()": f"{__name__}.AlreadyShown"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "simple",
            "stream": "ext://sys.stderr",
            "filters": ["known_harmless", "already_shown"],
        },
        "file": {
            "class": "logging.FileHandler",
            "formatter": "simple",
            "delay": True,
            "filename": "${hydra.runtime.output_dir}/${hydra.job.name}.log",
            "filters": ["known_harmless"],
        },
    },
    "root": {"level": "INFO", "handlers": ["console", "file"]},
    "disable_existing_loggers": False,
}
# Hydra's own records (`hydra/hydra_logging: chatclone`), such as a multirun's "Launching 2 jobs locally".
HYDRA_LOGGING = {
    "version": 1,
    "formatters": {"simple": {"format": "[%(asctime)s][HYDRA] %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "simple", "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["console"]},
    "disable_existing_loggers": False,
}
