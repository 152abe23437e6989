"""The blind test's result: the clone-picked rate, the share of decided votes (those that picked a side) that took
the clone's reply for the real one, with its 95 % Wilson interval (chatclone.metrics.rates), per judge and
overall, and the can't-tell votes beside it.

50 % = the judges cannot tell the clone from the target (they pick at chance); below 50 % they spot the clone;
above 50 % they take the clone for the target more often than the target. An interval that contains 50 % means
that at this number of votes the judges' picks are not distinguishable from coin flips: no evidence that they can
tell, which is not yet evidence that they cannot (more votes narrow the interval). The overall interval treats
every vote as independent; votes of one judge, and on one item, are not quite, so read it as a little narrow.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from chatclone import runs
from chatclone.config.judging import JudgeReportConfig
from chatclone.errors import ChatcloneError
from chatclone.judging.pairs import STAGE, VOTES, read_judging_run
from chatclone.judging.votes import Vote, read_votes
from chatclone.metrics.rates import format_rate, rate

OVERALL = "all judges"


def tally(votes: list[Vote]) -> dict:
    """Votes, decided votes, can't-tell votes and the clone-picked rate (None before any decided vote)."""
    decided = [v for v in votes if v.picked_clone is not None]
    picked = sum(v.picked_clone for v in decided)
    return {
        "votes": len(votes),
        "decided": len(decided),
        "cant_tell": len(votes) - len(decided),
        "clone_picked": rate(picked, len(decided)) if decided else None,
    }


def judging_report(judging_dir: Path) -> dict:
    """The result of a judging run, read from its votes at this moment: `judges` (one tally per judge, by name),
    `overall`, and the run's `target`, `items` and `source`. Nothing is written."""
    run = read_judging_run(judging_dir)
    votes = read_votes(Path(judging_dir) / VOTES)
    judges = sorted({v.judge for v in votes})
    return {
        "target": run.target,
        "items": run.items,
        "source": str(run.source),
        "judges": {j: tally([v for v in votes if v.judge == j]) for j in judges},
        "overall": tally(votes),
    }


def verdict(clone_picked: dict | None) -> str:
    """A rate's meaning in words, from where its 95 % interval lies against 50 %."""
    if clone_picked is None:
        return "no decided votes yet"
    low, high = clone_picked["ci95"]
    if low <= 0.5 <= high:
        return "at chance"
    return "spot the clone" if high < 0.5 else "fooled: pick the clone"


def print_report(console: Console, report: dict, where: Path) -> None:
    """The table: per judge and overall, the clone-picked rate with its interval, the can't-tell votes, a verdict."""
    table = Table(
        title=f"blind judging: {report['target']} or the clone? ({report['items']} items)",
        caption="clone picked = decided votes that took the clone's reply for the real one. 50 % = the "
        "judges cannot tell. At chance: the interval holds 50 %, no evidence at this n that they can "
        "tell (more votes narrow it); spot the clone: all of it below 50 %; fooled: all of it "
        "above (the clone taken for the target more often than the target).",
        caption_justify="left",
    )
    for column in ("judge", "clone picked [95 % CI] n", "can't tell", "votes", "verdict"):
        table.add_column(column, justify="left" if column in ("judge", "verdict") else "right", no_wrap=True)
    rows = [*report["judges"].items(), (OVERALL, report["overall"])]
    for name, t in rows:
        shown = "—" if t["clone_picked"] is None else format_rate(t["clone_picked"])
        table.add_row(
            name,
            shown,
            str(t["cant_tell"]),
            str(t["votes"]),
            verdict(t["clone_picked"]),
            style="bold" if name == OVERALL else None,
        )
    console.print(table)
    console.print(f"read {where / VOTES} (source: {report['source']})", highlight=False)


def report_judging(judging_dir: Path, console: Console | None = None) -> dict:
    """judge_report.py: print the table of a judging run; the report."""
    report = judging_report(judging_dir)
    print_report(console or Console(), report, Path(judging_dir))
    return report


def report_from_config(cfg: JudgeReportConfig, console: Console | None = None) -> dict:
    """judge_report.py: the judging run `cfg.run` names (latest or a dir), reported."""
    root = Path(cfg.outputs_root)
    if cfg.run == "latest" and not any((root / STAGE).glob(f"**/{runs.MANIFEST}")):
        raise ChatcloneError(
            "no judging run found: start one with the web server's judging.source=<evaluate_clone "
            "run>, or pass run=<judging run dir>",
            root / STAGE,
        )
    return report_judging(runs.resolve_input(cfg.run, root, STAGE), console)
