"""Chat formatting for training: render conversations with a model's chat template and label the target's turns.

- `turns`: records -> units (speaker names, same-role merging) -> turns for one window (system prompt placement)
- `render`: turns -> text through the chat template, with each turn's exact character position
- `labels`: character spans -> labels via the tokenizer's character offsets (never via token ids)
- `encoder`: conversations -> sequences of at most max_length tokens (windows ending on target turns)
"""

from chatclone.formatting.encoder import ChatEncoder, Encoded, Sequence
from chatclone.formatting.labels import IGNORE, char_spans, labels_for_spans
from chatclone.formatting.render import Renderer
from chatclone.formatting.turns import ASSISTANT, SYSTEM, USER, Part, Style, Turn, Unit, build_units, window_turns

__all__ = [
    "ASSISTANT",
    "IGNORE",
    "SYSTEM",
    "USER",
    "ChatEncoder",
    "Encoded",
    "Part",
    "Renderer",
    "Sequence",
    "Style",
    "Turn",
    "Unit",
    "build_units",
    "char_spans",
    "labels_for_spans",
    "window_turns",
]
