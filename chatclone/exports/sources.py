"""Finding export files, telling their formats apart, and what a file says about its channel."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from chatclone.errors import ChatcloneError

FORMATS = ("json", "html", "csv", "txt")  # richest first: a channel found in several formats uses the first
EXTENSIONS = {".json": "json", ".csv": "csv", ".txt": "txt", ".html": "html", ".htm": "html"}
NAME_RE = re.compile(r"\[(?P<channel>\d{15,21})\](?: \[part (?P<part>\d+)\])?(?: \(.*\))?$")


@dataclass
class ReadOptions:
    """What the readers need beyond the file itself."""

    timezone: str = "UTC"            # zone the exporting machine used for TXT/HTML dates (they carry no offset)
    date_order: str = "auto"         # TXT/HTML date order: auto, mdy, dmy or ymd
    allow_truncated: bool = False    # keep the messages of a JSON export cut off mid-write
    warnings: list[str] = field(default_factory=list)
    on_warning: Callable[[str], None] | None = None
    on_bytes: Callable[[int], None] | None = None   # progress: called with the size of each block read

    def read_bytes(self, n: int) -> None:
        if self.on_bytes is not None:
            self.on_bytes(n)

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        if self.on_warning:
            self.on_warning(text)


@dataclass
class FileHeader:
    """What one file says about the channel it holds."""

    path: Path
    channel_id: str | None
    name: str
    is_dm: bool
    part: int

    @property
    def channel_key(self) -> str:
        return self.channel_id or str(self.path)

    @classmethod
    def from_path(cls, path: Path, channel_id: str | None, is_dm: bool, name: str) -> FileHeader:
        found = NAME_RE.search(path.stem)
        part = int(found["part"]) if found and found["part"] else 1
        if channel_id is None and found:
            channel_id = found["channel"]
        return cls(path=path, channel_id=channel_id, name=name, is_dm=is_dm, part=part)


def find_export_files(inputs: Iterable[Path | str], recursive: bool = True,
                      skipped: list[dict] | None = None) -> list[tuple[Path, str]]:
    """Every export file under the inputs with its format, in a stable order.

    A file named explicitly must be an export (else the reader's error says why); in a folder,
    files that do not look like exports at all (notes, ids.json) are skipped and listed in `skipped`.
    """
    found: list[tuple[Path, str]] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise ChatcloneError("no such file or folder", path)
        if path.is_file():
            found.append((path, _format_of(path)))
            continue
        pattern = "**/*" if recursive else "*"
        for candidate in sorted(path.glob(pattern)):
            if not candidate.is_file() or candidate.suffix.lower() not in EXTENSIONS or _is_media(candidate):
                continue
            fmt = _format_of(candidate)
            if _looks_like(candidate, fmt):
                found.append((candidate, fmt))
            elif skipped is not None:
                skipped.append({"file": str(candidate), "format": fmt, "reason": "not a DiscordChatExporter export"})
    if not found:
        raise ChatcloneError("no export files (.json, .csv, .txt, .html) found", ", ".join(map(str, inputs)))
    return found


def _is_media(path: Path) -> bool:
    """Files DCE downloads with --media live in `<export>_Files/` folders: not exports."""
    return any(part.endswith("_Files") for part in path.parts[:-1])


def _looks_like(path: Path, fmt: str) -> bool:
    """A cheap sniff of the first bytes; empty files count as exports so that they get a clear error."""
    with open(path, "rb") as f:
        head = f.read(1 << 14).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        return True
    if fmt == "json":
        return head.startswith(b"{") and b'"channel"' in head
    if fmt == "csv":
        first = head.split(b"\n", 1)[0]
        return b"Author" in first and b"Date" in first and b"Content" in first
    if fmt == "txt":
        return head.startswith(b"=" * 62)
    return b"chatlog" in head or b"DiscordChatExporter" in head or b"preamble" in head


def _format_of(path: Path) -> str:
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ChatcloneError(
            f"unknown export format '{path.suffix}' (expected .json, .csv, .txt or .html)", path)
    return fmt
