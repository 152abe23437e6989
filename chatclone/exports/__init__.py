"""Reading DiscordChatExporter exports (JSON, CSV, TXT, HTML) into channels of normalised messages.

A channel found in several files is merged: partitions (`[part N]`) in order, overlapping copies
deduplicated. A channel exported in several formats is taken from the richest one (JSON, then
HTML, CSV, TXT); the others are listed as skipped, never counted twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import Progress

from chatclone.exports.csv_reader import read_csv
from chatclone.exports.html_reader import read_html
from chatclone.exports.json_reader import read_json
from chatclone.exports.records import ChannelExport, Kind, Message
from chatclone.exports.sources import FORMATS, FileHeader, ReadOptions, find_export_files
from chatclone.exports.txt_reader import read_txt

READERS: dict[str, Callable] = {"json": read_json, "csv": read_csv, "txt": read_txt, "html": read_html}

__all__ = ["ChannelExport", "Kind", "Message", "ReadOptions", "ReadReport", "read_channels"]


@dataclass
class ReadReport:
    """What was read, for stats.json."""

    files: list[dict] = field(default_factory=list)
    skipped_files: list[dict] = field(default_factory=list)
    duplicates_removed: int = 0


def read_channels(inputs: list[Path | str], options: ReadOptions, recursive: bool = True,
                  progress: bool = True) -> tuple[list[ChannelExport], ReadReport]:
    """Every channel under the inputs, messages merged, deduplicated and in time order."""
    report = ReadReport()
    files = find_export_files(inputs, recursive=recursive, skipped=report.skipped_files)
    opened = [(fmt, *READERS[fmt](path, options)) for path, fmt in files]
    by_channel: dict[str, list] = defaultdict(list)
    for fmt, header, messages in opened:
        by_channel[header.channel_key].append((fmt, header, messages))
    channels = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("reading exports", total=sum(path.stat().st_size for path, _ in files))
        options.on_bytes = lambda n: bar.advance(task, n)  # the JSON reader reports each block it reads

        def file_done(path: Path, start: float) -> None:
            bar.update(task, completed=start + path.stat().st_size)

        for key, entries in by_channel.items():
            channels.append(_read_channel(key, entries, report, lambda: bar.tasks[0].completed, file_done))
    options.on_bytes = None
    return channels, report


def _read_channel(key: str, entries: list, report: ReadReport, position, file_done) -> ChannelExport:
    best = min(FORMATS.index(fmt) for fmt, _, _ in entries)
    fmt = FORMATS[best]
    chosen = sorted((e for e in entries if e[0] == fmt), key=lambda e: (e[1].part, str(e[1].path)))
    for other_fmt, header, _ in entries:
        if other_fmt != fmt:
            report.skipped_files.append({"file": str(header.path), "format": other_fmt,
                                         "reason": f"same channel also exported as {fmt}"})
    first: FileHeader = chosen[0][1]
    channel = ChannelExport(key=key, name=first.name, is_dm=first.is_dm, format=fmt)
    seen: set = set()
    for _, header, messages in chosen:
        start = position()
        count = _take(channel.messages, messages, seen if len(chosen) > 1 else None, report)
        file_done(header.path, start)
        channel.files.append(str(header.path))
        report.files.append({"file": str(header.path), "format": fmt, "channel": key, "part": header.part,
                             "messages": count})
    channel.messages.sort(key=lambda m: m.ts)
    return channel


def _take(into: list[Message], messages, seen: set | None, report: ReadReport) -> int:
    """Append a file's messages, skipping ones already seen in another copy or part; how many the file had."""
    before = len(into)
    if seen is None:
        into.extend(messages)
        return len(into) - before
    count = 0
    for count, m in enumerate(messages, start=1):
        key = m.id if m.id is not None else (m.username, m.ts, m.content)
        if key in seen:
            report.duplicates_removed += 1
            continue
        seen.add(key)
        into.append(m)
    return count
