"""Reading export files as text: UTF-8 (with or without BOM), CRLF or LF, with a clear error otherwise."""

from __future__ import annotations

from pathlib import Path

from chatclone.errors import ChatcloneError


def read_text(path: Path) -> str:
    """Whole file as text with `\\n` line ends; errors name the file and the line of a bad byte."""
    data = path.read_bytes()
    if not data.strip():
        raise ChatcloneError("empty file", path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ChatcloneError(
            f"not UTF-8 text (byte 0x{data[e.start]:02x}); DiscordChatExporter writes UTF-8, re-save the file as UTF-8",
            path,
            line=line,
        ) from None
    return text.replace("\r\n", "\n")


def open_text(path: Path):
    """Open a text export for streaming (CSV): checks emptiness and the encoding of the first block."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if not head.strip():
        raise ChatcloneError("empty file", path)
    return open(path, encoding="utf-8-sig", newline="")


def first_line(path: Path) -> str:
    """The header line of a text export, decoded as UTF-8 (with a clear error otherwise)."""
    with open_text(path) as f:
        try:
            return f.readline()
        except UnicodeDecodeError:
            raise ChatcloneError(
                "not UTF-8 text; DiscordChatExporter writes UTF-8, re-save the file as UTF-8", path, line=1
            ) from None
