"""Cleaning rules: each a switch in `cleaning.*`, each counting what it removed or changed.

Order: whole-message rules first (system, bots, forwards, commands), then text rules (raw
Discord tokens, mentions, URLs, PII), then the rules that look at what is left (media-only,
empty, length, repeats).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator

from chatclone.config.process_messages import CleaningConfig, MediaPolicy, MentionPolicy, UrlPolicy
from chatclone.exports.records import Kind, Message

RAW_USER = re.compile(r"<@!?(\d+)>")
RAW_CHANNEL = re.compile(r"<#(\d+)>")
RAW_ROLE = re.compile(r"<@&(\d+)>")
RAW_EMOJI = re.compile(r"<a?:(\w+):\d+>")
URL = re.compile(r"(?:https?://|www\.)[^\s<>]+[^\s<>.,;:!?)\]'\"]")
EMAIL = re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE = re.compile(r"(?<![\w+])\+?\(?\d[\d\s().-]{7,}\d(?![\w])")
DIGIT_RUN = re.compile(r"\d[\d\s().-]{7,}\d")  # cheap pre-check: PHONE's lookbehind is slow on every position
DEFAULT, SYSTEM, COMMAND_RESPONSE, FORWARD = Kind.DEFAULT, Kind.SYSTEM, Kind.COMMAND_RESPONSE, Kind.FORWARD


class Cleaner:
    """Applies the configured rules to one channel's messages at a time, keeping counts across channels."""

    def __init__(self, cfg: CleaningConfig):
        self.cfg = cfg
        self.removed: Counter[str] = Counter()
        self.changed: Counter[str] = Counter()
        self.bots = {b.lower() for b in cfg.extra_bots}
        prefixes = "|".join(re.escape(p) for p in cfg.command_prefixes)
        self.command = re.compile(rf"^(?:{prefixes})[A-Za-z]") if prefixes and cfg.drop_commands else None
        self.rewrite_mentions = cfg.mentions is not MentionPolicy.keep
        self.repeat_window = cfg.repeat_window_minutes * 60
        self.url_replacement = (
            None if cfg.urls is UrlPolicy.keep else ("" if cfg.urls is UrlPolicy.drop else cfg.url_placeholder)
        )

    def clean(self, messages: Iterable[Message], names: dict[str, str]) -> Iterator[Message]:
        """Kept messages, content rewritten; `names` maps user ids to display names for raw mentions."""
        last_by_author: dict[str, tuple[str, float]] = {}
        for m in messages:
            reason = self._drop_whole(m)
            if reason is None:
                m.content = self._rewrite(m.content, names)
                reason = self._drop_rest(m, last_by_author)
            if reason:
                self.removed[reason] += 1
                continue
            yield m

    def _drop_whole(self, m: Message) -> str | None:
        cfg, kind = self.cfg, m.kind
        if kind is DEFAULT and not m.is_bot and not self.bots:  # the common case, decided in two checks
            return "commands" if self.command is not None and self.command.match(m.content) else None
        if kind is SYSTEM and cfg.drop_system:
            return "system"
        if cfg.drop_bots and (m.is_bot or kind is COMMAND_RESPONSE or self._listed_bot(m)):
            return "bots"
        if kind is FORWARD:
            if cfg.drop_forwards or not m.forwarded:
                return "forwards"
            m.content = m.forwarded
        if self.command is not None and self.command.match(m.content):
            return "commands"
        return None

    def _listed_bot(self, m: Message) -> bool:
        return bool(self.bots) and (m.username.lower() in self.bots or (m.author_id or "") in self.bots)

    def _rewrite(self, text: str, names: dict[str, str]) -> str:
        original = text
        if "<" in text:
            text = self._raw_tokens(text, names)
        if self.rewrite_mentions and "@" in text:
            text = self._mentions(text, names)
        if self.url_replacement is not None and ("http" in text or "www." in text):
            text = self._sub(URL, text, "urls", self.url_replacement)
        if self.cfg.scrub_pii:
            if "@" in text:
                text = self._sub(EMAIL, text, "emails", self.cfg.email_placeholder)
            if DIGIT_RUN.search(text):
                text = self._sub(PHONE, text, "phones", self.cfg.phone_placeholder, _is_phone)
        return text if text is original else re.sub(r"[ \t]{2,}", " ", text).strip()

    def _raw_tokens(self, text: str, names: dict[str, str]) -> str:
        """Exports made with `--markdown false` keep Discord's raw tokens: render them as DCE would."""
        text = self._sub(RAW_EMOJI, text, "custom_emoji", lambda m: f":{m[1]}:")
        text = self._sub(RAW_ROLE, text, "mentions", "@role")
        text = self._sub(RAW_USER, text, "mentions", lambda m: "@" + names.get(m[1], "Unknown"))
        return self._sub(RAW_CHANNEL, text, "mentions", "#channel")

    def _mentions(self, text: str, names: dict[str, str]) -> str:
        known = sorted(set(names.values()), key=len, reverse=True)
        if not known:
            return text
        pattern = re.compile("@(" + "|".join(re.escape(n) for n in known) + r")\b")
        keep_name = self.cfg.mentions is MentionPolicy.name
        return self._sub(pattern, text, "mentions", lambda m: m[1] if keep_name else self.cfg.mention_placeholder)

    def _sub(self, pattern: re.Pattern, text: str, rule: str, repl, accept=None) -> str:
        if pattern.search(text) is None:  # the common case, without building a closure
            return text

        def replace(m: re.Match) -> str:
            if accept is not None and not accept(m[0]):
                return m[0]
            self.changed[rule] += 1
            return repl(m) if callable(repl) else repl

        return pattern.sub(replace, text)

    def _drop_rest(self, m: Message, last_by_author: dict[str, tuple[str, float]]) -> str | None:
        cfg, text = self.cfg, m.content
        if text[:1].isspace() or text[-1:].isspace():
            text = text.strip()
        if not text and (m.attachments or m.stickers):
            if cfg.media_only is MediaPolicy.drop:
                return "media_only"
            text = m.content = cfg.media_placeholder
        if not text:
            return "empty"
        if len(text) < cfg.min_chars:
            return "too_short"
        if len(text) > cfg.max_chars:
            return "too_long"
        if not cfg.drop_repeats:
            return None
        author = m.author_id or m.username
        previous = last_by_author.get(author)
        last_by_author[author] = (text, m.ts)
        if previous is not None and previous[0] == text and m.ts - previous[1] <= self.repeat_window:
            return "repeats"
        return None


def _is_phone(text: str) -> bool:
    """A phone number has 9 to 15 digits and is no date or time (2025-03-27, 12:30)."""
    digits = sum(c.isdigit() for c in text)
    return 9 <= digits <= 15 and not re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", text.strip())
