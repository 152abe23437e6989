"""Clone fidelity: score the base model and the fine-tuned clone on the held-out validation split, write the report.

    data = load_fidelity_data(spec.data_dir, cfg.eval.max_contexts)   # checked before any model loads
    metrics, scores = score_fidelity(spec, cfg, cfg.eval, data, console, progress=Console(stderr=True))

Each model is loaded, run through the perplexity and generation passes, and freed before the next one loads (one
model in memory at a time). The style classifier is fitted once, on the training split's messages only; its
ceiling and floor are measured before any model loads, and decide whether the attribution rates can be read.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from chatclone.config.generation import CloneStageConfig, SamplingConfig
from chatclone.evaluation.data import FidelityData
from chatclone.evaluation.passes import generation_pass, perplexity_pass
from chatclone.evaluation.progress import ReplyProgress
from chatclone.evaluation.settings import FidelityConfig
from chatclone.generation.clone import CloneSpec, load_clone
from chatclone.generation.generate import Reply
from chatclone.generation.records import summarize
from chatclone.metrics import load_metric
from chatclone.metrics.rates import format_rate, normalised, separation

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


def fit_style_classifier(data: FidelityData) -> Any:
    """The style_attribution metric, fitted on the training split's messages (target vs everybody else)."""
    return load_metric("style_attribution").fit(data.train_texts, data.train_is_target)


def score_fidelity(spec: CloneSpec, cfg: CloneStageConfig, settings: FidelityConfig, data: FidelityData,
                   console: Console, progress: Console | None = None) -> tuple[dict, dict[str, ModelScore]]:
    """(metrics, per-model scores) for the base model (if settings.base) and the clone `spec` names. `progress`:
    the console the generation bar draws on (None: no bar; the log lines are written either way).

    The style classifier's ceiling and floor are measured first: when they cannot tell the target apart (see
    `chatclone.metrics.rates.separation`), that is said before minutes of generation, and the models' rates are
    then never reported as a result."""
    style = fit_style_classifier(data)
    ceiling, floor = style.rates(data.ceiling), style.rates(data.floor)
    check = separation(ceiling, floor, len(data.contexts), settings.min_contexts, settings.min_attribution_gap)
    if not check["separable"]:
        console.print(caveat(spec.target, check), highlight=False)
    variants = ([(BASE, dataclasses.replace(spec, kind="base", weights=None))] if settings.base else [])
    scores = {}
    for name, variant in variants + [(FINE_TUNED, spec)]:
        scores[name] = _score_model(name, variant, cfg, settings, data, style, console, progress)
        console.print(attribution_line(name, spec.target, scores[name], ceiling, floor, check), highlight=False)
    return assemble_metrics(spec, cfg, data, scores, (ceiling, floor), check), scores


def caveat(target: str, check: dict) -> str:
    """The plain sentence said (console, report.md) when the attribution cannot tell the target apart."""
    return (f"style attribution cannot tell {target} apart on this data: {'; '.join(check['reasons'])}. Its "
            "rates for the models are not evidence about the clone either way.")


def attribution_line(name: str, target: str, score: ModelScore, ceiling: dict, floor: dict, check: dict) -> str:
    r = score.attribution["target"]
    line = f"{LABELS[name]}: {r['successes']} of {r['n']} replies attributed to {target} ({format_rate(r)})"
    if not check["separable"]:
        return line + ": not evidence (see above)"
    return line + f", normalised {normalised(r, ceiling, floor):.2f} (0 = floor, 1 = ceiling)"


def _score_model(name: str, spec: CloneSpec, cfg: CloneStageConfig, settings: FidelityConfig, data: FidelityData,
                 style: Any, console: Console, progress: Console | None) -> ModelScore:
    started = time.perf_counter()
    clone = load_clone(spec, cfg)
    perplexity = perplexity_pass(clone, data.examples, settings.batch_size)
    console.print(f"{LABELS[name]}: perplexity {perplexity['perplexity']:.3f} over {perplexity['tokens']} target "
                  f"tokens ({perplexity['seconds']:.0f} s); generating {len(data.contexts)} replies", highlight=False)
    with ReplyProgress(LABELS[name], len(data.contexts), progress) as bar:
        replies = generation_pass(clone, data.contexts, cfg.sampling, cfg.seed, settings.max_prompt_tokens, bar)
    del clone
    gc.collect()
    texts = [r.text for r in replies]
    attribution = style.compute(predictions=texts)
    surface = load_metric("surface_stats").compute(predictions=texts, target_replies=[c.reply for c in data.contexts])
    console.print(f"{LABELS[name]}: scored in {time.perf_counter() - started:.0f} s", highlight=False)
    return ModelScore(name, perplexity, replies, attribution, surface)


def assemble_metrics(spec: CloneSpec, cfg: CloneStageConfig, data: FidelityData, scores: dict[str, ModelScore],
                     references: tuple[dict, dict], check: dict) -> dict:
    """metrics.json: per model, the ceiling and floor (each rate with n and its 95 % interval), whether they tell
    the target apart, the reference replies' surface, and flat headline numbers."""
    ceiling, floor = references
    any_score = next(iter(scores.values()))
    models = {name: {"perplexity": s.perplexity,
                     "attribution": _attribution(s.attribution["target"], ceiling, floor, check),
                     "surface": {**s.surface["generated"], "length_wasserstein": s.surface["length_wasserstein"],
                                 "length_ks": s.surface["length_ks"]},
                     "generation": summarize(s.replies)} for name, s in scores.items()}
    metrics = {"target": spec.target, "clone": spec.describe(), "sampling": sampling_values(cfg.sampling, cfg.seed),
               "data": data.describe(), "models": models,
               "ceiling": {**ceiling, "texts": len(data.ceiling)}, "floor": {**floor, "texts": len(data.floor)},
               "attribution_check": check, "reference_surface": any_score.surface["reference"]}
    metrics["headline"] = headline(metrics)
    return metrics


def _attribution(r: dict, ceiling: dict, floor: dict, check: dict) -> dict:
    """A model's attribution in metrics.json: the rate with successes, n and ci95 (and the older names target_rate,
    mean_target_prob, texts), normalised between floor and ceiling only when they tell the target apart."""
    return {**r, "target_rate": r["rate"], "mean_target_prob": r["mean_prob"], "texts": r["n"],
            "normalised": normalised(r, ceiling, floor) if check["separable"] else None}


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
    out.update(attribution_ceiling=metrics["ceiling"]["rate"], attribution_floor=metrics["floor"]["rate"],
               attribution_separable=metrics["attribution_check"]["separable"],
               mean_chars_reference=metrics["reference_surface"]["mean_chars"], contexts=metrics["data"]["contexts"])
    return out
