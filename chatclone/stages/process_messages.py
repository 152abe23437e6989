"""process_messages: DiscordChatExporter exports -> train.jsonl / validation.jsonl in the `messages` format."""

from __future__ import annotations

import gc
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

from chatclone import logs, runs
from chatclone.chat_records import ASSISTANT, USER, ChatMessage, ChatRecord, is_trained, split_file, write_records
from chatclone.cleaning import Cleaner
from chatclone.config.process_messages import ProcessMessagesConfig
from chatclone.conversations import (
    Conversation,
    Turn,
    check_no_leak,
    iso,
    sessions,
    split,
    trainable,
    turn_counts,
    windows,
)
from chatclone.errors import ChatcloneError
from chatclone.exports import ReadOptions, read_channels
from chatclone.logs import warn
from chatclone.speakers import author_table, resolve_target

STAGE = "process_messages"
DEFAULT_TIMEZONE = "UTC"  # reading.timezone=null: TXT/HTML dates read as UTC, with a warning
OFFSET_FREE_FORMATS = ("txt", "html")  # formats whose dates carry no UTC offset


def process_messages(cfg: ProcessMessagesConfig, run_dir: Path, console: Console | None = None) -> dict:
    """Read, clean, segment and split; write the datasets, stats.json and manifest.json into run_dir."""
    console = console or logs.console()
    cfg.check()
    runs.start_run(run_dir)
    with gc_paused():
        return _process(cfg, run_dir, console)


@contextmanager
def gc_paused():
    """Millions of long-lived, cycle-free message objects make Python's cyclic GC rescan them over and
    over (measured: 40 % of the run on 1M messages). Nothing here builds cycles, so pause it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _process(cfg: ProcessMessagesConfig, run_dir: Path, console: Console) -> dict:
    options = ReadOptions(
        timezone=cfg.reading.timezone or DEFAULT_TIMEZONE,
        date_order=cfg.reading.date_order.value,
        allow_truncated=cfg.reading.allow_truncated,
        on_warning=warn,
    )
    channels, report = read_channels(
        cfg.inputs,
        options,
        recursive=cfg.reading.recursive,
        progress=cfg.progress,
        skip_unreadable=cfg.reading.skip_unreadable,
    )
    for skipped in report.unreadable_files:
        options.warn(f"skipped {skipped['file']}: {skipped['reason']}")
    _warn_offset_free_dates(cfg, report, options)
    authors = author_table(channels)
    target = resolve_target(cfg.target, authors)
    cleaner, counts = Cleaner(cfg.cleaning), Counter()
    conversations: list[Conversation] = []
    for channel in channels:
        counts["messages_read"] += len(channel.messages)
        names = {i: a_name for a_name, i in ((m.display, m.author_id) for m in channel.messages) if i}
        kept = list(cleaner.clean(channel.messages, names))
        counts["messages_kept"] += len(kept)
        found = sessions(kept, target, channel.name, cfg.segmentation, counts)
        conversations += trainable(found, cfg.segmentation, counts)
        channel.messages = []  # free memory as we go
    _check_not_empty(conversations, target, cleaner, counts)
    train, validation = split(conversations, cfg.split)
    repeats = check_no_leak(train, validation)
    if repeats:
        options.warn(
            f"{len(repeats)} trained target turn(s) of train recur, same minute and text, in validation "
            f"in another channel, e.g. {repeats[0]}; chance, or a channel exported twice under "
            "different names (then remove the copy)"
        )
    if not validation:
        options.warn(
            "only one conversation: the validation split is empty"
            if len(conversations) < 2
            else "split.validation_fraction is 0: the validation split is empty"
        )
    sizes = _write_splits(run_dir, {"train": train, "validation": validation}, cfg)
    stats = _stats(cfg, report, options, authors, target, cleaner, counts, conversations, sizes)
    runs.write_json(run_dir, "stats.json", stats)
    _print_summary(console, stats, run_dir)
    console.print(
        f"next: {runs.next_command('tokenize_dataset.py', run_dir, cfg.outputs_root, STAGE)}",
        highlight=False,
        soft_wrap=True,
    )
    runs.finish_run(
        run_dir,
        STAGE,
        cfg,
        inputs=cfg.inputs,
        outputs=["train.jsonl", "validation.jsonl", "stats.json"],
        summary={"target": stats["target"], "split": sizes},
    )
    return stats


def _warn_offset_free_dates(cfg: ProcessMessagesConfig, report, options: ReadOptions) -> None:
    """TXT and HTML dates carry no UTC offset: with reading.timezone unset they are read as UTC, said once a run."""
    files = [f["file"] for f in report.files if f["format"] in OFFSET_FREE_FORMATS]
    if cfg.reading.timezone is None and files:
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        options.warn(
            f"{len(files)} file(s) with dates that carry no UTC offset (TXT/HTML) were read as UTC: "
            f"{shown}; set reading.timezone to the exporting machine's zone (e.g. "
            "reading.timezone=Europe/Berlin), or reading.timezone=UTC to confirm UTC"
        )


def _check_not_empty(conversations, target, cleaner, counts) -> None:
    """Never a silently empty dataset: say which rules removed everything."""
    if conversations:
        return
    removed = ", ".join(f"{k} {v}" for k, v in cleaner.removed.most_common()) or "none"
    dropped = (
        ", ".join(
            f"{k.removeprefix('conversations_dropped_')} {v}"
            for k, v in counts.items()
            if k.startswith("conversations_dropped_")
        )
        or "none"
    )
    raise ChatcloneError(
        f"no conversation with a turn of target '{target.query}' survived: {counts['messages_kept']} of "
        f"{counts['messages_read']} messages kept (removed: {removed}); conversations dropped: {dropped}. "
        "Loosen cleaning.* or segmentation.* (e.g. cleaning.max_chars, segmentation.session_gap_minutes)"
    )


def _write_splits(run_dir: Path, splits: dict[str, list[Conversation]], cfg: ProcessMessagesConfig) -> dict:
    """Write every split; the files get their names only once all are complete (never a partial file)."""
    with runs.new_files(run_dir, *(split_file(name) for name in splits)) as paths:
        sizes = {name: _write_split(path, convs, cfg) for (name, convs), path in zip(splits.items(), paths)}
    total_convs = sum(s["conversations"] for s in sizes.values()) or 1
    total_turns = sum(s["target_turns"] for s in sizes.values()) or 1
    for size in sizes.values():
        size["conversation_share"] = round(size["conversations"] / total_convs, 4)
        size["target_turn_share"] = round(size["target_turns"] / total_turns, 4)
    return sizes


def _write_split(path: Path, conversations: list[Conversation], cfg: ProcessMessagesConfig) -> dict:
    n_windows = n_target_turns = 0
    with open(path, "xb") as f:
        for conv in conversations:
            records = [_record(conv, k, window) for k, window in enumerate(windows(conv, cfg.segmentation))]
            write_records(f, records)
            n_windows += len(records)
            n_target_turns += sum(is_trained(m) for record in records for m in record.messages)
    return {"conversations": len(conversations), "examples": n_windows, "target_turns": n_target_turns}


def _record(conv: Conversation, k: int, window: list[Turn]) -> ChatRecord:
    return ChatRecord(
        id=f"{conv.id}-w{k}",
        channel=conv.channel_name,
        channel_id=conv.channel,
        start=iso(window[0].start),
        end=iso(window[-1].end),
        messages=[
            ChatMessage(
                ASSISTANT if t.is_target else USER, t.content, t.name, train=not (t.is_target and t.context_only)
            )
            for t in window
        ],
    )


def _stats(cfg, report, options, authors, target, cleaner, counts, conversations, sizes) -> dict:
    return {
        "inputs": cfg.inputs,
        "files": report.files,
        "skipped_files": report.skipped_files,
        "duplicate_messages_removed": report.duplicates_removed,
        "duplicates": runs.plain(report.duplicates),
        "warnings": options.warnings,
        "target": {
            "query": target.query,
            "ids": sorted(target.ids),
            "usernames": sorted(target.usernames),
            "names": sorted(target.names),
        },
        "authors": [
            {
                "ids": sorted(a.ids),
                "usernames": sorted(a.usernames),
                "names": sorted(a.names),
                "messages": a.messages,
                "is_bot": a.is_bot,
            }
            for a in sorted(authors.values(), key=lambda a: -a.messages)
        ],
        "messages": {"read": counts["messages_read"], "kept": counts["messages_kept"]},
        "removed": dict(sorted(cleaner.removed.items())),
        "changed": dict(sorted(cleaner.changed.items())),
        "segmentation": {k: v for k, v in sorted(counts.items()) if not k.startswith("messages_")},
        "conversations": len(conversations),
        "turns_per_conversation": dict(sorted(turn_counts(conversations).items())),
        "split": sizes,
    }


def _print_summary(console: Console, stats: dict, run_dir: Path) -> None:
    table = Table(title=f"process_messages: target {', '.join(stats['target']['names'])}", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [("files read", len(stats["files"])), ("files skipped", len(stats["skipped_files"]))]
    rows += [
        (f"  unreadable: {f['file']}", f["reason"].removeprefix("unreadable: "))
        for f in stats["skipped_files"]
        if f["reason"].startswith("unreadable: ")
    ]
    rows += [("duplicate messages removed", stats["duplicate_messages_removed"])]
    rows += [(f"  {k.replace('_', ' ')}", v) for k, v in stats["duplicates"].items() if v]
    rows += [("messages read", stats["messages"]["read"]), ("messages kept", stats["messages"]["kept"])]
    rows += [(f"  removed: {k}", v) for k, v in stats["removed"].items()]
    rows += [(f"  changed: {k}", v) for k, v in stats["changed"].items()]
    rows += [(k.replace("_", " "), v) for k, v in stats["segmentation"].items()]
    rows += [("conversations", stats["conversations"])]
    for name, size in stats["split"].items():
        rows.append(
            (
                f"{name}: conversations / examples / target turns",
                f"{size['conversations']} / {size['examples']} / {size['target_turns']}",
            )
        )
        rows.append(
            (
                f"{name}: share of conversations / of target turns",
                f"{size['conversation_share']:.1%} / {size['target_turn_share']:.1%}",
            )
        )
    for what, value in rows:
        table.add_row(what, str(value))
    console.print(table)
    console.print(f"wrote {run_dir}/train.jsonl, validation.jsonl, stats.json")
