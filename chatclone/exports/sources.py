"""Finding export files, telling their formats apart, and what a file says about its channel."""

from __future__ import annotations

import codecs
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

    timezone: str = "UTC"  # zone the exporting machine used for TXT/HTML dates (they carry no offset)
    date_order: str = "auto"  # TXT/HTML date order: auto, mdy, dmy or ymd
    allow_truncated: bool = False  # keep the messages of a JSON export cut off mid-write
    warnings: list[str] = field(default_factory=list)
    on_warning: Callable[[str], None] | None = None
    on_bytes: Callable[[int], None] | None = None  # progress: called with the size of each block read

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


@dataclass
class ExportFile:
    """One file to read: its format, whether the user named it, and why it cannot be read if that is known."""

    path: Path
    format: str
    named: bool = True  # given as an input itself (not found in a folder): any error fails the run
    problem: str | None = None  # found before reading: it looks like an export but cannot be one as it is


def find_export_files(
    inputs: Iterable[Path | str], recursive: bool = True, skipped: list[dict] | None = None
) -> list[ExportFile]:
    """Every export file under the inputs with its format, in a stable order.

    A file named explicitly must be an export (else the reader's error says why). In a folder, a file
    that is named like a DCE export or starts like one is an export even when it cannot be read (the
    caller fails or skips it, loudly); files that do not look like exports at all (notes, ids.json) are
    skipped and listed in `skipped`.
    """
    found: list[ExportFile] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise ChatcloneError("no such file or folder", path)
        if path.is_file():
            found.append(ExportFile(path, _format_of(path)))
            continue
        pattern = "**/*" if recursive else "*"
        for candidate in sorted(path.glob(pattern)):
            if not candidate.is_file() or candidate.suffix.lower() not in EXTENSIONS or _is_media(candidate):
                continue
            fmt = _format_of(candidate)
            is_export, problem = _classify(candidate, fmt)
            if is_export:
                found.append(ExportFile(candidate, fmt, named=False, problem=problem))
            elif skipped is not None:
                skipped.append({"file": str(candidate), "format": fmt, "reason": "not a DiscordChatExporter export"})
    if not found:
        raise ChatcloneError("no export files (.json, .csv, .txt, .html) found", ", ".join(map(str, inputs)))
    return found


def _is_media(path: Path) -> bool:
    """Files DCE downloads with --media live in `<export>_Files/` folders: not exports."""
    return any(part.endswith("_Files") for part in path.parts[:-1])


def _classify(path: Path, fmt: str) -> tuple[bool, str | None]:
    """(is it meant as an export, why it cannot be read if the first bytes already tell).

    Meant as an export: it sniffs as one, or is named like DCE names files (`... [channel id].ext`),
    or its start looks like a (cut-off, re-encoded) export. Empty files count, so they get a clear error.
    """
    with open(path, "rb") as f:
        raw = f.read(HEAD)
    head = raw.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head or _looks_like(head, fmt):
        return True, None
    problem, text = _encoding_problem(raw)
    named = NAME_RE.search(path.stem) is not None
    if named or _looks_like(text, fmt) or _starts_like(text, fmt):
        return True, problem
    return False, None


HEAD = 1 << 14
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),  # before UTF-16: FF FE 00 00
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _encoding_problem(raw: bytes) -> tuple[str | None, bytes]:
    """Why the first bytes are not UTF-8 text (None if they are), and those bytes as UTF-8 for sniffing."""
    codec = next((c for bom, c in BOMS if raw.startswith(bom)), None)
    if codec is None and len(raw) >= 16 and raw[1:64:2].count(0) >= len(raw[1:64:2]) * 3 // 4:
        codec = "utf-16-le"  # ASCII-heavy text with every other byte NUL: UTF-16 without a BOM
    if codec is not None:
        text = raw.decode(codec, errors="ignore").lstrip("\ufeff \t\r\n").encode()
        name = codec.upper().removesuffix("-LE")
        return f"{name} text; DiscordChatExporter writes UTF-8: re-save the file as UTF-8", text
    if b"\x00" in raw:
        return "binary data, not a text export (NUL bytes near its start)", b""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(raw) - 4:  # not merely a character cut by the end of the block
            return f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})", b""
    return None, raw.lstrip(b"\xef\xbb\xbf \t\r\n")


def _looks_like(head: bytes, fmt: str) -> bool:
    """A cheap sniff of the first bytes (BOM and leading blanks stripped)."""
    if fmt == "json":
        return head.startswith(b"{") and b'"channel"' in head
    if fmt == "csv":
        first = head.split(b"\n", 1)[0]
        return b"Author" in first and b"Date" in first and b"Content" in first
    if fmt == "txt":
        return head.startswith(b"=" * 62)
    return b"chatlog" in head or b"DiscordChatExporter" in head or b"preamble" in head


CSV_HEADER = b"AuthorID,Author,Date,Content,Attachments,Reactions"


def _starts_like(head: bytes, fmt: str) -> bool:
    """Looser signs of an export cut off near its start: DCE's JSON opens with the "guild" object,
    CSV with its fixed header line, TXT with a rule of 62 '='."""
    if fmt == "json":
        return head.startswith(b"{") and b'"guild"' in head[:256]
    if fmt == "csv":
        first = head.split(b"\n", 1)[0].strip()
        return len(first) >= 6 and (CSV_HEADER.startswith(first) or first.startswith(b"AuthorID,Author,"))
    if fmt == "txt":
        return head.startswith(b"=" * 10)
    return False


def _format_of(path: Path) -> str:
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ChatcloneError(f"unknown export format '{path.suffix}' (expected .json, .csv, .txt or .html)", path)
    return fmt
