"""DiscordChatExporter HTML exports (HtmlDark, HtmlLight: same markup), streamed one message group at a time.

DCE writes a preamble ending in `<div class="chatlog">`, then each message group as one minified
`<div class=chatlog__message-group>` (its text may span lines: message content keeps its newlines),
then a postamble. We cut the file at those group openings and parse each group on its own with lxml,
so memory stays bounded by the largest group. Times come from the snowflake in `data-message-id`
(exact to the millisecond, unlike the minute-precision local dates on the page); the author shown on
a group's first message is carried to the messages after it; the content is turned back into
markdown from the `chatlog__markdown-preserve` span (see `_markdown` for what cannot be recovered).
Layouts of DCE 2.34-2.37 (`chatlog__reference*`) and <=2.33 (`chatlog__author-name`,
`preserve-whitespace`) are read as well. No message vanishes unseen: a message element without
`data-message-id` is an error, and so is a postamble whose "Exported N message(s)" differs from the
count read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from chatclone.errors import ChatcloneError
from chatclone.exports.records import Kind, Message
from chatclone.exports.sources import FileHeader, ReadOptions

BLOCK = 1 << 22
PREAMBLE_LIMIT = 1 << 24  # the chatlog opening must appear within the first 16 MiB
DISCORD_EPOCH_MS = 1420070400000
CHATLOG_RE = re.compile(r"<div class=[\"']?chatlog[\"']?\s*>")
GROUP_RE = re.compile(r"<div class=[\"']?chatlog__message-group[\"']?\s*>")
SCROLL_RE = re.compile(r"scrollToMessage\(event,\s*'(\d+)'\)")
CUSTOM_EMOJI_RE = re.compile(r"\w+", re.ASCII)  # custom emoji alt is a bare name; standard emoji alt is the emoji
COMPLETE_GROUP_RE = re.compile(r"</div>\r?\n\s*\Z")
INLINE_MARKS = {"strong": "**", "em": "*", "u": "__", "s": "~~"}
EMOJI = {"chatlog__emoji", "emoji"}
SPOILER = {"chatlog__markdown-spoiler", "spoiler-text"}
QUOTE = {"chatlog__markdown-quote", "quote"}
INLINE_CODE = {"chatlog__markdown-pre--inline", "pre--inline"}
BLOCK_CODE = {"chatlog__markdown-pre--multiline", "pre--multiline"}
PRESERVE = {"chatlog__markdown-preserve", "preserve-whitespace"}
AUTHOR_CLASSES = {"chatlog__author", "chatlog__author-name", "chatlog__system-notification-author"}
MESSAGE_CLASSES = {"chatlog__message-container", "chatlog__message"}  # one message: 2.34+, <=2.33
UNKNOWN_REPLY = ("chatlog__reply-unknown", "chatlog__reference-unknown")  # deleted or unloadable original
BOT_TAGS = {"chatlog__author-tag", "chatlog__bot-label", "chatlog__bot-tag"}
CAPITALISED = ("added ", "removed ", "left the group", "started a ", "changed the channel", "joined the server")
# HTML shows system notices as lower-case phrases; JSON/CSV/TXT carry DCE's fallback sentences.
SYSTEM_SENTENCES = {"pinned a message to this channel.": "Pinned a message."}


def read_html(path: Path, options: ReadOptions) -> tuple[FileHeader, Iterator[Message]]:
    """Header of one HTML export and a lazy iterator over its messages."""
    header = _file_header(path, _read_preamble(path))
    return header, _messages(path, header.channel_key, options)


def _open(path: Path):
    return open(path, encoding="utf-8-sig", newline="")


def _read_preamble(path: Path) -> str:
    """The page up to and including `<div class="chatlog">`."""
    text = ""
    try:
        with _open(path) as f:
            while len(text) < PREAMBLE_LIMIT:
                more = f.read(BLOCK)
                text += more
                found = CHATLOG_RE.search(text)
                if found:
                    return text[: found.end()]
                if not more:
                    break
    except UnicodeDecodeError as e:
        raise ChatcloneError(f"not UTF-8 text ({e.reason} at byte {e.start})", path) from None
    if not text.strip():
        raise ChatcloneError("empty file, expected a DiscordChatExporter HTML export", path)
    raise ChatcloneError('not a DiscordChatExporter HTML export (no <div class="chatlog"> near the top)', path)


def _file_header(path: Path, preamble: str) -> FileHeader:
    page = etree.HTML(preamble + "</div>")
    entries = [
        _text(e) for e in page.iter(etree.Element) if (e.get("class") or "").split() == ["preamble__entry"]
    ]  # not the --small topic/date lines
    if len(entries) < 2:
        title = page.findtext(".//title") or ""
        entries = title.split(" - ", 1) if " - " in title else [title or path.stem, ""]
    guild, channel = entries[0], entries[1]
    return FileHeader.from_path(
        path, channel_id=None, is_dm=guild == "Direct Messages", name=" / ".join(p for p in (guild, channel) if p)
    )


def _pieces(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line, text, is_last) of each message group after the chatlog opening; the last piece also
    holds whatever follows the last group (the postamble, in a complete file)."""
    buf, line, started = "", 1, False
    try:
        with _open(path) as f:
            while more := f.read(BLOCK):
                buf += more
                if not started:
                    found = CHATLOG_RE.search(buf)
                    if not found:
                        continue
                    line += buf.count("\n", 0, found.end())
                    buf, started = buf[found.end() :], True
                cuts = [0] + [m.start() for m in GROUP_RE.finditer(buf, 1)]
                for start, end in zip(cuts, cuts[1:]):
                    yield line, buf[start:end], False
                    line += buf.count("\n", start, end)
                buf = buf[cuts[-1] :]
    except UnicodeDecodeError as e:
        raise ChatcloneError(f"not UTF-8 text ({e.reason})", path, line=line) from None
    yield line, buf, True


def _messages(path: Path, channel_key: str, options: ReadOptions) -> Iterator[Message]:
    bots: dict[str, bool] = {}  # user id -> is_bot, seen on regular messages (system notices have no tag)
    order = 0
    for line, piece, last in _pieces(path):
        root = _parse(path, piece, line)
        postamble = _find(root, {"postamble"}) if last else None
        truncated = last and postamble is None
        # Cut off mid-export: the last group counts only if its line was written out in full.
        complete = not truncated or bool(COMPLETE_GROUP_RE.search(piece))
        group = _find(root, {"chatlog__message-group"}) if complete else None
        messages = [] if group is None else _group(path, line, group, channel_key, order, bots)
        if truncated:
            _truncated(path, line, order + len(messages), complete, options)
        if postamble is not None:
            _check_count(path, line + piece.count("\n", 0, piece.rfind("postamble")), postamble, order + len(messages))
        yield from messages
        order += len(messages)


def _check_count(path: Path, line: int, postamble: etree._Element, count: int) -> None:
    """The postamble's "Exported N message(s)" must match the messages read: none may vanish unseen."""
    stated = next(
        (
            " ".join(e.text.split())
            for e in postamble.iter(etree.Element)
            if (e.text or "").strip().startswith("Exported ")
        ),
        None,
    )
    digits = re.sub(r"\D", "", stated or "")
    if digits and int(digits) != count:
        raise ChatcloneError(
            f"postamble says '{stated}' but {count} messages were read "
            "(a message element without data-message-id, or an edited page?)",
            path,
            line=line,
        )


def _parse(path: Path, piece: str, line: int) -> etree._Element:
    try:
        root = etree.HTML(piece) if piece.strip() else None
    except (etree.LxmlError, ValueError) as e:
        raise ChatcloneError(f"unreadable HTML: {e}", path, line=line) from None
    return root if root is not None else etree.Element("div")


def _truncated(path: Path, line: int, count: int, complete: bool, options: ReadOptions) -> None:
    """A file without postamble was cut off mid-export: an error unless allow_truncated."""
    if not options.allow_truncated:
        raise ChatcloneError(
            f"truncated export: it stops after {count} complete messages (no postamble with "
            "'Exported N message(s)'). Re-export, or pass allow_truncated=true to keep the messages read",
            path,
            line=line,
        )
    dropped = "" if complete else " (its last, partly written message group is dropped)"
    options.warn(f"{path}:{line}: export is truncated after {count} messages{dropped}; keeping those")


def _group(
    path: Path, line: int, group: etree._Element, channel_key: str, order: int, bots: dict[str, bool]
) -> list[Message]:
    """The messages of one group: author carried forward, reply block applying to the first only."""
    shared, messages, orphan = _index(group)
    if orphan is not None:
        _orphan(path, line, order, group, orphan, messages)
    reply_to, is_command = _reply(shared, messages[0][1] if messages else {})
    found = shared.get("chatlog__author-name")  # <=2.33: one author span for the whole group
    author = _author(found[0], bots) if found else None
    out = []
    for index, (node, classes) in enumerate(messages):
        raw_id = node.get("data-message-id")
        if not (raw_id.isascii() and raw_id.isdigit()) or int(raw_id) >= 1 << 64:
            raise ChatcloneError(
                f"bad data-message-id {raw_id[:40]!r} (a snowflake id is a number below 2^64)",
                path,
                line=line,
                record=order + index + 1,
            )
        found = classes.get("chatlog__author") or classes.get("chatlog__system-notification-author")
        if found:
            author = _author(found[0], bots)
        if author is None:
            raise ChatcloneError(
                f"message {raw_id} has no author (no chatlog__author before it in its group)",
                path,
                line=line,
                record=order + index + 1,
            )
        out.append(
            _message(
                classes,
                int(raw_id),
                author,
                channel_key,
                order + index,
                reply_to if index == 0 else None,
                is_command and index == 0,
            )
        )
    return out


def _orphan(
    path: Path, line: int, order: int, group: etree._Element, orphan: tuple[int, etree._Element], messages: list
) -> None:
    """A message element without data-message-id: refused, naming where it is, who wrote it and when."""
    before, el = orphan
    shown = [f"after message {messages[before - 1][0].get('data-message-id')}" if before else "first in its group"]
    author = _find(el, AUTHOR_CLASSES)
    if author is None:
        author = _find(group, AUTHOR_CLASSES)  # a DCE group has one author
    if author is not None:
        shown.append(f"by {_text(author)}")
    stamp = _find(el, {"chatlog__timestamp", "chatlog__short-timestamp"})
    if stamp is not None:
        shown.append(f"at {_text(stamp)}")
    raise ChatcloneError(
        f"a message element without data-message-id ({', '.join(shown)})", path, line=line, record=order + before + 1
    )


def _index(group: etree._Element) -> tuple[dict, list[tuple[etree._Element, dict]], tuple | None]:
    """Elements by class name, in one pass: those before the first message (the group's own), and
    for each `data-message-id` element those from it up to the next one; and the first message
    element that has no `data-message-id` (with how many messages precede it), if any."""
    shared: dict[str, list[etree._Element]] = {}
    messages: list[tuple[etree._Element, dict]] = []
    current, node, orphan = shared, None, None
    for el in group.iter(etree.Element):
        names = (el.get("class") or "").split()
        if el.get("data-message-id") is not None:
            current, node = {}, el
            messages.append((el, current))
        elif (
            orphan is None
            and MESSAGE_CLASSES.intersection(names)
            and ("chatlog__message-container" in names or node is None or node not in el.iterancestors())
        ):
            orphan = (len(messages), el)
        for name in names:
            current.setdefault(name, []).append(el)
    return shared, messages, orphan


def _find(root: etree._Element, names: set[str]) -> etree._Element | None:
    """The first element from `root` on (itself included) that has one of the class names."""
    for el in root.iter(etree.Element):
        if names.intersection((el.get("class") or "").split()):
            return el
    return None


def _text(el: etree._Element) -> str:
    return " ".join("".join(el.itertext()).split())


def _author(span: etree._Element, bots: dict[str, bool]) -> tuple[str | None, str, str, bool]:
    """(user id, username, display name, is_bot) from an author span and the bot tag beside it."""
    user_id, display = span.get("data-user-id"), _text(span)
    username = span.get("title") or display
    tagged = any(BOT_TAGS & set((c.get("class") or "").split()) for c in span.getparent())
    if "system-notification" in span.get("class", ""):
        is_bot = bots.get(user_id or username, False)
    else:
        is_bot = bots[user_id or username] = tagged
    return user_id, username, display, is_bot


def _reply(*indexes: dict) -> tuple[int | None, bool]:
    """(id of the replied-to message, whether the block is an app command's "used /name"), from the
    reply block of the group (<=2.33) or of its first message."""
    names = ("chatlog__reply", "chatlog__reference")
    block = next((index[n][0] for index in indexes for n in names if n in index), None)
    if block is None:
        return None, False
    for el in block.iter(etree.Element):
        found = SCROLL_RE.search(el.get("onclick") or "")
        if found:
            return int(found[1]), False
    unknown = any(n in index for index in indexes for n in UNKNOWN_REPLY)
    return None, not unknown and "used /" in _text(block)


def _message(
    classes: dict[str, list],
    message_id: int,
    author: tuple,
    channel_key: str,
    order: int,
    reply_to: int | None,
    is_command: bool,
) -> Message:
    system, forwarded = classes.get("chatlog__system-notification-content"), classes.get("chatlog__forwarded")
    if system:
        kind, content = Kind.SYSTEM, _system_text(system[0])
    else:
        kind = Kind.FORWARD if forwarded else Kind.COMMAND_RESPONSE if is_command else Kind.DEFAULT
        content = _text_in(classes.get("chatlog__content"))
    stickers = classes.get("chatlog__sticker", [])
    if forwarded:  # the forwarded original's stickers are not this message's
        stickers = [s for s in stickers if forwarded[0] not in s.iterancestors()]
    user_id, username, display, is_bot = author
    return Message(
        channel=channel_key,
        id=message_id,
        author_id=user_id,
        username=username,
        display=display,
        is_bot=is_bot,
        kind=kind,
        ts=((message_id >> 22) + DISCORD_EPOCH_MS) / 1000,
        content=content,
        reply_to=reply_to,
        attachments=len(classes.get("chatlog__attachment", ())),
        stickers=len(stickers),
        forwarded=_text_in(classes.get("chatlog__forwarded-content")) if forwarded else None,
        order=order,
    )


def _system_text(el: etree._Element) -> str:
    """DCE's fallback sentence ("Pinned a message.") from the HTML phrase ("pinned a message to this channel.")."""
    text = _text(el)
    text = SYSTEM_SENTENCES.get(text, text)
    if text.startswith("started a call that lasted"):
        text += "."
    return text[:1].upper() + text[1:] if text.startswith(CAPITALISED) else text


def _text_in(found: list | None) -> str:
    """Markdown text of the preserve span inside the first element of `found` ("" when absent)."""
    span = _find(found[0], PRESERVE) if found else None
    if span is None:
        return ""
    text = _markdown(span)
    if len(span) and span[-1].tag == "ul" and not span[-1].tail and text.endswith("\n"):
        text = text[:-1]  # a list at the very end consumed no newline of the source
    return text


def _markdown(el: etree._Element) -> str:
    """Markdown source of rendered content, inverting DCE's HtmlMarkdownVisitor. Not recoverable:
    `_x_` vs `*x*` (both <em>; written `*x*`), `* item` vs `- item`, `<url>` vs `url`, `>>> ` vs `> `,
    backslash escapes, a code block's exact fences; mentions, channels, roles and dates keep the
    text DCE rendered (`@Name`, `#channel`), as in the other formats."""
    parts = [el.text or ""]
    for child in el:
        parts.append(_node_markdown(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _node_markdown(el: etree._Element) -> str:
    """Markdown of one rendered element (emoji image, formatting tag, link, list item, quote, code...)."""
    if not isinstance(el.tag, str):  # comments, processing instructions
        return ""
    classes = set((el.get("class") or "").split())
    if el.tag == "img":
        alt = el.get("alt") or ""
        return "" if not classes & EMOJI else f":{alt}:" if CUSTOM_EMOJI_RE.fullmatch(alt) else alt
    inner = _markdown(el)
    if el.tag in INLINE_MARKS:
        return INLINE_MARKS[el.tag] + inner + INLINE_MARKS[el.tag]
    if el.tag == "a":
        href = el.get("href") or ""
        return inner if not href or inner == href else f"[{inner}]({href})"
    if el.tag == "li":
        return f"- {inner}\n"
    if el.tag in ("h1", "h2", "h3"):
        return f"{'#' * int(el.tag[1])} {inner}\n"
    if classes & SPOILER:
        return f"||{inner}||"
    if classes & QUOTE:
        return "".join(f"> {line}" for line in inner.splitlines(keepends=True))
    if classes & INLINE_CODE:
        fence = "``" if "`" in inner else "`"
        return f"{fence}{inner}{fence}"
    if classes & BLOCK_CODE:
        lang = next((c[len("language-") :] for c in classes if c.startswith("language-")), "")
        return f"```{lang}\n{inner}\n```"
    return inner
