"""Results that say what the data can say: rates with Wilson intervals and n, the attribution caveat when the
style classifier cannot tell the target apart, a progress bar and log lines while replies are generated, and
plots that read at a glance (whole-number ticks, markers for few points, n and error bars, the best checkpoint)."""

from __future__ import annotations

import io
import json
import logging
import random
from pathlib import Path

import pytest
from rich.console import Console

from chatclone.errors import ChatcloneError
from chatclone.evaluation.fidelity import caveat
from chatclone.evaluation.progress import ReplyProgress
from chatclone.evaluation.report import attribution_figure, attribution_verdict, lengths_figure, perplexity_figure
from chatclone.metrics import load_metric
from chatclone.metrics.rates import format_rate, intervals_overlap, normalised, rate, separation, wilson_interval
from chatclone.stages.evaluate_clone import evaluate_clone, print_summary
from chatclone.training.reporting import best_step, loss_figure, plot_loss_curves, training_entries
from tests.conftest import compose, quiet
from tests.test_evaluate_clone import trained  # noqa: F401  (the tiny train run fixture)
from tests.test_metrics import _styled

# Hand-computed Wilson 95 % intervals (z = 1.959964, z^2 = 3.841459, n + z^2 = 13.841459 for n = 10):
#   0/10:  high = z^2 / (n + z^2) = 0.277533, low = 0          10/10: the mirror image, (0.722467, 1)
#   5/10:  centre 0.5, half = z / (n + z^2) * sqrt(n/4 + z^2/4) = 0.141600 * 1.860203 = 0.263407
KNOWN = {
    (0, 10): (0.0, 0.277533),
    (5, 10): (0.236593, 0.763407),
    (10, 10): (0.722467, 1.0),
    (1, 1): (0.206549, 1.0),
}  # 1/1: low = 1 / (1 + z^2) = 0.206549


@pytest.mark.parametrize("counts, expected", KNOWN.items())
def test_wilson_interval_on_hand_computed_values(counts, expected):
    low, high = wilson_interval(*counts)
    assert (low, high) == pytest.approx(expected, abs=1e-6)
    r = rate(*counts)
    assert r == {"rate": counts[0] / counts[1], "successes": counts[0], "n": counts[1], "ci95": [low, high]}


def test_wilson_interval_narrows_with_n_and_rejects_impossible_counts():
    assert wilson_interval(50, 100)[1] - wilson_interval(50, 100)[0] < wilson_interval(5, 10)[1] - 0.2366
    assert wilson_interval(5, 10, confidence=0.5)[0] > wilson_interval(5, 10)[0]
    for successes, n in ((0, 0), (11, 10), (-1, 10)):
        with pytest.raises(ChatcloneError, match=f"not {successes} out of {n}"):
            wilson_interval(successes, n)
    with pytest.raises(ChatcloneError, match="confidence must be between 0 and 1"):
        wilson_interval(1, 2, confidence=1.0)
    assert format_rate(rate(6, 9)) == "66.7% [35-88%] n=9"


def test_separation_on_the_issues_numbers_and_on_a_separable_case():
    # issue 14: floor 66.7 % (6 of 9) as high as the ceiling 72.7 % (8 of 11), 4 replies scored
    check = separation(rate(8, 11), rate(6, 9), contexts=4, min_contexts=20, min_gap=0.2)
    assert not check["separable"] and check["gap"] == pytest.approx(8 / 11 - 6 / 9)
    reasons = " ".join(check["reasons"])
    assert "only 4 replies were scored (at least 20" in reasons
    assert "does not lie above the floor's (ceiling 72.7% [43-90%] n=11, floor 66.7% [35-88%] n=9)" in reasons
    assert "only 6.1% above the floor (at least 20%" in reasons
    clear = separation(rate(28, 30), rate(2, 30), contexts=48, min_contexts=20, min_gap=0.2)
    assert clear["separable"] and clear["reasons"] == []
    assert normalised(rate(15, 30), rate(28, 30), rate(2, 30)) == pytest.approx((0.5 - 2 / 30) / (26 / 30))
    # each condition alone is enough
    assert separation(rate(28, 30), rate(2, 30), 19, 20, 0.2)["reasons"] == [
        "only 19 replies were scored (at least 20 are needed)"
    ]
    overlap = separation(rate(20, 20), rate(23, 30), 48, 20, 0.2)  # gap 0.23, but [84-100%] vs [59-88%]
    assert len(overlap["reasons"]) == 1 and "does not lie above" in overlap["reasons"][0]
    narrow = separation(rate(300, 300), rate(255, 300), 48, 20, 0.2)  # intervals apart, gap only 0.15
    assert narrow["reasons"] == ["the ceiling is only 15.0% above the floor (at least 20% is needed)"]
    assert normalised(rate(1, 2), rate(1, 4), rate(1, 4)) is None
    assert intervals_overlap(rate(5, 10), rate(6, 10)) and not intervals_overlap(rate(0, 30), rate(30, 30))


def test_no_caveat_when_the_classifier_separates_hand_made_styles():
    rng = random.Random(0)
    train = [(_styled(rng, k % 3 == 0), k % 3 == 0) for k in range(120)]
    mine, others = [_styled(rng, True) for _ in range(30)], [_styled(rng, False) for _ in range(30)]
    metric = load_metric("style_attribution").fit([t for t, _ in train], [y for _, y in train])
    replies = mine[:20] + others[:5]
    result = metric.compute(predictions=replies, target_replies=mine, other_texts=others)
    assert result["target"] == {**rate(20, 25), "mean_prob": pytest.approx(result["mean_target_prob"])}
    assert result["ceiling"]["n"] == 30 and result["ceiling"]["ci95"] == list(
        wilson_interval(result["ceiling"]["successes"], 30)
    )
    check = separation(result["ceiling"], result["floor"], len(replies), min_contexts=20, min_gap=0.2)
    assert check["separable"], check["reasons"]
    expected = (0.8 - result["floor_rate"]) / (result["ceiling_rate"] - result["floor_rate"])
    assert normalised(result["target"], result["ceiling"], result["floor"]) == pytest.approx(expected)


@pytest.fixture(scope="module")
def honest_run(trained, tmp_path_factory):  # noqa: F811
    """evaluate_clone on the bundled tiny sample, its console a terminal (so the progress bar draws) and the
    chatclone.evaluation log captured."""
    out = tmp_path_factory.mktemp("honest") / "run"
    cfg = compose(
        "evaluate_clone",
        [f"outputs_root={trained}", "eval.max_contexts=4", "sampling.max_new_tokens=4", "wandb.mode=disabled"],
    )
    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("chatclone.evaluation")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        metrics = evaluate_clone(cfg, out, console=console)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    return out, metrics, console.file.getvalue(), [r.getMessage() for r in records]


def test_every_rate_has_its_interval_and_n_in_metrics_json(honest_run):
    out, metrics, _, _ = honest_run
    saved = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    parts = [saved["ceiling"], saved["floor"], *(m["attribution"] for m in saved["models"].values())]
    for part in parts:
        assert part["ci95"] == pytest.approx(list(wilson_interval(part["successes"], part["n"])))
        assert part["rate"] == pytest.approx(part["successes"] / part["n"])
    assert saved["models"]["fine_tuned"]["attribution"]["n"] == 4
    assert (
        saved["ceiling"]["n"] == saved["data"]["ceiling_texts"] and saved["floor"]["n"] == saved["data"]["floor_texts"]
    )


def test_the_tiny_sample_cannot_tell_the_target_apart(honest_run):
    out, metrics, printed, _ = honest_run
    check = metrics["attribution_check"]
    assert not check["separable"]
    assert "only 4 replies were scored (at least 20 are needed)" in check["reasons"]
    # not only too few replies: on the bundled DM the classifier's own ceiling and floor do not separate either
    assert any("does not lie above the floor's" in r for r in check["reasons"]), check
    h = metrics["headline"]
    assert h["attribution_separable"] is False and h["attribution_normalised_fine_tuned"] is None
    assert all(m["attribution"]["normalised"] is None for m in metrics["models"].values())
    target = metrics["target"]
    plain = " ".join(printed.split())  # the table wraps long cells
    assert f"style attribution cannot tell {target} apart on this data" in plain
    assert "normalised" not in printed and "not evidence" in plain
    assert format_rate(metrics["models"]["fine_tuned"]["attribution"]) in plain
    report = (out / "report.md").read_text(encoding="utf-8")
    assert f"**{caveat(target, check)}**" in report and "cannot tell the target apart here" in report
    assert format_rate(metrics["ceiling"]) in report and format_rate(metrics["floor"]) in report
    assert "normalised attribution:" not in report


def test_progress_bar_on_the_console_and_plain_lines_in_the_log(honest_run):
    _, _, printed, logged = honest_run
    assert "fine-tuned: generating" in printed and "4/4" in printed
    for label in ("base", "fine-tuned"):
        assert f"{label}: generating 4 replies" in logged
        lines = [m for m in logged if m.startswith(f"{label}: ") and " replies, " in m]
        assert [m.split(" replies")[0] for m in lines] == [f"{label}: {i}/4" for i in (1, 2, 3, 4)]
        assert "s left" in lines[0] and lines[-1].endswith("done")


def test_reply_progress_without_a_console_draws_nothing_and_logs_a_tenth_at_a_time(caplog):
    caplog.set_level(logging.INFO, logger="chatclone.evaluation")
    with ReplyProgress("fine-tuned", 40, None) as progress:
        for done in range(1, 41):
            progress(done)
    lines = [r.getMessage() for r in caplog.records if " replies, " in r.getMessage()]
    assert [line.split(" replies")[0] for line in lines] == [f"fine-tuned: {4 * i}/40" for i in range(1, 11)]
    assert ReplyProgress("base", 48, None).line(12, 30.0) == "base: 12/48 replies, 30 s elapsed, about 90 s left"


def test_separable_report_gives_normalised_scores_and_no_caveat(honest_run):
    """The report and table of the same run with its attribution parts replaced by the metric's output on the
    hand-made separable styles: no caveat, the normalised score, and the base-vs-clone overlap said plainly."""
    _, metrics, _, _ = honest_run
    rng = random.Random(0)
    train = [(_styled(rng, k % 3 == 0), k % 3 == 0) for k in range(120)]
    mine, others = [_styled(rng, True) for _ in range(30)], [_styled(rng, False) for _ in range(30)]
    metric = load_metric("style_attribution").fit([t for t, _ in train], [y for _, y in train])
    ceiling, floor = metric.rates(mine), metric.rates(others)
    check = separation(ceiling, floor, 25, 20, 0.2)
    separable = {**metrics, "ceiling": ceiling, "floor": floor, "attribution_check": check, "models": {}}
    for name, replies in (("base", mine[:5] + others[:20]), ("fine_tuned", mine[:12] + others[:13])):
        r = metric.rates(replies)
        separable["models"][name] = {
            **metrics["models"][name],
            "attribution": {
                **r,
                "target_rate": r["rate"],
                "mean_target_prob": r["mean_prob"],
                "normalised": normalised(r, ceiling, floor),
            },
        }
    verdict = " ".join(attribution_verdict(separable, ["base", "fine_tuned"]))
    clone = separable["models"]["fine_tuned"]["attribution"]
    assert "cannot tell" not in verdict and f"fine-tuned {format_rate(clone)} (normalised" in verdict
    assert "intervals overlap: at this n their difference is not clearly more than chance" in verdict
    console = Console(file=io.StringIO(), width=200)
    print_summary(console, separable, Path("run"))
    table = console.file.getvalue()
    assert "normalised attribution" in table and "cannot tell" not in table
    assert f"{separable['models']['fine_tuned']['attribution']['normalised']:.2f}" in table
    ax = attribution_figure(separable).axes[0]
    assert "cannot tell" not in ax.get_title()


def test_attribution_plot_has_n_and_interval_error_bars(honest_run):
    _, metrics, _, _ = honest_run
    fig = attribution_figure(metrics)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    parts = [
        metrics["floor"],
        metrics["models"]["base"]["attribution"],
        metrics["models"]["fine_tuned"]["attribution"],
        metrics["ceiling"],
    ]
    assert [label.rsplit("n=", 1)[1] for label in labels] == [str(p["n"]) for p in parts]
    from matplotlib.container import BarContainer

    (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [b.get_height() for b in bars] == pytest.approx([p["rate"] for p in parts])
    segments = bars.errorbar.lines[2][0].get_segments()
    assert [tuple(s[:, 1]) for s in segments] == [pytest.approx(tuple(p["ci95"])) for p in parts]
    assert "cannot tell" in ax.get_title()
    assert "target tokens" in perplexity_figure(metrics).axes[0].get_title()


def test_lengths_plot_counts_whole_replies_with_n_in_the_legend():
    ax = lengths_figure([("tamsin (real)", [3, 10, 12]), ("base", [0, 40, 41]), ("fine-tuned", [5, 6, 7])]).axes[0]
    ax.figure.canvas.draw()
    assert all(float(t).is_integer() for t in ax.get_yticks()) and all(float(t).is_integer() for t in ax.get_xticks())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["tamsin (real), n=3", "base, n=3", "fine-tuned, n=3"]


def test_two_point_loss_curve_has_markers_and_whole_steps(trained, tmp_path):  # noqa: F811
    history = json.loads((trained / "train" / "run" / "metrics.json").read_text())["log_history"]
    fig = loss_figure(history, "tiny lora")
    ax = fig.axes[0]
    fig.canvas.draw()
    (line,) = ax.get_lines()
    assert len(line.get_xdata()) == 2 and line.get_marker() == "o"
    assert all(float(t).is_integer() for t in ax.get_xticks())
    assert "2 points" in ax.get_legend().get_texts()[0].get_text()
    assert plot_loss_curves(history, tmp_path / "loss_curve.png", "t") == tmp_path / "loss_curve.png"
    assert plot_loss_curves([{"step": 1, "learning_rate": 0.1}], tmp_path / "none.png", "t") is None


def test_loss_curve_marks_the_best_checkpoint_of_a_regularized_run(trained, tiny_llama, tmp_path):  # noqa: F811
    from chatclone.stages.train import train
    from tests.test_train import tiny_overrides

    overrides = tiny_overrides(
        trained,
        tiny_llama,
        "preset=regularized",
        "trainer.epochs=4",
        "trainer.learning_rate=3e-2",
        "trainer.early_stopping_patience=3",
    )
    metrics = train(
        compose("train", [o for o in overrides if "save_strategy" not in o]), tmp_path / "run", console=quiet()
    )
    history = metrics["log_history"]
    step = best_step(history)
    assert metrics["best_checkpoint"].endswith(f"checkpoint-{step}")
    assert len(training_entries(history)) == len(history) - 1  # train.py's evaluate() after training
    ax = loss_figure(history, "regularized", step).axes[0]
    star = [line for line in ax.get_lines() if line.get_marker() == "*"]
    evals = [(e["step"], e["eval_loss"]) for e in training_entries(history) if "eval_loss" in e]
    assert len(star) == 1 and list(star[0].get_xdata()) == [step]
    assert list(star[0].get_ydata()) == [dict(evals)[step]] and f"best/ (step {step}" in star[0].get_label()
    validation = [line for line in ax.get_lines() if line.get_label().startswith("validation loss")]
    assert list(validation[0].get_xdata()) == [s for s, _ in evals]  # the after-training evaluation is not a point
    assert (tmp_path / "run" / "loss_curve.png").is_file()
    unmarked = loss_figure(history, "no best", None).axes[0]
    assert not [line for line in unmarked.get_lines() if line.get_marker() == "*"]


def test_new_eval_settings_are_checked():
    cfg = compose("evaluate_clone", ["progress=false", "eval.min_contexts=5", "eval.min_attribution_gap=0.1"])
    assert cfg.progress is False and cfg.eval.min_contexts == 5 and cfg.eval.min_attribution_gap == 0.1
    assert compose("evaluate_clone", []).progress is True and compose("evaluate_clone", []).eval.min_contexts == 20
    with pytest.raises(ChatcloneError, match=r"eval.min_contexts=0: must be at least 1"):
        compose("evaluate_clone", ["eval.min_contexts=0"]).check()
    with pytest.raises(ChatcloneError, match=r"eval.min_attribution_gap=1.5: must be in \[0, 1\)"):
        compose("evaluate_clone", ["eval.min_attribution_gap=1.5"]).check()
    with pytest.raises(Exception):
        compose("evaluate_clone", ["progress=maybe"])
