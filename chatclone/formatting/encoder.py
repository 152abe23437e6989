"""Conversations -> token sequences of at most max_length tokens, labelled only on the target's turns.

A conversation that fits is one sequence. A longer one becomes windows that each end on a target turn: a
window starts at the first target turn not trained yet, keeps room for at least a quarter of max_length of
what precedes it, takes as many further target turns as then fit, and finally as much preceding context as
fits. Every target turn is trained in exactly one window (earlier ones reappear only as unlabelled context);
one that cannot fit even alone is skipped and counted, never truncated.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chatclone.formatting.labels import IGNORE, char_spans, labels_for_spans
from chatclone.formatting.render import Renderer
from chatclone.formatting.turns import ASSISTANT, Part, Style, Turn, Unit, build_units, window_turns

CONTEXT_RESERVE = 0.25  # share of max_length kept for the context of a window's first trained turn


@dataclass
class Sequence:
    input_ids: list[int]
    labels: list[int]
    target_turns: int  # target messages labelled in this sequence

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def trained_tokens(self) -> int:
        return len(self.labels) - self.labels.count(IGNORE)


@dataclass
class Encoded:
    """What one conversation became."""

    sequences: list[Sequence] = field(default_factory=list)
    skipped_turns: int = 0  # target messages that could not fit in max_length even without context
    skipped_tokens: int = 0  # tokens of those turns' shortest windows


@dataclass
class _Draft:
    """A whole conversation rendered once (up to its last target turn), before tokenization."""

    units: list[Unit]
    turns: list[Turn]
    text: str
    starts: list[int]
    spans: list[tuple[int, int]]


class ChatEncoder:
    """Renders, tokenizes and labels conversations for one tokenizer, template and sequence length."""

    def __init__(
        self,
        tokenizer: Any,
        template: str,
        end_of_turn: str,
        style: Style,
        max_length: int,
        where: str = "model",
        hints: str = "",
    ):
        self.tokenizer, self.end_of_turn, self.style, self.max_length = tokenizer, end_of_turn, style, max_length
        self.renderer = Renderer(tokenizer, template, end_of_turn, where, hints)
        self._backend = _plain_backend(tokenizer)
        folded = style.system_prompt and not style.system_role  # in the first user turn: not a unit's own cost
        self._folded_system_tokens = len(self._tokenize([style.system_prompt])[0].ids) if folded else 0

    def encode(self, messages: Iterable[Mapping]) -> Encoded:
        return self.encode_batch([messages])[0]

    def encode_batch(self, conversations: Iterable[Iterable[Mapping]]) -> list[Encoded]:
        """Encode many conversations, tokenizing all the ones that fit in one call to the fast tokenizer."""
        drafts = [self._draft(messages) for messages in conversations]
        encodings = iter(self._tokenize([d.text for d in drafts if d is not None]))
        out = []
        for draft in drafts:
            if draft is None:
                out.append(Encoded())
                continue
            encoding = next(encodings)
            if len(encoding) <= self.max_length:
                trained = sum(u.trained_parts for u in draft.units)
                ids = encoding.ids
                out.append(Encoded([Sequence(ids, labels_for_spans(encoding, draft.spans, ids), trained)]))
            else:
                sizes = _unit_sizes(draft, encoding.offsets, self._folded_system_tokens)
                out.append(self._windows(draft.units, *sizes))
        return out

    def minimum_length(self) -> int:
        """Tokens of the shortest possible sequence: the system prompt and a one-character target turn."""
        return self._sequence([Unit(ASSISTANT, [Part("x", True)])], 0, 0, 0).length

    def _draft(self, messages: Iterable[Mapping]) -> _Draft | None:
        units = build_units(messages, self.style)
        trained = [i for i, u in enumerate(units) if u.trained_parts]
        if not trained:
            return None
        turns = window_turns(units, 0, trained[-1], 0, self.style)
        text, starts = self.renderer.render(turns)
        return _Draft(units, turns, text, starts, char_spans(turns, starts, self.end_of_turn))

    def _windows(self, units: list[Unit], sizes: list[int], overhead: int) -> Encoded:
        """Windows over units from estimated per-unit token counts, each checked by really tokenizing it."""
        trained = [i for i, u in enumerate(units) if u.trained_parts]
        prefix = [0]
        for size in sizes:
            prefix.append(prefix[-1] + size)

        def fits(start: int, end: int) -> bool:
            return overhead + prefix[end + 1] - prefix[start] <= self.max_length

        result, t = Encoded(), 0
        while t < len(trained):
            first = trained[t]
            context = first  # reserve room for what the window's first trained turn replies to
            while context > 0 and prefix[first] - prefix[context] < self.max_length * CONTEXT_RESERVE:
                context -= 1
            last = t
            while last + 1 < len(trained) and fits(context, trained[last + 1]):
                last += 1
            start = first
            while start > 0 and fits(start - 1, trained[last]):
                start -= 1
            sequence, last = self._fit(units, start, t, last, trained)
            if sequence.length > self.max_length:
                result.skipped_turns += units[first].trained_parts
                result.skipped_tokens += sequence.length
            else:
                result.sequences.append(sequence)
            t = last + 1
        return result

    def _fit(self, units: list[Unit], start: int, t: int, last: int, trained: list[int]) -> tuple[Sequence, int]:
        """Shrink the window (context first, then trailing target turns) until it really fits, or is one turn."""
        first = trained[t]
        while True:
            sequence = self._sequence(units, start, trained[last], first)
            if sequence.length <= self.max_length:
                return sequence, last
            if start < first:
                start += 1
            elif last > t:
                last -= 1
            else:
                return sequence, last

    def _sequence(self, units: list[Unit], start: int, end: int, first_trained: int) -> Sequence:
        turns = window_turns(units, start, end, first_trained, self.style)
        text, starts = self.renderer.render(turns)
        [encoding] = self._tokenize([text])
        ids = encoding.ids
        labels = labels_for_spans(encoding, char_spans(turns, starts, self.end_of_turn), ids)
        return Sequence(ids, labels, sum(u.trained_parts for u in units[first_trained : end + 1]))

    def check(self, messages: Iterable[Mapping]) -> None:
        """Compare the first window's render with transformers' own `apply_chat_template` (see Renderer.check)."""
        units = build_units(messages, self.style)
        trained = [i for i, u in enumerate(units) if u.trained_parts]
        if trained:
            self.renderer.check(window_turns(units, 0, trained[-1], 0, self.style))

    def _tokenize(self, texts: list[str]) -> list[Any]:
        """`tokenizers.Encoding`s straight from the fast tokenizer's Rust backend (no special tokens added: the
        template writes them)."""
        return self._backend.encode_batch(texts, add_special_tokens=False) if texts else []


def _plain_backend(tokenizer: Any) -> Any:
    """A copy of the tokenizer's Rust backend with truncation and padding off (a tokenizer.json may enable them;
    transformers turns them off per call, which calling the backend directly would skip)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


def _unit_sizes(draft: _Draft, offsets: list[tuple[int, int]], folded_system: int) -> tuple[list[int], int]:
    """Tokens each unit takes in the whole-conversation render (its content and the template text before it),
    and the tokens every window pays (system prompt, trailing template text). `folded_system`: tokens of a
    system prompt folded into the first turn, moved from that turn's unit to the fixed cost."""
    order = sorted(range(len(draft.turns)), key=draft.starts.__getitem__)
    ends = [draft.starts[i] + len(draft.turns[i].content) for i in order]
    sizes = [0] * len(draft.units)
    for start, _ in offsets:
        rank = bisect_right(ends, start)
        unit = draft.turns[order[rank]].unit if rank < len(order) else None
        if unit is not None:
            sizes[unit] += 1
    first = draft.turns[0].unit
    if first is not None:
        sizes[first] = max(0, sizes[first] - folded_system)
    return sizes, len(offsets) - sum(sizes)
