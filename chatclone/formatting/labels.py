"""Labels from the tokenizer's character offsets: a token is trained iff it covers a character of a trained span.

Labels never depend on token ids, so a pad token equal to eos (SmolLM2, GPT-2 setups) cannot unlabel the
end-of-turn token, and the template's own text (headers, system prompt, other speakers) is never trained.
Each span maps to tokens through the Rust encoding's offsets (`char_to_token`, as transformers' own
`return_assistant_tokens_mask` does), so the cost is per span, not per token.
"""

from __future__ import annotations

from typing import Any

from chatclone.formatting.turns import Turn

IGNORE = -100


def char_spans(turns: list[Turn], starts: list[int], end_of_turn: str) -> list[tuple[int, int]]:
    """Absolute (start, end) character spans to label in the rendered text, sorted and non-overlapping."""
    spans: list[tuple[int, int]] = []
    for turn, start in zip(turns, starts):
        spans += [(start + s, start + e) for s, e in turn.spans]
        if turn.end_trained:
            end = start + len(turn.content)
            if spans and spans[-1][1] == end:
                spans[-1] = (spans[-1][0], end + len(end_of_turn))
            else:
                spans.append((end, end + len(end_of_turn)))
    return sorted(spans)


def labels_for_spans(encoding: Any, spans: list[tuple[int, int]], ids: list[int] | None = None) -> list[int]:
    """Token ids of `encoding` (a `tokenizers.Encoding`; `ids`: its ids, if already fetched) where a token covers a
    span character, IGNORE elsewhere."""
    ids = encoding.ids if ids is None else ids
    labels = [IGNORE] * len(ids)
    for start, end in spans:
        first, last = _token_at(encoding, start, end, 1), _token_at(encoding, end - 1, start - 1, -1)
        if first is not None and last is not None and first <= last:
            labels[first : last + 1] = ids[first : last + 1]
    return labels


def _token_at(encoding: Any, position: int, stop: int, step: int) -> int | None:
    """The token holding the character at `position`, moving towards `stop` past characters no token holds
    (a tokenizer may leave whitespace out of every token's offsets)."""
    for char in range(position, stop, step):
        token = encoding.char_to_token(char)
        if token is not None:
            return token
    return None
