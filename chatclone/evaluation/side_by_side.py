"""Side by side (inference.py mode=compare): the bare base model and the clone answer the same messages, then the
held-out perplexity of the target's real replies for both, measured as evaluate_clone measures it.

    asked = Questions(conversations, held_out_examples(spec), user)   # checked before any model loads
    sides = compare_models(spec, cfg, asked, console)
    print_comparison(Console(file=stdout), spec.target, conversations, sides)

Each message opens a fresh conversation, answered as a chat turn is (streamed into a buffer, so a reply that comes
out empty is drawn again, up to reply_attempts draws), with the same sampling for both models; with a seed, both
draw from the same random stream, so a difference is the models', not the dice's. One model in memory at a time.
"""

from __future__ import annotations

import dataclasses
import gc
import io
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from rich.text import Text

from chatclone.config.generation import InferenceConfig
from chatclone.evaluation.data import labelled_examples
from chatclone.evaluation.passes import perplexity_pass
from chatclone.generation import running
from chatclone.generation.clone import CloneSpec
from chatclone.generation.generate import Reply
from chatclone.generation.records import generation_rows
from chatclone.generation.session import shown_text

BASE, CLONE = "base", "clone"
PERPLEXITY_BATCH = 4  # validation sequences per forward pass, as evaluate_clone's eval.batch_size default


@dataclass
class Questions:
    """What both models are given: the opening messages (each a fresh conversation, sent by `user`) and the
    held-out validation sequences they are scored on."""

    conversations: list[list[dict]]
    examples: list[dict]
    user: str


@dataclass
class Side:
    """One model's answers: the reply shown for each message, every draw (by message), its held-out perplexity."""

    name: str
    shown: list[Reply]
    draws: list[list[Reply]]
    perplexity: dict


def held_out_examples(spec: CloneSpec) -> list[dict]:
    """The validation sequences with a labelled (target) token, from the clone's tokenize_dataset run."""
    return labelled_examples(spec.data_dir)[0]


def compare_models(spec: CloneSpec, cfg: InferenceConfig, asked: Questions, console: Console) -> list[Side]:
    """The base model's side, then the clone's (`spec`), each loaded, scored and freed in turn."""
    base = dataclasses.replace(spec, kind="base", weights=None)
    return [_side(name, variant, cfg, asked, console) for name, variant in ((BASE, base), (CLONE, spec))]


def _side(name: str, spec: CloneSpec, cfg: InferenceConfig, asked: Questions, console: Console) -> Side:
    clone = running.load(spec, cfg, console)  # sets cfg.seed after loading: both models start the same stream
    perplexity = perplexity_pass(clone, asked.examples, PERPLEXITY_BATCH)  # first, as evaluate_clone does
    console.print(
        f"{name}: held-out perplexity {perplexity['perplexity']:.2f} over {perplexity['tokens']} target "
        f"tokens ({perplexity['seconds']:.0f} s); answering {len(asked.conversations)} messages",
        highlight=False,
    )
    session = running.new_session(clone, cfg, [asked.user], io.StringIO())
    shown, draws = [], []
    for opening in asked.conversations:
        session.reset()
        for message in opening:
            session.add(message["name"], message["content"], "prompt")
        before = len(session.replies)
        shown.append(session.generate(spec.target)[0])
        draws.append(session.replies[before:])
    del clone, session
    gc.collect()
    return Side(name, shown, draws, perplexity)


def comparison_rows(cfg: InferenceConfig, sides: list[Side], conversations: list[list[dict]]) -> list[dict]:
    """generations.jsonl: every draw, with the model and the message (index and text) it answered."""
    rows = []
    for side in sides:
        for index, (opening, draws) in enumerate(zip(conversations, side.draws)):
            rows += generation_rows(
                draws, cfg, stage="inference", model=side.name, message=index, prompt=_opening_text(opening)
            )
    return rows


def perplexity_summary(sides: list[Side]) -> dict:
    """The manifest summary's numbers: both perplexities, the tokens scored and the clone's relative change."""
    base, clone = (s.perplexity["perplexity"] for s in sides)
    return {
        "perplexity_base": base,
        "perplexity_clone": clone,
        "perplexity_tokens": sides[0].perplexity["tokens"],
        "perplexity_change": clone / base - 1,
    }


def perplexity_line(target: str, sides: list[Side]) -> str:
    summary = perplexity_summary(sides)
    change = summary["perplexity_change"]
    word = f"{abs(change):.0%} {'lower' if change < 0 else 'higher'}".replace("%", " %")
    return (
        f"held-out perplexity of {target}'s real replies ({summary['perplexity_tokens']} validation tokens): "
        f"base {summary['perplexity_base']:.2f} vs clone {summary['perplexity_clone']:.2f} ({word})"
    )


def print_comparison(out: Console, target: str, conversations: list[list[dict]], sides: list[Side]) -> None:
    """The table (message, base reply, clone reply; a row per message), then the perplexity line."""
    table = Table(title=f"the same messages, answered by the base model and by {target}'s clone", show_lines=True)
    for column in ("message", "base model", f"clone ({target})"):
        table.add_column(column, overflow="fold")
    for index, opening in enumerate(conversations):
        table.add_row(Text(_opening_text(opening)), *(Text(shown_text(side.shown[index])) for side in sides))
    out.print(table)
    out.print(perplexity_line(target, sides), highlight=False, markup=False, soft_wrap=True)  # one line, for grep


def _opening_text(opening: list[dict]) -> str:
    return "\n".join(f"{m['name']}: {m['content']}" for m in opening)
