"""What a fidelity evaluation writes: metrics.json, samples.jsonl, report.md (a readable table with the numbers'
meaning), perplexity.png, attribution.png, lengths.png, and a W&B summary when W&B is on (reply text only with
wandb.log_samples=true)."""

from __future__ import annotations

import json
from pathlib import Path

from chatclone import runs, wandb_runs
from chatclone.config.wandb_config import WandbConfig
from chatclone.evaluation.data import FidelityData
from chatclone.evaluation.fidelity import BASE, FINE_TUNED, LABELS, ModelScore, caveat
from chatclone.metrics.rates import format_auc, format_rate, intervals_overlap

REPORT, METRICS, SAMPLES = "report.md", "metrics.json", "samples.jsonl"
PLOTS = ("perplexity.png", "attribution.png", "lengths.png")
CONTEXT_SHOWN = 3  # context messages kept per sample in samples.jsonl
SURFACE_ROWS = (
    ("mean_chars", "mean reply length (characters)", "{:.1f}"),
    ("lowercase_rate", "replies all lower case", "{:.0%}"),
    ("emoji_rate", "replies with an emoji", "{:.0%}"),
    ("exclamation_rate", "replies with '!'", "{:.0%}"),
    ("question_rate", "replies with '?'", "{:.0%}"),
    ("punctuation_rate", "punctuation per character", "{:.3f}"),
    ("distinct_2", "distinct-2", "{:.2f}"),
    ("duplicate_rate", "duplicate replies", "{:.0%}"),
    ("mean_lines", "lines per reply (mean; a line is about one message of a burst)", "{:.2f}"),
    ("multi_line_rate", "replies of more than one line", "{:.0%}"),
)


def write_outputs(
    out_dir: Path, metrics: dict, scores: dict[str, ModelScore], data: FidelityData, samples_in_report: int
) -> list[str]:
    """Every file of the evaluation into `out_dir` (new files only); their names."""
    runs.write_json(out_dir, METRICS, metrics)
    rows = sample_rows(scores, data)
    with open(runs.new_file(out_dir, SAMPLES), "x", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    plots = write_plots(out_dir, metrics, scores, data)
    text = report_markdown(metrics, rows[:0] if samples_in_report == 0 else _spread_rows(rows, samples_in_report))
    runs.new_file(out_dir, REPORT).write_text(text, encoding="utf-8")
    return [METRICS, SAMPLES, *plots, REPORT]


def sample_rows(scores: dict[str, ModelScore], data: FidelityData) -> list[dict]:
    rows = []
    for i, context in enumerate(data.contexts):
        row = {
            "turn": context.turn,
            "record": context.record,
            "context": [f"{m['name']}: {m['content']}" for m in context.history[-CONTEXT_SHOWN:]],
            "real": context.reply,
        }
        for name, score in scores.items():
            reply = score.replies[i]
            row[name] = reply.text
            row[f"{name}_stopped"] = reply.stopped
        rows.append(row)
    return rows


def _spread_rows(rows: list[dict], count: int) -> list[dict]:
    from chatclone.evaluation.data import spread

    return spread(rows, count)


def _cell(value: float | None, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def report_markdown(metrics: dict, samples: list[dict]) -> str:
    m, names = metrics["models"], [n for n in (BASE, FINE_TUNED) if n in metrics["models"]]
    clone, s, d = metrics["clone"], metrics["sampling"], metrics["data"]
    head = ["measure", *(LABELS[n] for n in names), "target's real replies (ceiling)", "other speakers (floor)"]
    rows = [
        [
            "held-out perplexity of the target's replies (lower is better)",
            *(f"{m[n]['perplexity']['perplexity']:.2f}" for n in names),
            "—",
            "—",
        ],
        *_detectability_rows(metrics, names),
        *_attribution_rows(metrics, names),
        [
            "reply length vs the real replies: KS statistic (lower is closer)",
            *(f"{m[n]['surface']['length_ks']:.2f}" for n in names),
            "0",
            "—",
        ],
        *_shape_rows(metrics, names),
    ]
    rows += [
        [label, *(_cell(m[n]["surface"][key], fmt) for n in names), _cell(metrics["reference_surface"][key], fmt), "—"]
        for key, label, fmt in SURFACE_ROWS
    ]
    rows.append(["empty replies", *(str(m[n]["generation"]["empty_replies"]) for n in names), "—", "—"])
    lines = [
        f"# Clone fidelity: {metrics['target']}",
        "",
        f"- clone: `{clone['base_model']}` + {clone['kind']} `{clone['weights']}` (train run `{clone['run']}`)",
        f"- held-out data: {d['validation_sequences']} validation sequences with {d['target_tokens']} target "
        "tokens "
        f"(perplexity); {d['contexts']} of the {d['target_turns']} validation target turns replied to "
        "(attribution, surface)",
        f"- sampling `{s['name']}`: temperature {s['temperature']}, top_p {s['top_p']}, top_k {s['top_k']}, "
        f"repetition_penalty {s['repetition_penalty']}, max_new_tokens {s['max_new_tokens']}, seed {s['seed']}",
        "",
        *detectability_verdict(metrics, names),
        "",
        *attribution_verdict(metrics, names),
        "",
        "| " + " | ".join(head) + " |",
        "|---" + "|---:" * (len(head) - 1) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines + MEANING + _samples_markdown(samples, names)) + "\n"


def _or_dash(value: dict | None, show) -> str:
    return "—" if value is None else show(value)


def _detectability_rows(metrics: dict, names: list[str]) -> list[list[str]]:
    """Detectability and context use, per model (the target's own replies are the reference, not a row value)."""
    m = metrics["models"]

    def context(n: str, show) -> str:
        return _or_dash(m[n].get("context_use"), show)

    return [
        [
            "detectability: a classifier's cross-validated accuracy telling the model's replies from the real ones "
            "(50% = indistinguishable, lower is better)",
            *(_or_dash(m[n].get("detectability"), format_rate) for n in names),
            "50% (by definition)",
            "—",
        ],
        [
            "context use: perplexity of the real replies after their own context / after another conversation's",
            *(context(n, lambda c: f"{c['perplexity_real']:.2f} / {c['perplexity_swapped']:.2f}") for n in names),
            "—",
            "—",
        ],
        [
            "context use: real replies more likely after their own context (higher = reads the conversation)",
            *(context(n, lambda c: format_rate(c["own_context_wins"])) for n in names),
            "—",
            "—",
        ],
    ]


def _shape_rows(metrics: dict, names: list[str]) -> list[list[str]]:
    """Lines per reply against the real replies (KS), and the assistant-isms of every set of replies."""
    m, real = metrics["models"], metrics.get("reference_assistant_isms")
    rows = [
        [
            "lines per reply vs the real replies: KS statistic (lower is closer)",
            *(_cell(m[n]["surface"].get("lines_ks"), "{:.2f}") for n in names),
            "0",
            "—",
        ]
    ]
    if real is not None:
        rows.append(
            [
                "assistant-isms: replies with AI-assistant phrasing (`eval.assistant_phrases`)",
                *(_or_dash(m[n].get("assistant_isms"), format_rate) for n in names),
                format_rate(real),
                "—",
            ]
        )
    return rows


def detectability_verdict(metrics: dict, names: list[str]) -> list[str]:
    """Detectability in words: each model's accuracy with its interval, whether that interval reaches 50 %
    (indistinguishable at this n) and whether base and clone differ by more than chance; or why it is missing."""
    m = metrics["models"]
    measured = [n for n in names if m[n].get("detectability")]
    if not measured:
        return [f"Detectability: {metrics.get('detectability_note') or 'not measured.'}"]
    parts = []
    for n in measured:
        d = m[n]["detectability"]
        plain = (
            "indistinguishable from the real replies at this n"
            if d["ci95"][0] <= 0.5 <= d["ci95"][1]
            else "told apart from the real replies"
            if d["ci95"][0] > 0.5
            else "below chance (noise)"
        )
        parts.append(f"{LABELS[n]} {format_rate(d)}, {plain}")
    folds = m[measured[0]]["detectability"]["folds"]
    line = (
        f"Detectability (the automatic Turing test: {folds}-fold cross-validated accuracy of a classifier telling "
        f"the model's replies from {metrics['target']}'s real replies to the same contexts; 50 % = "
        f"indistinguishable): {'; '.join(parts)}."
    )
    if len(measured) == 2 and intervals_overlap(m[BASE]["detectability"], m[FINE_TUNED]["detectability"]):
        line += " The two intervals overlap: at this n the difference is not clearly more than chance."
    return [line]


def _attribution_rows(metrics: dict, names: list[str]) -> list[list[str]]:
    """The table's attribution rows: rates as 'rate [95 % interval] n', the normalised score when it means
    something."""
    m, check = metrics["models"], metrics["attribution_check"]
    label = (
        "replies attributed to the target (higher is better, up to the ceiling)"
        if check["separable"]
        else "replies attributed to the target (**cannot tell the target apart here**: see above)"
    )
    rows = [
        [
            label,
            *(format_rate(m[n]["attribution"]) for n in names),
            format_rate(metrics["ceiling"]),
            format_rate(metrics["floor"]),
        ]
    ]
    if check["separable"]:
        rows.append(
            [
                "normalised attribution: (rate - floor) / (ceiling - floor)",
                *(f"{m[n]['attribution']['normalised']:.2f}" for n in names),
                "1",
                "0",
            ]
        )
    rows.append(
        [
            "mean P(target) from the style classifier",
            *(f"{m[n]['attribution']['mean_target_prob']:.3f}" for n in names),
            f"{metrics['ceiling']['mean_prob']:.3f}",
            f"{metrics['floor']['mean_prob']:.3f}",
        ]
    )
    if metrics.get("attribution_auc"):
        rows.append(
            [
                "style classifier's ROC AUC, target's real messages vs others' (its reliability; 0.5 = chance)",
                *("—" for _ in names),
                format_auc(metrics["attribution_auc"]),
                "(the same)",
            ]
        )
    return rows


def attribution_verdict(metrics: dict, names: list[str]) -> list[str]:
    """What the attribution says, in words, above the table: that it cannot tell (and why), or the rates with
    their intervals and whether base and fine-tuned differ by more than chance."""
    m, check, target = metrics["models"], metrics["attribution_check"], metrics["target"]
    if not check["separable"]:
        return [
            f"**{caveat(target, check)}** Score more contexts (`eval.max_contexts`, at least "
            f"`eval.min_contexts`) or a corpus where the target writes differently from the others."
        ]
    lines = [
        f"Style attribution: the classifier tells {target} apart (ceiling {format_rate(metrics['ceiling'])}, "
        f"floor {format_rate(metrics['floor'])}); "
        + ", ".join(
            f"{LABELS[n]} {format_rate(m[n]['attribution'])} (normalised {m[n]['attribution']['normalised']:.2f})"
            for n in names
        )
        + "."
    ]
    if len(names) == 2 and intervals_overlap(m[BASE]["attribution"], m[FINE_TUNED]["attribution"]):
        lines[0] += (
            " The base model's and the fine-tuned model's 95 % intervals overlap: at this n their "
            "difference is not clearly more than chance."
        )
    return lines


MEANING_NEW = [
    "- **Detectability** (the automatic Turing test, the headline next to perplexity): the target's real held-out "
    "replies and a model's replies to the same contexts are pooled, and a classifier (character and word n-gram "
    "TF-IDF + logistic regression) learns to tell them apart; its accuracy is cross-validated (`eval."
    "detectability_folds`, by context: a context's real and generated reply are held out together, so every text is "
    "judged by a classifier that never saw it or its pair). 50 % = the model's replies cannot be told from the real "
    "ones; 100 % = each one gives itself away. Unlike the style attribution it cannot be gamed by exaggerating what "
    "a classifier rewards: a clone more lower-case or shorter than the target is told apart by exactly that.",
    "- **Style classifier's ROC AUC**: how well the attribution classifier ranks the target's real held-out messages "
    "above everyone else's (0.5 = chance, 1 = perfectly), with its 95 % interval (Hanley & McNeil). Below "
    "`eval.min_attribution_auc`, or with an interval reaching 0.5, it is too weak to rank models, and the "
    "attribution rates are reported as not evidence.",
    "- **Context use**: the perplexity of the target's real replies after their own conversation and after another "
    "conversation's (each reply paired with a context from elsewhere in the validation split, rendered as in "
    "training). A model that answers what was said finds the real reply more likely after its own context (the "
    "first number well below the second, most replies more likely after their own context); a model that writes "
    "generic lines that fit any conversation finds both about equally likely. A tie (no difference at all) is "
    "not a win, so a model that ignores the context entirely scores 0 %, and noise about 50 %.",
    "- **Lines per reply**: a turn is the target's consecutive messages joined by newlines, so lines count the "
    "messages of a burst; the KS statistic compares their distribution with the real replies'.",
    '- **Assistant-isms**: the share of replies with AI-assistant phrasing (`eval.assistant_phrases`: "as an AI", '
    '"feel free to", "Certainly!", ...; whole words, any case), for each model and the target\'s real replies.',
]

MEANING = [
    "",
    "## What the numbers mean",
    "",
    "- **Held-out perplexity** (the headline): exp of the mean negative log-likelihood per token of the "
    "target's "
    "real replies in the validation split (never trained on), each given its real conversation as context and "
    "rendered exactly as in training. Lower means the model finds what the target really wrote less "
    "surprising. Base and fine-tuned share the tokenizer, so the two compare directly.",
    "- **Attributed to the target**: a character n-gram style classifier, fitted on the training split's "
    "messages only (the target's against everybody else's), reads each generated reply; this is the share it "
    "takes for the target's (P > 0.5). Judge a clone against the **ceiling**, the rate of the target's own "
    "held-out replies (a perfect clone scores about that, not 100 %), and the **floor**, how often other "
    "speakers' held-out messages are taken for the target's. Every rate is given as `rate [95 % interval] "
    "n=count`: the interval is the Wilson score interval, the range the true rate lies in given only n "
    "texts. The **normalised** score places a model between the floor (0) and the ceiling (1). When the "
    "ceiling's interval does not lie above the floor's, when ceiling - floor is below "
    "`eval.min_attribution_gap` or when fewer than `eval.min_contexts` replies were scored, the classifier "
    "cannot tell the target apart on this data: the rates are shown, but they are not evidence.",
    "- **Surface statistics**: the generated replies against the target's real replies to the same contexts "
    "(length, casing, emoji, punctuation, questions, diversity). A clone should move each from the base "
    "model's value towards the real one.",
    *MEANING_NEW,
    "",
    "Plots: `perplexity.png`, `attribution.png`, `lengths.png`; every number is in `metrics.json` and "
    "every reply in `samples.jsonl`.",
]


def _samples_markdown(samples: list[dict], names: list[str]) -> list[str]:
    if not samples:
        return []
    lines = ["", "## Sample replies", ""]
    for row in samples:
        last = row["context"][-1] if row["context"] else "(the conversation starts with this reply)"
        lines += ["> " + last.replace("\n", " ⏎ "), ""]
        lines += [f"- real: {_quote(row['real'])}"] + [f"- {LABELS[n]}: {_quote(row[n])}" for n in names] + [""]
    return lines


def _quote(text: str) -> str:
    return "`" + (text.replace("`", "'").replace("\n", " ⏎ ") or "(empty)") + "`"


def write_plots(out_dir: Path, metrics: dict, scores: dict[str, ModelScore], data: FidelityData) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    lengths = [(f"{metrics['target']} (real)", [len(c.reply) for c in data.contexts])]
    lengths += [(LABELS[n], [len(r.text) for r in scores[n].replies]) for n in (BASE, FINE_TUNED) if n in scores]
    for name, fig in zip(PLOTS, (perplexity_figure(metrics), attribution_figure(metrics), lengths_figure(lengths))):
        _save(fig, out_dir / name)
    return list(PLOTS)


def perplexity_figure(metrics: dict):
    """Bars of the held-out perplexity per model, with the number of target tokens it is measured on."""
    import matplotlib.pyplot as plt

    names = [n for n in (BASE, FINE_TUNED) if n in metrics["models"]]
    values = [metrics["models"][n]["perplexity"]["perplexity"] for n in names]
    tokens = metrics["models"][names[0]]["perplexity"]["tokens"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    drawn = ax.bar([LABELS[n] for n in names], values, color="#4C72B0", edgecolor="black")
    ax.bar_label(drawn, labels=[f"{v:.2f}" for v in values])
    ax.set_title(
        f"held-out perplexity of {metrics['target']}'s replies (lower is better)\nover {tokens} target tokens",
        fontsize=10,
    )
    ax.set_ylabel("perplexity")
    ax.margins(y=0.15)
    return fig


def attribution_figure(metrics: dict):
    """Floor, each model and ceiling as bars with their 95 % intervals as error bars and n under each bar; the
    title says so when the classifier cannot tell the target apart."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    target, check = metrics["target"], metrics["attribution_check"]
    points = [("other speakers\n(floor)", metrics["floor"])]
    points += [(LABELS[n], metrics["models"][n]["attribution"]) for n in (BASE, FINE_TUNED) if n in metrics["models"]]
    points += [(f"{target}'s own\n(ceiling)", metrics["ceiling"])]
    rates = [r["rate"] for _, r in points]
    errors = [[r["rate"] - r["ci95"][0] for _, r in points], [r["ci95"][1] - r["rate"] for _, r in points]]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    x = range(len(points))
    ax.bar(
        x,
        rates,
        color=["#999999"] + ["#4C72B0"] * (len(points) - 2) + ["#55A868"],
        edgecolor="black",
        yerr=errors,
        capsize=6,
        error_kw={"elinewidth": 1.2},
    )
    for i, (_, r) in enumerate(points):
        ax.text(i, r["ci95"][1] + 0.02, f"{r['rate']:.0%}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(list(x), [f"{label}\nn={r['n']}" for label, r in points])
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("attributed to the target")
    title = f"replies attributed to {target} by the style classifier (error bars: 95 % interval)"
    if not check["separable"]:
        title += f"\ncannot tell {target} apart on this data: not evidence"
    ax.set_title(title, fontsize=10, color="black" if check["separable"] else "#B22222")
    return fig


def lengths_figure(series: list[tuple[str, list[int]]]):
    """Histograms of reply lengths, one per (label, lengths), with n in the legend and whole-number axes."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.5, 4))
    top = max(1, max((max(v) for _, v in series if v), default=1))
    for label, values in series:
        ax.hist(
            values, bins=min(20, top), range=(0, top), histtype="step", linewidth=1.8, label=f"{label}, n={len(values)}"
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="reply length (characters)", ylabel="replies", title=f"reply lengths, {len(series[0][1])} contexts")
    ax.legend()
    return fig


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(runs.new_file(path.parent, path.name), dpi=100)
    plt.close(fig)


def log_wandb(wandb_cfg: WandbConfig, run_dir: Path, metrics: dict, samples: list[dict], config: dict) -> list[str]:
    """Headline numbers and plots into the active W&B run (train.py's), or into a new one; samples only with
    log_samples. [] when W&B is disabled."""
    if not wandb_runs.enabled(wandb_cfg):
        return []
    import wandb

    own = wandb_runs.active_run() is None
    run = wandb_runs.start_run(wandb_cfg, run_dir, "evaluate_clone", config) if own else wandb_runs.active_run()
    prefix = "" if own else "fidelity/"
    run.summary.update({prefix + k: v for k, v in metrics["headline"].items() if isinstance(v, (int, float))})
    run.log({prefix + p.removesuffix(".png"): wandb.Image(str(run_dir / p)) for p in PLOTS if (run_dir / p).is_file()})
    if wandb_runs.text_allowed(wandb_cfg) and samples:
        columns = [c for c in samples[0] if c != "context"]
        run.log(
            {prefix + "samples": wandb.Table(columns=columns, data=[[str(r[c]) for c in columns] for r in samples])}
        )
    if own:
        run.finish()
    return ["wandb"] if own else []
