"""The one error type users see: a message naming the file (and line or record) at fault."""

from __future__ import annotations

from pathlib import Path


class ChatcloneError(Exception):
    """Bad input or a bad request: printed as one line, exit status 2, never a traceback."""

    def __init__(
        self, message: str, path: Path | str | None = None, line: int | None = None, record: int | None = None
    ):
        self.path, self.line, self.record = path, line, record
        super().__init__(message)

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = str(self.path)
            if self.line is not None:
                where += f":{self.line}"
            if self.record is not None:
                where += f" (message {self.record})"
            where += ": "
        return where + self.args[0]
