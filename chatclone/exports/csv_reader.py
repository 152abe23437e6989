"""DiscordChatExporter CSV exports: `AuthorID,Author,Date,Content,Attachments,Reactions`.

Every field is quoted, quotes doubled, raw newlines inside fields. Dates are ISO 8601 with the
exporter's offset (2.41+); older files use the `--dateformat` text, read like TXT dates. Releases
before 2.16 used `;` and had no AuthorID column.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from chatclone.errors import ChatcloneError
from chatclone.exports import dates
from chatclone.exports.records import Message, kind_from_text
from chatclone.exports.sources import NAME_RE, FileHeader, ReadOptions
from chatclone.exports.text_files import first_line, open_text

REQUIRED = ("Author", "Date", "Content")


def read_csv(path: Path, options: ReadOptions) -> tuple[FileHeader, Iterator[Message]]:
    first = first_line(path)
    delimiter = ";" if first.count(";") > first.count(",") else ","
    columns = [c.strip() for c in first.strip().rstrip(delimiter).split(delimiter)]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ChatcloneError(
            f"CSV header lacks column(s) {', '.join(missing)}; expected "
            "AuthorID,Author,Date,Content,Attachments,Reactions",
            path,
            line=1,
        )
    header = FileHeader.from_path(
        path,
        channel_id=None,
        is_dm=path.name.startswith("Direct Messages"),
        name=NAME_RE.sub("", path.stem).strip(" -") or path.stem,
    )
    return header, _rows(path, columns, delimiter, options, header.channel_key)


def _rows(path: Path, columns: list[str], delimiter: str, options: ReadOptions, channel: str) -> Iterator[Message]:
    index = {name: i for i, name in enumerate(columns)}
    parse_date = _date_parser(path, options)
    with open_text(path) as f:
        reader = csv.reader(f, delimiter=delimiter, strict=True)
        try:
            next(reader)
            for order, row in enumerate(reader):
                if not row:
                    continue
                if len(row) < len(REQUIRED) or len(row) < len([c for c in columns if c]):
                    raise ChatcloneError(
                        f"row has {len(row)} fields, the header names {len(columns)} (broken quoting?)",
                        path,
                        line=reader.line_num,
                    )
                yield _to_message(row, index, parse_date, path, reader.line_num, channel, order)
        except csv.Error as e:
            raise ChatcloneError(f"broken CSV quoting: {e}", path, line=reader.line_num) from None
        except UnicodeDecodeError:
            raise ChatcloneError(
                "not UTF-8 text; DiscordChatExporter writes UTF-8, re-save the file as UTF-8",
                path,
                line=reader.line_num + 1,
            ) from None


def _to_message(row, index, parse_date, path, line, channel, order) -> Message:
    author = row[index["Author"]]
    content = row[index["Content"]]
    attachments = row[index["Attachments"]] if "Attachments" in index else ""
    ts = parse_date(row[index["Date"]], line)
    author_id = row[index["AuthorID"]] if "AuthorID" in index else None
    if not author.strip():
        raise ChatcloneError("empty Author (DiscordChatExporter always names the author)", path, line=line)
    if author_id and not (author_id.isascii() and author_id.isdigit()):
        raise ChatcloneError(f"AuthorID {author_id[:40]!r} is no user id (a string of digits)", path, line=line)
    return Message(
        channel=channel,
        id=None,
        author_id=author_id or None,
        username=author,
        display=author,
        is_bot=False,
        kind=kind_from_text(content),
        ts=ts,
        content=content,
        attachments=len([a for a in attachments.split(",") if a]),
        order=order,
    )


def _date_parser(path: Path, options: ReadOptions):
    """ISO dates first (2.41+); else the old text formats in the configured order and zone."""
    tz = dates.zone(options.timezone)
    order = "mdy" if options.date_order == "auto" else options.date_order

    def parse(text: str, line: int) -> float:
        try:
            return dates.iso_timestamp(text, tz) if "T" in text else _text_date(text)
        except dates.BadDate as e:
            raise ChatcloneError(f"date '{text[:40]}' {e}", path, line=line) from None
        except (ValueError, KeyError):
            raise ChatcloneError(f"unreadable date '{text[:40]}'", path, line=line) from None

    def _text_date(text: str) -> float:
        unix = dates.unix_timestamp(text)
        if unix is not None:
            return unix
        match = dates.split_date(text)
        if match is None:
            raise ValueError(text)
        return dates.to_timestamp(match, order, tz)

    return parse
