"""Clone fidelity: score the base model and the fine-tuned clone on the held-out validation split, write the report.

    data = load_fidelity_data(spec.data_dir, cfg.eval.max_contexts)   # checked before any model loads
    metrics, outputs = score_fidelity(spec, cfg, data, out_dir, console)

Each model is loaded, run through the perplexity and generation passes, and freed before the next one loads (one
model in memory at a time). The style classifier is fitted once, on the training split's messages only.
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
from chatclone.evaluation.settings import FidelityConfig
from chatclone.generation.clone import CloneSpec, load_clone
from chatclone.generation.generate import Reply
from chatclone.generation.records import summarize
from chatclone.metrics import load_metric

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
                   console: Console) -> tuple[dict, dict[str, ModelScore]]:
    """(metrics, per-model scores) for the base model (if settings.base) and the clone `spec` names."""
    style = fit_style_classifier(data)
    variants = ([(BASE, dataclasses.replace(spec, kind="base", weights=None))] if settings.base else [])
    scores = {name: _score_model(name, variant, cfg, settings, data, style, console)
              for name, variant in variants + [(FINE_TUNED, spec)]}
    return assemble_metrics(spec, cfg, data, scores), scores


def _score_model(name: str, spec: CloneSpec, cfg: CloneStageConfig, settings: FidelityConfig, data: FidelityData,
                 style: Any, console: Console) -> ModelScore:
    started = time.perf_counter()
    clone = load_clone(spec, cfg)
    perplexity = perplexity_pass(clone, data.examples, settings.batch_size)
    console.print(f"{LABELS[name]}: perplexity {perplexity['perplexity']:.3f} over {perplexity['tokens']} target "
                  f"tokens ({perplexity['seconds']:.0f} s); generating {len(data.contexts)} replies", highlight=False)
    replies = generation_pass(clone, data.contexts, cfg.sampling, cfg.seed, settings.max_prompt_tokens)
    del clone
    gc.collect()
    texts = [r.text for r in replies]
    attribution = style.compute(predictions=texts, target_replies=data.ceiling, other_texts=data.floor)
    surface = load_metric("surface_stats").compute(predictions=texts, target_replies=[c.reply for c in data.contexts])
    console.print(f"{LABELS[name]}: {attribution['target_rate']:.1%} of replies attributed to {spec.target} "
                  f"({time.perf_counter() - started:.0f} s in all)", highlight=False)
    return ModelScore(name, perplexity, replies, attribution, surface)


def assemble_metrics(spec: CloneSpec, cfg: CloneStageConfig, data: FidelityData,
                     scores: dict[str, ModelScore]) -> dict:
    """metrics.json: per model, the ceiling and floor, the reference replies' surface, and flat headline numbers."""
    any_score = next(iter(scores.values()))
    a = any_score.attribution
    models = {name: {"perplexity": s.perplexity,
                     "attribution": {k: s.attribution[k] for k in ("target_rate", "mean_target_prob", "texts")},
                     "surface": {**s.surface["generated"], "length_wasserstein": s.surface["length_wasserstein"],
                                 "length_ks": s.surface["length_ks"]},
                     "generation": summarize(s.replies)} for name, s in scores.items()}
    metrics = {"target": spec.target, "clone": spec.describe(), "sampling": sampling_values(cfg.sampling, cfg.seed),
               "data": data.describe(), "models": models,
               "ceiling": {"rate": a["ceiling_rate"], "mean_prob": a["ceiling_mean_prob"], "texts": len(data.ceiling)},
               "floor": {"rate": a["floor_rate"], "mean_prob": a["floor_mean_prob"], "texts": len(data.floor)},
               "reference_surface": any_score.surface["reference"]}
    metrics["headline"] = headline(metrics)
    return metrics


def sampling_values(sampling: SamplingConfig, seed: int | None) -> dict:
    return {**dataclasses.asdict(sampling), "seed": seed}


def headline(metrics: dict) -> dict:
    """The numbers a run is judged by, flat (manifest summary, W&B summary, sweep table)."""
    out: dict[str, Any] = {}
    for name, m in metrics["models"].items():
        out[f"perplexity_{name}"] = m["perplexity"]["perplexity"]
        out[f"attribution_{name}"] = m["attribution"]["target_rate"]
        out[f"target_prob_{name}"] = m["attribution"]["mean_target_prob"]
        out[f"mean_chars_{name}"] = m["surface"]["mean_chars"]
        out[f"length_ks_{name}"] = m["surface"]["length_ks"]
        out[f"empty_replies_{name}"] = m["generation"]["empty_replies"]
    out.update(attribution_ceiling=metrics["ceiling"]["rate"], attribution_floor=metrics["floor"]["rate"],
               mean_chars_reference=metrics["reference_surface"]["mean_chars"], contexts=metrics["data"]["contexts"])
    return out
