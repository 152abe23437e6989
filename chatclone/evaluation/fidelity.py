"""Clone fidelity: score the base model and the fine-tuned clone on the held-out validation split, write the report.

    data = load_fidelity_data(spec.data_dir, cfg.eval.max_contexts)   # checked before any model loads
    metrics, scores = score_fidelity(spec, cfg, cfg.eval, data, console, progress=Console(stderr=True))

Each model is loaded, run through the perplexity, context-use and generation passes, and freed before the next one
loads (one model in memory at a time). The style classifier is fitted once, on the training split's messages only;
its ceiling, floor and ROC AUC are measured before any model loads, and decide whether the attribution rates can be
read. Each model's replies are then scored for detectability (a classifier cross-validated on the real replies vs
the model's), assistant-isms and surface statistics; the real replies get the assistant-isms too.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from chatclone.config.fidelity import FidelityConfig
from chatclone.config.generation import CloneStageConfig, SamplingConfig
from chatclone.evaluation.context import swapped_contexts
from chatclone.evaluation.data import FidelityData
from chatclone.evaluation.passes import context_pass, generation_pass, perplexity_pass
from chatclone.evaluation.progress import ReplyProgress
from chatclone.generation.clone import CloneSpec, load_clone
from chatclone.generation.generate import Reply
from chatclone.generation.records import summarize
from chatclone.metrics import load_metric
from chatclone.metrics.detectability.detectability import MIN_PAIRS
from chatclone.metrics.rates import format_auc, format_rate, normalised, separation

BASE, FINE_TUNED = "base", "fine_tuned"
LABELS = {BASE: "base", FINE_TUNED: "fine-tuned"}


@dataclass
class ModelScore:
    """Everything measured for one model."""

    name: str
    perplexity: dict
    replies: list[Reply]
    attribution: dict
    surface: dict
    detectability: dict | None = None  # None: too few contexts to cross-validate
    assistant: dict | None = None  # None: eval.assistant_phrases is empty
    context: dict | None = None  # None: no two contexts with a history to swap


def fit_style_classifier(data: FidelityData) -> Any:
    """The style_attribution metric, fitted on the training split's messages (target vs everybody else)."""
    return load_metric("style_attribution").fit(data.train_texts, data.train_is_target)


def score_fidelity(
    spec: CloneSpec,
    cfg: CloneStageConfig,
    settings: FidelityConfig,
    data: FidelityData,
    console: Console,
    progress: Console | None = None,
) -> tuple[dict, dict[str, ModelScore]]:
    """(metrics, per-model scores) for the base model (if settings.base) and the clone `spec` names. `progress`:
    the console the generation bar draws on (None: no bar; the log lines are written either way).

    The style classifier's ceiling and floor are measured first: when they cannot tell the target apart (see
    `chatclone.metrics.rates.separation`), that is said before minutes of generation, and the models' rates are
    then never reported as a result."""
    style = fit_style_classifier(data)
    ceiling, floor = style.rates(data.ceiling), style.rates(data.floor)
    auc = style.separation_auc(data.ceiling, data.floor)
    check = separation(
        ceiling,
        floor,
        len(data.contexts),
        settings.min_contexts,
        settings.min_attribution_gap,
        auc=auc,
        min_auc=settings.min_attribution_auc,
    )
    console.print(
        f"style classifier: ROC AUC {format_auc(auc)} on real held-out messages ({spec.target}'s vs "
        "everyone else's; 0.5 = chance)",
        highlight=False,
    )
    if not check["separable"]:
        console.print(caveat(spec.target, check), highlight=False)
    if len(data.contexts) < MIN_PAIRS:
        console.print(detectability_note(len(data.contexts)), highlight=False)
    pairs = swapped_contexts(data.contexts)
    variants = [(BASE, dataclasses.replace(spec, kind="base", weights=None))] if settings.base else []
    scores = {}
    for name, variant in variants + [(FINE_TUNED, spec)]:
        scores[name] = _score_model(name, variant, cfg, settings, data, (style, pairs), console, progress)
        console.print(attribution_line(name, spec.target, scores[name], ceiling, floor, check), highlight=False)
    real = assistant_isms([c.reply for c in data.contexts], settings)
    return assemble_metrics(spec, cfg, data, scores, (ceiling, floor, auc, real), check), scores


def detectability_note(contexts: int) -> str:
    """Why detectability is not measured (fewer than 2 contexts)."""
    return (
        f"detectability: not measured: cross-validating a classifier needs at least {MIN_PAIRS} contexts with "
        f"a real and a model reply, and only {contexts} were replied to (raise eval.max_contexts)"
    )


def detectability(texts: list[str], data: FidelityData, settings: FidelityConfig) -> dict | None:
    """The detectability metric of a model's replies against the real replies to the same contexts (None when
    there are too few contexts to cross-validate)."""
    if len(data.contexts) < MIN_PAIRS:
        return None
    return load_metric("detectability").compute(
        predictions=texts, references=[c.reply for c in data.contexts], folds=settings.detectability_folds
    )


def assistant_isms(texts: list[str], settings: FidelityConfig) -> dict | None:
    """The assistant_isms metric of `texts` with eval.assistant_phrases (None when the list is empty)."""
    if not settings.assistant_phrases:
        return None
    return load_metric("assistant_isms").compute(predictions=texts, phrases=list(settings.assistant_phrases))


def caveat(target: str, check: dict) -> str:
    """The plain sentence said (console, report.md) when the attribution cannot tell the target apart."""
    return (
        f"style attribution cannot tell {target} apart on this data: {'; '.join(check['reasons'])}. Its "
        "rates for the models are not evidence about the clone either way."
    )


def attribution_line(name: str, target: str, score: ModelScore, ceiling: dict, floor: dict, check: dict) -> str:
    r = score.attribution["target"]
    line = f"{LABELS[name]}: {r['successes']} of {r['n']} replies attributed to {target} ({format_rate(r)})"
    if not check["separable"]:
        return line + ": not evidence (see above)"
    return line + f", normalised {normalised(r, ceiling, floor):.2f} (0 = floor, 1 = ceiling)"


def _score_model(
    name: str,
    spec: CloneSpec,
    cfg: CloneStageConfig,
    settings: FidelityConfig,
    data: FidelityData,
    scorers: tuple[Any, list],
    console: Console,
    progress: Console | None,
) -> ModelScore:
    """`scorers`: the fitted style metric and the swapped-context pairs."""
    style, pairs = scorers
    started = time.perf_counter()
    clone = load_clone(spec, cfg)
    perplexity = perplexity_pass(clone, data.examples, settings.batch_size)
    context = context_pass(clone, pairs, settings.batch_size)
    console.print(
        f"{LABELS[name]}: perplexity {perplexity['perplexity']:.3f} over {perplexity['tokens']} target "
        f"tokens ({perplexity['seconds']:.0f} s){context_line(context)}; generating {len(data.contexts)} "
        "replies",
        highlight=False,
    )
    with ReplyProgress(LABELS[name], len(data.contexts), progress) as bar:
        replies = generation_pass(clone, data.contexts, cfg.sampling, cfg.seed, settings.max_prompt_tokens, bar)
    del clone
    gc.collect()
    texts = [r.text for r in replies]
    attribution = style.compute(predictions=texts)
    surface = load_metric("surface_stats").compute(predictions=texts, target_replies=[c.reply for c in data.contexts])
    detected = detectability(texts, data, settings)
    found = f"; detectability {format_rate(detected['detected'])} (50 % = indistinguishable)" if detected else ""
    console.print(f"{LABELS[name]}: scored in {time.perf_counter() - started:.0f} s{found}", highlight=False)
    return ModelScore(
        name, perplexity, replies, attribution, surface, detected, assistant_isms(texts, settings), context
    )


def context_line(context: dict | None) -> str:
    """', real replies: perplexity 40.1 after their own context, 52.3 after another's (own context wins 70.0% [..])'"""
    if context is None:
        return "; context use not measured (fewer than 2 contexts with a history)"
    return (
        f"; real replies: perplexity {context['perplexity_real']:.2f} after their own context, "
        f"{context['perplexity_swapped']:.2f} after another's (own context wins "
        f"{format_rate(context['own_context_wins'])})"
    )


def assemble_metrics(
    spec: CloneSpec,
    cfg: CloneStageConfig,
    data: FidelityData,
    scores: dict[str, ModelScore],
    references: tuple,
    check: dict,
) -> dict:
    """metrics.json: per model, the ceiling and floor (each rate with n and its 95 % interval), whether they tell
    the target apart, the reference replies' surface and assistant-isms, and flat headline numbers. `references`:
    (ceiling, floor, the style classifier's ROC AUC, the real replies' assistant_isms result)."""
    ceiling, floor, auc, real_assistant = references
    any_score = next(iter(scores.values()))
    models = {
        name: {
            "perplexity": s.perplexity,
            "attribution": _attribution(s.attribution["target"], ceiling, floor, check),
            "surface": {
                **s.surface["generated"],
                **{k: v for k, v in s.surface.items() if k.endswith(("_wasserstein", "_ks"))},
            },
            "generation": summarize(s.replies),
            "detectability": _detectability(s.detectability),
            "assistant_isms": _assistant(s.assistant),
            "context_use": s.context,
        }
        for name, s in scores.items()
    }
    metrics = {
        "target": spec.target,
        "clone": spec.describe(),
        "sampling": sampling_values(cfg.sampling, cfg.seed),
        "data": data.describe(),
        "models": models,
        "ceiling": {**ceiling, "texts": len(data.ceiling)},
        "floor": {**floor, "texts": len(data.floor)},
        "attribution_check": check,
        "attribution_auc": auc,
        "reference_surface": any_score.surface["reference"],
        "reference_assistant_isms": _assistant(real_assistant),
        "detectability_note": (None if len(data.contexts) >= MIN_PAIRS else detectability_note(len(data.contexts))),
    }
    metrics["headline"] = headline(metrics)
    return metrics


def _detectability(result: dict | None) -> dict | None:
    """A model's detectability in metrics.json: the rate of right out-of-fold predictions (rate, successes, n, ci95)
    with the accuracy, the ROC AUC and the folds."""
    if result is None:
        return None
    return {
        **result["detected"],
        **{k: result[k] for k in ("accuracy", "auc", "folds", "folds_asked", "pairs", "fold_accuracies")},
    }


def _assistant(result: dict | None) -> dict | None:
    """Assistant-isms in metrics.json: the rate of replies with a phrase, each phrase's count and a few examples."""
    if result is None:
        return None
    return {**result["assistant"], "phrase_counts": result["phrase_counts"], "examples": result["examples"]}


def _attribution(r: dict, ceiling: dict, floor: dict, check: dict) -> dict:
    """A model's attribution in metrics.json: the rate with successes, n and ci95 (and the older names target_rate,
    mean_target_prob, texts), normalised between floor and ceiling only when they tell the target apart."""
    return {
        **r,
        "target_rate": r["rate"],
        "mean_target_prob": r["mean_prob"],
        "texts": r["n"],
        "normalised": normalised(r, ceiling, floor) if check["separable"] else None,
    }


def sampling_values(sampling: SamplingConfig, seed: int | None) -> dict:
    return {**dataclasses.asdict(sampling), "seed": seed}


def headline(metrics: dict) -> dict:
    """The numbers a run is judged by, flat (manifest summary, W&B summary, sweep table)."""
    out: dict[str, Any] = {}
    for name, m in metrics["models"].items():
        out[f"perplexity_{name}"] = m["perplexity"]["perplexity"]
        out[f"attribution_{name}"] = m["attribution"]["target_rate"]
        out[f"attribution_normalised_{name}"] = m["attribution"]["normalised"]
        out[f"target_prob_{name}"] = m["attribution"]["mean_target_prob"]
        out[f"mean_chars_{name}"] = m["surface"]["mean_chars"]
        out[f"length_ks_{name}"] = m["surface"]["length_ks"]
        out[f"empty_replies_{name}"] = m["generation"]["empty_replies"]
        out.update(_new_headline(name, m))
    out.update(
        attribution_ceiling=metrics["ceiling"]["rate"],
        attribution_floor=metrics["floor"]["rate"],
        attribution_separable=metrics["attribution_check"]["separable"],
        mean_chars_reference=metrics["reference_surface"]["mean_chars"],
        contexts=metrics["data"]["contexts"],
    )
    auc, real = metrics.get("attribution_auc"), metrics.get("reference_assistant_isms")
    out.update(
        attribution_auc=auc["auc"] if auc else None,
        assistant_isms_reference=real["rate"] if real else None,
        mean_lines_reference=metrics["reference_surface"].get("mean_lines"),
    )
    return out


def _new_headline(name: str, m: dict) -> dict:
    """One model's detectability, assistant-isms, context use and turn shape, flat (None where not measured)."""
    detected, assistant, context = m.get("detectability"), m.get("assistant_isms"), m.get("context_use")
    return {
        f"detectability_{name}": detected["rate"] if detected else None,
        f"assistant_isms_{name}": assistant["rate"] if assistant else None,
        f"context_ratio_{name}": context["perplexity_ratio"] if context else None,
        f"context_wins_{name}": context["own_context_wins"]["rate"] if context else None,
        f"mean_lines_{name}": m["surface"].get("mean_lines"),
        f"lines_ks_{name}": m["surface"].get("lines_ks"),
    }
