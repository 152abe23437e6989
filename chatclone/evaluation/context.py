"""Context use: each validation reply paired with another conversation's context, and both scored by a model.

`swapped_contexts` pairs every context that has a history with the history of another context, preferring one from
another record (conversation) and, among those, the one half the list away (the list is spread over the split in
time order, so that is far in time too). Chosen once, before any model loads: base and clone score the same pairs.
`context_examples` renders each reply after its real and after its swapped history through chatclone.formatting's
ChatEncoder, exactly as training renders a conversation (chat template, speaker names, system prompt, as much
context as fits in max_length), with labels on that one reply (and its end-of-turn token) only.
"""

from __future__ import annotations

from typing import Any

from chatclone.evaluation.data import Context
from chatclone.formatting import ChatEncoder


def swapped_contexts(contexts: list[Context]) -> list[tuple[Context, list[dict]]]:
    """(context, another context's history) for every context with a history; [] when fewer than two have one."""
    usable = [c for c in contexts if c.history]
    count = len(usable)
    if count < 2:
        return []
    pairs = []
    for i, context in enumerate(usable):
        order = [(i + count // 2 + k) % count for k in range(count)]
        others = [j for j in order if j != i]
        elsewhere = [j for j in others if usable[j].record != context.record]
        pairs.append((context, usable[(elsewhere or others)[0]].history))
    return pairs


def context_examples(
    tokenizer: Any, fmt: Any, pairs: list[tuple[Context, list[dict]]]
) -> tuple[list[dict], list[dict]]:
    """score_nll examples of each pair's reply after its real and after its swapped history (`fmt`: the clone's
    PromptFormat); a pair whose reply cannot fit in max_length even alone is left out of both."""
    encoder = ChatEncoder(
        tokenizer, fmt.template, fmt.end_of_turn, fmt.style, fmt.max_length, where="the clone's chat template"
    )
    real, swapped = [], []
    for context, other in pairs:
        reply = {"role": "assistant", "name": fmt.target, "content": context.reply}
        a, b = (encoder.encode([*_context_only(history), reply]).sequences for history in (context.history, other))
        if a and b:
            real.append({"input_ids": a[-1].input_ids, "labels": a[-1].labels})
            swapped.append({"input_ids": b[-1].input_ids, "labels": b[-1].labels})
    return real, swapped


def _context_only(history: list[dict]) -> list[dict]:
    """The history with the target's earlier turns unlabelled: only the reply itself is scored."""
    return [{**m, "train": False} if m.get("role") == "assistant" else m for m in history]
