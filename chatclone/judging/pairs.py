"""The judging items of a finished evaluate_clone run: for each validation context in its samples.jsonl, the
context (the last messages as `Name: text`), the target's real reply and the fine-tuned clone's reply, shown as A
and B in an order that is random but fixed per item (seeded). No model is needed to judge.

    prepare_judging(Path("outputs/evaluate_clone/<run>"), Path("outputs/judging/<stamp>"), seed=0)

Items whose two replies are the same text (after trimming spaces) are left out: there is nothing to choose.
"""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from chatclone import runs
from chatclone.errors import ChatcloneError

STAGE, SOURCE_STAGE = "judging", "evaluate_clone"
# samples.jsonl and its clone column, as chatclone.evaluation.report and .fidelity name them (not imported: those
# modules load transformers, which the judging page and judge_report.py have no use for).
SAMPLES, FINE_TUNED = "samples.jsonl", "fine_tuned"
ITEMS, VOTES, SECRET = "items.jsonl", "votes.sqlite", "secret"
SIDES = ("a", "b")


@dataclass(frozen=True)
class Item:
    id: int  # the row of samples.jsonl it comes from (0 = the first line)
    turn: int  # samples.jsonl's turn and record: which validation target turn this is
    record: str
    context: list[str]  # `Name: text`, oldest first; [] when the reply opens the conversation
    a: str
    b: str
    clone: str  # "a" or "b": the side of the clone's reply (never sent to the page)

    def public(self) -> dict:
        """What the page may see: everything but which side is the clone's."""
        return {"id": self.id, "context": self.context, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class JudgingRun:
    dir: Path
    source: Path  # the evaluate_clone run
    target: str
    items: int
    skipped_identical: int


def build_items(rows: list[dict], seed: int) -> tuple[list[Item], int]:
    """The items of samples.jsonl's rows (parsed) and how many were left out for identical replies. Each kept
    row's sides come from one draw of a random stream seeded with `seed`, in row order."""
    rng, items, skipped = random.Random(seed), [], 0
    for i, row in enumerate(rows):
        real, clone = row["real"], row[FINE_TUNED]
        if real.strip() == clone.strip():
            skipped += 1
            continue
        side = SIDES[rng.random() < 0.5]
        a, b = (clone, real) if side == "a" else (real, clone)
        items.append(Item(i, row["turn"], row["record"], list(row["context"]), a, b, side))
    return items, skipped


def read_samples(eval_run: Path) -> list[dict]:
    """samples.jsonl's rows; a line that is not a row with the fields judging needs is one error naming it."""
    path = Path(eval_run) / SAMPLES
    if not path.is_file():
        raise ChatcloneError(f"no {SAMPLES}: not an evaluate_clone run dir", eval_run)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
        except ValueError:
            raise ChatcloneError("not a JSON line", path, line=number) from None
        ok = (
            isinstance(row, dict)
            and isinstance(row.get("real"), str)
            and isinstance(row.get(FINE_TUNED), str)
            and isinstance(row.get("context"), list)
            and all(isinstance(m, str) for m in row["context"])
        )
        if not ok:
            raise ChatcloneError(
                f"a sample needs `real` and `{FINE_TUNED}` texts and a `context` list of texts", path, line=number
            )
        rows.append({"turn": row.get("turn", number - 1), "record": str(row.get("record", "")), **row})
    return rows


def prepare_judging(eval_run_dir: Path, run_dir: Path, seed: int) -> JudgingRun:
    """A new judging run dir from a finished evaluate_clone run: items.jsonl, secret, an empty votes.sqlite and,
    last, manifest.json. Every problem with the source fails before anything is written."""
    from chatclone.judging.votes import create_store

    eval_run_dir, run_dir = Path(eval_run_dir), Path(run_dir)
    manifest = runs.read_manifest(eval_run_dir)
    if manifest.get("stage") != SOURCE_STAGE:
        raise ChatcloneError(f"this is a {manifest.get('stage')} run, expected an {SOURCE_STAGE} run", eval_run_dir)
    items, skipped = build_items(read_samples(eval_run_dir), seed)
    if not items:
        raise ChatcloneError(
            f"nothing to judge: every one of the {skipped} samples has a clone reply identical to the real one",
            eval_run_dir / SAMPLES,
        )
    target = str(manifest.get("summary", {}).get("target", "the target"))
    runs.start_run(run_dir)
    with runs.new_files(run_dir, ITEMS) as (path,):
        path.write_text("".join(json.dumps(asdict(i), ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    secret = runs.new_file(run_dir, SECRET)
    secret.touch(mode=0o600)
    secret.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
    create_store(runs.new_file(run_dir, VOTES))
    runs.finish_run(
        run_dir,
        STAGE,
        {"seed": seed},
        inputs=[str(eval_run_dir)],
        outputs=[ITEMS, SECRET, VOTES],
        summary={"items": len(items), "skipped_identical": skipped, "target": target, "source": str(eval_run_dir)},
    )
    return JudgingRun(run_dir, eval_run_dir, target, len(items), skipped)


def load_items(judging_dir: Path) -> dict[int, Item]:
    """items.jsonl of a judging run dir, by id."""
    path = Path(judging_dir) / ITEMS
    if not path.is_file():
        raise ChatcloneError(f"no {ITEMS}: not a judging run dir", judging_dir)
    items = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            item = Item(**json.loads(line))
        except (ValueError, TypeError):
            raise ChatcloneError("not a judging item", path, line=number) from None
        items[item.id] = item
    return items


def read_judging_run(judging_dir: Path) -> JudgingRun:
    """A prepared judging run dir, checked to be one."""
    manifest = runs.read_manifest(judging_dir)
    if manifest.get("stage") != STAGE:
        raise ChatcloneError(f"this is a {manifest.get('stage')} run, expected a {STAGE} run", judging_dir)
    s = manifest["summary"]
    return JudgingRun(Path(judging_dir), Path(s["source"]), s["target"], s["items"], s["skipped_identical"])
