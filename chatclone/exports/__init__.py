"""Reading DiscordChatExporter exports (JSON, CSV, TXT, HTML) into channels of normalised messages.

A channel found in several files is merged: partitions (`[part N]`) in order, overlapping copies
deduplicated (chatclone.exports.dedup). A channel exported in several formats is taken from the richest
one that can be read (JSON, then HTML, CSV, TXT); the others are listed as skipped, never counted twice.
A renamed copy (no `[channel id]` in its name) of a channel read from elsewhere is found by its messages
and joins that channel.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import Progress

from chatclone.errors import ChatcloneError
from chatclone.exports.csv_reader import read_csv
from chatclone.exports.dedup import ChannelMerge, Duplicates, merge_renamed_copies
from chatclone.exports.html_reader import read_html
from chatclone.exports.json_reader import read_json
from chatclone.exports.records import ChannelExport, Kind, Message
from chatclone.exports.sources import FORMATS, ExportFile, FileHeader, ReadOptions, find_export_files
from chatclone.exports.txt_reader import read_txt

READERS: dict[str, Callable] = {"json": read_json, "csv": read_csv, "txt": read_txt, "html": read_html}

__all__ = ["ChannelExport", "Kind", "Message", "ReadOptions", "ReadReport", "read_channels"]


@dataclass
class ReadReport:
    """What was read, for stats.json."""

    files: list[dict] = field(default_factory=list)
    skipped_files: list[dict] = field(default_factory=list)
    duplicates: Duplicates = field(default_factory=Duplicates)

    @property
    def duplicates_removed(self) -> int:
        return self.duplicates.total

    @property
    def unreadable_files(self) -> list[dict]:
        return [f for f in self.skipped_files if f["reason"].startswith(UNREADABLE)]


UNREADABLE = "unreadable: "


def read_channels(
    inputs: list[Path | str],
    options: ReadOptions,
    recursive: bool = True,
    progress: bool = True,
    skip_unreadable: bool = False,
) -> tuple[list[ChannelExport], ReadReport]:
    """Every channel under the inputs, messages merged, deduplicated and in time order.

    A file found in a folder that looks like an export but cannot be read fails the run, or with
    `skip_unreadable` is skipped and listed (with why) in the report; a named file always fails it.
    """
    report = ReadReport()
    files = find_export_files(inputs, recursive=recursive, skipped=report.skipped_files)
    opened = []
    for file in files:
        got = _attempt(file, lambda file=file: READERS[file.format](file.path, options), report, skip_unreadable)
        if got is not None:
            opened.append((file, *got))
    by_channel: dict[str, list] = defaultdict(list)
    for file, header, messages in opened:
        by_channel[header.channel_key].append((file, header, messages))
    channels = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("reading exports", total=sum(f.path.stat().st_size for f, _, _ in opened))
        options.on_bytes = lambda n: bar.advance(task, n)  # the JSON reader reports each block it reads

        def read_file(file: ExportFile, messages) -> list | None:
            start = bar.tasks[0].completed
            taken = _attempt(file, lambda: list(messages), report, skip_unreadable)
            bar.update(task, completed=start + file.path.stat().st_size)
            return taken

        for key, entries in by_channel.items():
            channel = _read_channel(key, entries, report, read_file)
            if channel is not None:
                channels.append(channel)
    options.on_bytes = None
    return _merge_copies(channels, by_channel, report, options), report


def _attempt(file: ExportFile, action: Callable, report: ReadReport, skip_unreadable: bool):
    """The action's result; for an unreadable file found in a folder, an error saying so or (opted in)
    None with the file listed as skipped."""
    if file.problem is None:
        try:
            return action()
        except ChatcloneError as e:
            error = e
    else:
        error = ChatcloneError(file.problem, file.path)
    if file.named:
        raise error
    if not skip_unreadable:
        raise ChatcloneError(
            f"this looks like a DiscordChatExporter export but cannot be read: {error.args[0]}. "
            "Fix or remove the file, or set reading.skip_unreadable=true to skip unreadable "
            "exports",
            error.path or file.path,
            error.line,
            error.record,
        )
    where = f"line {error.line}: " if error.line else ""
    report.skipped_files.append(
        {"file": str(file.path), "format": file.format, "reason": UNREADABLE + where + error.args[0]}
    )
    return None


def _read_channel(key: str, entries: list, report: ReadReport, read_file) -> ChannelExport | None:
    """A channel from its richest format whose files can be read (the next format when none can)."""
    formats = sorted({file.format for file, _, _ in entries}, key=FORMATS.index)
    for fmt in formats:
        chosen = sorted((e for e in entries if e[0].format == fmt), key=lambda e: (e[1].part, str(e[1].path)))
        first: FileHeader = chosen[0][1]
        channel = ChannelExport(key=key, name=first.name, is_dm=first.is_dm, format=fmt)
        merge = ChannelMerge(report.duplicates)
        for file, header, messages in chosen:
            taken = read_file(file, messages)
            if taken is None:
                continue
            count = merge.add(taken, more_files=len(chosen) > 1)
            channel.files.append(str(header.path))
            report.files.append(
                {"file": str(header.path), "format": fmt, "channel": key, "part": header.part, "messages": count}
            )
        if channel.files:
            for file, _, _ in entries:
                if FORMATS.index(file.format) > FORMATS.index(fmt):
                    report.skipped_files.append(
                        {
                            "file": str(file.path),
                            "format": file.format,
                            "reason": f"same channel also exported as {fmt}",
                        }
                    )
            channel.messages = sorted(merge.messages, key=lambda m: m.ts)
            return channel
    return None


def _merge_copies(
    channels: list[ChannelExport], by_channel: dict, report: ReadReport, options: ReadOptions
) -> list[ChannelExport]:
    """Renamed copies (no channel id known) of a channel read from elsewhere join it (see dedup)."""
    loose = {key for key, entries in by_channel.items() if entries[0][1].channel_id is None}
    copies = sorted((c for c in channels if c.key in loose), key=lambda c: (FORMATS.index(c.format), c.key))
    channels, merges, warnings = merge_renamed_copies(channels, copies, report.duplicates)
    for warning in warnings:
        options.warn(warning)
    for merged in merges:
        for entry in report.files:
            if entry["file"] in merged.copy.files:
                entry.update(
                    channel=merged.into.key, copy_of=merged.into.name, duplicates=merged.duplicates, added=merged.added
                )
    return channels
