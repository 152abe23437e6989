"""What a generation run writes: generations.jsonl (every model turn, with the sampling values that produced it),
conversation.jsonl/.txt (the whole conversation), summary numbers, and a W&B table when W&B is on.

Chat text reaches W&B only with wandb.log_samples=true (chatclone/wandb_runs.py); otherwise the table holds numbers
only.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chatclone import runs, wandb_runs
from chatclone.config.generation import CloneStageConfig
from chatclone.generation.generate import Reply
from chatclone.generation.session import CUT_MARK, NO_REPLY

GENERATIONS = "generations.jsonl"
CONVERSATION = "conversation.jsonl"
CONVERSATION_TEXT = "conversation.txt"
TEXT_COLUMNS = ("text", "prompt")


def sampling_values(cfg: CloneStageConfig) -> dict:
    values = {k: v for k, v in asdict(cfg.sampling).items() if k != "name"}
    return {"sampling": cfg.sampling.name, **values, "seed": cfg.seed}


def generation_rows(replies: list[Reply], cfg: CloneStageConfig, **extra: Any) -> list[dict]:
    return [{**extra, **reply.record(), **sampling_values(cfg)} for reply in replies]


def write_jsonl(run_dir: Path, name: str, rows: list[dict]) -> str:
    path = runs.new_file(run_dir, name)
    with open(path, "x", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return name


def write_conversation(run_dir: Path, transcript: list[dict], header: str) -> list[str]:
    """conversation.jsonl (every turn, typed or generated) and conversation.txt (for reading)."""
    write_jsonl(run_dir, CONVERSATION, transcript)
    lines, current = [header, ""], 0
    for turn in transcript:
        if turn.get("conversation", 0) != current:
            current = turn["conversation"]
            lines += ["", f"--- conversation {current + 1} (after /reset) ---", ""]
        label = f"{turn['speaker']}: "
        lines.append(label + _shown(turn).replace("\n", "\n" + " " * len(label)) + _note(turn))
    with open(runs.new_file(run_dir, CONVERSATION_TEXT), "x", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return [CONVERSATION, CONVERSATION_TEXT]


def _shown(turn: dict) -> str:
    """A transcript turn as the conversation showed it (model turns: `(no reply)`, `…` after a max_new_tokens cut)."""
    if turn["by"] != "model":
        return turn["text"]
    return (turn["text"] + (CUT_MARK if turn.get("stopped") == "max_new_tokens" else "")) or NO_REPLY


def _note(turn: dict) -> str:
    draws = turn.get("attempts", 1)
    if turn["by"] != "model" or not (turn.get("cut_at") or draws > 1):
        return ""
    cut = f"cut before {turn['cut_at']}'s line" if turn.get("cut_at") else ""
    return f"  [{cut}{', ' if cut and draws > 1 else ''}{f'{draws} draws' if draws > 1 else ''}]"


def summarize(replies: list[Reply]) -> dict:
    """Counts over the model turns shown (replies; a candidate of mode=prompt is one each) and speeds over every
    draw. The shown ones partition into: ended at their end of turn, speaker_cuts (ended where another speaker's
    `Name:` line began), truncated (cut at max_new_tokens, shown with `…`), interrupted, and empty_replies (shown
    as `(no reply)`: every draw was empty). redrawn: empty draws drawn again, never shown."""
    shown = [r for r in replies if r.shown]
    said = [r for r in shown if r.text]
    timed = [r for r in replies if r.seconds > 0]
    # the candidates of one generate call share its wall time: count it once (at candidate 0), or n candidates
    # generated together would show 1/n of the real tokens/s
    seconds = sum(r.seconds for r in timed if r.candidate == 0)
    firsts = [r.first_token_s for r in replies if r.first_token_s is not None]
    return {
        "replies": len(shown),
        "tokens": sum(r.tokens for r in replies),
        "empty_replies": len(shown) - len(said),
        "speaker_cuts": sum(r.stopped == "speaker" for r in said),
        "truncated": sum(r.stopped == "max_new_tokens" for r in said),
        "interrupted": sum(r.stopped == "interrupted" for r in said),
        "draws": len(replies),
        "redrawn": len(replies) - len(shown),
        "stopped": dict(Counter(r.stopped for r in shown)),
        "tokens_per_s": round(sum(r.tokens for r in timed) / seconds, 2) if seconds else None,
        "mean_first_token_s": round(sum(firsts) / len(firsts), 4) if firsts else None,
    }


def describe(summary: dict) -> str:
    """The summary line: counts of the replies as they were shown."""
    ended = (
        summary["replies"]
        - summary["empty_replies"]
        - summary["speaker_cuts"]
        - summary["truncated"]
        - summary["interrupted"]
    )
    parts = [f"{ended} ended their turn"]
    parts += [f"{summary['speaker_cuts']} stopped where another speaker's line began"] * bool(summary["speaker_cuts"])
    parts += [f"{summary['truncated']} cut at sampling.max_new_tokens (shown with …)"] * bool(summary["truncated"])
    parts += [f"{summary['interrupted']} interrupted"] * bool(summary["interrupted"])
    parts += [f"{summary['empty_replies']} (no reply)"] * bool(summary["empty_replies"])
    redrawn = f"; {summary['redrawn']} empty draws drawn again" if summary["redrawn"] else ""
    return f"{summary['replies']} replies: {', '.join(parts)}{redrawn}"


def log_wandb(cfg: CloneStageConfig, run_dir: Path, stage: str, rows: list[dict], summary: dict) -> list[str]:
    """A W&B run with a table of the generations (text only with log_samples) and the summary; [] when disabled."""
    if not wandb_runs.enabled(cfg.wandb):
        return []
    import wandb

    columns = wandb_runs.numbers_only(rows[0] if rows else {}, TEXT_COLUMNS, cfg.wandb)
    config = {"stage": stage, **sampling_values(cfg), "run": cfg.run, "checkpoint": cfg.checkpoint.value}
    run = wandb_runs.start_run(cfg.wandb, run_dir, stage, config, reinit="finish_previous")
    table = wandb.Table(columns=columns, data=[[_cell(row.get(c)) for c in columns] for row in rows])
    run.log({"generations": table})
    run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float))})
    run.finish()
    return ["wandb"]


def _cell(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
