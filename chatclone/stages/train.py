"""train: fine-tune on a tokenize_dataset run with the transformers Trainer (lora, qlora or full)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from chatclone import logs, runs, wandb_runs
from chatclone.config.train import Method, TrainConfig
from chatclone.errors import ChatcloneError
from chatclone.evaluation.data import load_fidelity_data
from chatclone.evaluation.training import FIDELITY_DIR, evaluate_after_training
from chatclone.logs import warn
from chatclone.modeling import resolve_model
from chatclone.runs import plain
from chatclone.training.batching import PadCollator
from chatclone.training.models import build_model, check_method_supported, merge_adapter
from chatclone.training.reporting import disk_usage, human_bytes, plot_loss_curves
from chatclone.training.sizing import Schedule, check_sizes, read_sizes, schedule

STAGE, INPUT_STAGE = "train", "tokenize_dataset"
SAMPLES = "samples.md"  # chatclone.training.samples.SAMPLES (that module imports transformers: loaded only when used)
MODEL_FILES = (
    "adapter_model.safetensors",
    "adapter_config.json",
    "model.safetensors",
    "config.json",
    "generation_config.json",
    "model.safetensors.index.json",
)


def train(cfg: TrainConfig, run_dir: Path, console: Console | None = None) -> dict:
    """Train; write checkpoints/, final/ (and best/, merged/ where they apply), loss curve, metrics, manifest."""
    console = console or logs.console()
    cfg.check()
    check_method_supported(cfg)
    runs.start_run(run_dir)
    old_run = Path(cfg.resume).expanduser().resolve() if cfg.resume else None
    data_dir = _dataset_dir(cfg, old_run)
    resume_from = _resume_checkpoint(old_run) if old_run else None
    data_model = runs.read_manifest(data_dir)["summary"]["model"]
    base = _check_same_model(cfg, data_model, data_dir)
    warnings = check_sizes(cfg, read_sizes(data_dir), data_dir)
    for warning in warnings:
        warn(warning)
    # eval.fidelity: load the validation data now: fail in seconds, not after training, if it cannot be scored
    fidelity_data = load_fidelity_data(data_dir, cfg.eval.max_contexts) if cfg.eval.fidelity else None
    sample_contexts = _sample_contexts(cfg, data_dir)
    trainer, plan = _trainer(cfg, run_dir, data_dir, base, data_model)
    if sample_contexts:
        _add_sample_callback(trainer, cfg, run_dir, (data_dir, base, data_model), sample_contexts, console)
    if trainer.is_world_process_zero():
        runs.write_json(
            run_dir, "run_info.json", {"dataset": str(data_dir), "base_model": base, "method": cfg.method.name.value}
        )
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    # Every process saves and evaluates: FSDP gathers the weights collectively, evaluation is sharded.
    outputs = _save_models(trainer, cfg, run_dir)
    final_eval = trainer.evaluate() if cfg.trainer.eval_strategy.value != "no" else None
    if not trainer.is_world_process_zero():
        return {}
    if cfg.export.merge:
        outputs.append(_merge(trainer, cfg, run_dir, base, source="best" if "best" in outputs else "final"))
    metrics = _write_metrics(trainer, result, plan, final_eval, cfg, run_dir, outputs)
    headline = _report_training(trainer, result, metrics, cfg, "best" in outputs, run_dir, console)
    if cfg.eval.fidelity:
        headline["fidelity"] = evaluate_after_training(cfg, run_dir, data_dir, base, data_model, console, fidelity_data)
        outputs.append(FIDELITY_DIR)
    wandb_runs.finish(headline)
    disk = _report_disk(run_dir, cfg, console)
    summary = {"base_model": base, "model": data_model, "method": cfg.method.name.value, "preset": cfg.preset,
               "adapter": cfg.method.name is not Method.full, "metrics": headline, "schedule": plan,
               "warnings": warnings, "disk": disk}  # fmt: skip
    inputs = [str(data_dir)] + ([str(old_run)] if old_run else [])
    console.print(
        f"next: {runs.next_command('inference.py', run_dir, cfg.outputs_root, STAGE, 'run')}  (chat), or "
        f"{runs.next_command('evaluate_clone.py', run_dir, cfg.outputs_root, STAGE, 'run')}  (score it)",
        highlight=False,
        soft_wrap=True,
    )
    runs.finish_run(run_dir, STAGE, cfg, inputs=inputs, outputs=outputs, summary=summary)
    return metrics


def _write_metrics(
    trainer, result, plan: dict, final_eval: dict | None, cfg: TrainConfig, run_dir: Path, outputs: list[str]
) -> dict:
    """metrics.json and the loss curve (named in `outputs`, with samples.md when written); the metrics."""
    metrics = {
        "train": result.metrics,
        "best_metric": trainer.state.best_metric,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "global_step": trainer.state.global_step,
        "world_size": trainer.args.world_size,
        "distributed": trainer.accelerator.distributed_type.value,
        "schedule": plan,
        "log_history": trainer.state.log_history,
        **({"eval": final_eval} if final_eval else {}),
    }
    runs.write_json(run_dir, "metrics.json", metrics)
    title = f"{cfg.model.group} {cfg.method.name.value}"
    curve = plot_loss_curves(trainer.state.log_history, run_dir / "loss_curve.png", title)
    outputs += ["metrics.json"] + (["loss_curve.png"] if curve else [])
    outputs += [SAMPLES] if (run_dir / SAMPLES).is_file() else []
    return metrics


def _sample_contexts(cfg: TrainConfig, data_dir: Path) -> list:
    """The validation contexts answered at each evaluation (eval.sample_contexts, evenly spread); [] when samples
    are off or the run never evaluates. Read before any model loads, so a missing validation.jsonl fails early."""
    if cfg.eval.sample_contexts == 0 or cfg.trainer.eval_strategy.value == "no":
        return []
    return load_fidelity_data(data_dir, cfg.eval.sample_contexts).contexts


def _add_sample_callback(
    trainer: Any, cfg: TrainConfig, run_dir: Path, data: tuple[Path, str, dict], contexts: list, console: Console
) -> None:
    """The samples callback, with the run's prompt format (clone_spec of the bare base: the same rendering as
    inference.py). Not under FSDP: generating on one process would wait forever for the others' weight shards."""
    from chatclone.generation.clone import clone_spec
    from chatclone.training.samples import SampleCallback

    if getattr(trainer, "is_fsdp_enabled", False):
        warn("eval.sample_contexts: no samples under FSDP (the weights are sharded over the processes)")
        return
    data_dir, base, data_model = data
    spec = clone_spec(run_dir, None, base, data_dir, data_model)
    trainer.add_callback(
        SampleCallback(
            spec,
            contexts,
            trainer.processing_class,
            run_dir,
            console,
            seed=cfg.trainer.seed,
            log_samples=wandb_runs.text_allowed(cfg.wandb),
        )
    )


def _report_training(
    trainer: Any, result: Any, metrics: dict, cfg: TrainConfig, kept_best: bool, run_dir: Path, console: Console
) -> dict:
    """Print what training did (and the best checkpoint, when best/ was kept); the manifest's headline numbers."""
    console.print(
        f"trained {cfg.model.group} with {cfg.method.name.value}: "
        f"{trainer.state.global_step} steps, final train loss {result.training_loss:.4f}; wrote {run_dir}"
    )
    best = trainer.state.best_model_checkpoint
    if kept_best and best:
        console.print(
            f"best checkpoint: {Path(best).name} (validation loss {trainer.state.best_metric:.4f}), saved as best/",
            highlight=False,
        )
    return {
        "global_step": trainer.state.global_step,
        "world_size": trainer.args.world_size,
        "distributed": metrics["distributed"],
        "train_loss": result.training_loss,
        "best_eval_loss": trainer.state.best_metric,
        "best_checkpoint": Path(best).name if best else None,
        **{k: v for k, v in metrics.get("eval", {}).items()},
    }


def _report_disk(run_dir: Path, cfg: TrainConfig, console: Console) -> dict:
    """Print and return the disk the run dir takes (manifest.json aside), checkpoints/ apart."""
    total, checkpoints = disk_usage(run_dir), disk_usage(run_dir / "checkpoints")
    kept = len(list((run_dir / "checkpoints").glob("checkpoint-*")))
    limit = cfg.trainer.save_total_limit
    console.print(
        f"disk: {human_bytes(total)} in {run_dir} (checkpoints/ {human_bytes(checkpoints)}: {kept} kept, "
        f"trainer.save_total_limit={limit if limit is not None else 'null'})",
        highlight=False,
    )
    return {"run_dir_bytes": total, "checkpoints_bytes": checkpoints, "checkpoints_kept": kept}


def _check_same_model(cfg: TrainConfig, data_model: dict, data_dir: Path) -> str:
    """The base model must be the one the dataset was tokenized for (same weights, same template)."""
    wanted = resolve_model(cfg.model.name_or_path).name
    if wanted != data_model["name_or_path"]:
        raise ChatcloneError(
            f"the dataset was tokenized for {data_model['group']} ({data_model['name_or_path']}) "
            f"but train.py was asked for model={cfg.model.group} ({wanted}): run "
            f"`python tokenize_dataset.py model={cfg.model.group}` first, or pass input=<run dir>",
            path=data_dir,
        )
    return wanted


def _dataset_dir(cfg: TrainConfig, old_run: Path | None) -> Path:
    """The tokenize_dataset run to train on, resolved: `input=` (latest = the newest); with `resume=`, the resumed
    run's own dataset, and an explicit `input=` naming another one is refused."""
    if old_run is None:
        return runs.resolve_input(cfg.input, Path(cfg.outputs_root), INPUT_STAGE).resolve()
    info_path = old_run / "run_info.json"
    if not info_path.is_file():
        raise ChatcloneError("not a train run dir (no run_info.json): nothing to resume", path=old_run)
    # older runs recorded the path as given (relative to the directory train.py ran in, as now)
    trained_on = Path(json.loads(info_path.read_text(encoding="utf-8"))["dataset"]).resolve()
    if cfg.input != "latest" and Path(cfg.input).expanduser().resolve() != trained_on:
        raise ChatcloneError(
            f"that run trained on {trained_on}, not input={cfg.input}: a resumed run continues on "
            "its own dataset; drop input= (or start a new run without resume=)",
            path=old_run,
        )
    return runs.resolve_input(str(trained_on), Path(cfg.outputs_root), INPUT_STAGE)


def _resume_checkpoint(old_run: Path) -> Path:
    """Last complete checkpoint of a killed (or finished) train run."""
    checkpoints = sorted(
        (p for p in (old_run / "checkpoints").glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    if not checkpoints:
        raise ChatcloneError(
            "no complete checkpoint to resume from (the run stopped before its first save; "
            "lower trainer.save_steps with trainer.save_strategy=steps)",
            path=old_run,
        )
    return checkpoints[-1]


def _trainer(cfg: TrainConfig, run_dir: Path, data_dir: Path, base: str, data_model: dict) -> tuple[Any, Schedule]:
    from datasets import load_from_disk
    from transformers import EarlyStoppingCallback, Trainer, set_seed

    from chatclone.modeling import load_tokenizer
    from chatclone.training.loop import LabelledLogitsTrainer

    dataset = weighted_train_split(load_from_disk(str(data_dir / "dataset")), cfg.trainer.other_turns_weight)
    tokenizer = load_tokenizer(data_dir / "tokenizer")
    plan = schedule(cfg.trainer, len(dataset["train"]), int(os.environ.get("WORLD_SIZE", "1")))
    for note in plan.notes:
        warn(f"small dataset: {note}")
    set_seed(cfg.trainer.seed)  # the adapter's (or new embeddings') random init too, not only batches and dropout
    model = build_model(cfg, base, len(tokenizer))
    callbacks = [wandb_runs.config_callback(plain(cfg))] if wandb_runs.enabled(cfg.wandb) else []
    if cfg.trainer.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.trainer.early_stopping_patience))
    evaluating = cfg.trainer.eval_strategy.value != "no" and len(dataset["validation"]) > 0
    labelled = cfg.trainer.labelled_logits
    trainer_class = LabelledLogitsTrainer if labelled else Trainer
    report_to = wandb_runs.trainer_report_to(cfg.wandb, run_dir)
    trainer = trainer_class(
        model=model,
        args=_arguments(cfg, plan, run_dir, report_to),
        train_dataset=dataset["train"],
        eval_dataset=dataset["validation"] if evaluating else None,
        data_collator=PadCollator(data_model["pad_token_id"], labelled_logits=labelled),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    return trainer, plan


def weighted_train_split(dataset: Any, other_turns_weight: float) -> Any:
    """The dataset with trainer.other_turns_weight as a per-row column of the train split (the collator then labels
    every token, the other turns at that weight: chatclone.training.batching). Validation is never weighted: its
    loss stays the target's turns only, comparable across recipes. Weight 0: the dataset as it is."""
    if other_turns_weight <= 0:
        return dataset
    from chatclone.training.batching import OTHER_WEIGHT

    train = dataset["train"]
    dataset["train"] = train.add_column(OTHER_WEIGHT, [float(other_turns_weight)] * len(train))
    return dataset


def _arguments(cfg: TrainConfig, plan: Schedule, run_dir: Path, report_to: list[str]) -> Any:
    import torch
    from transformers import TrainingArguments

    t = cfg.trainer
    return TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
        run_name=run_dir.name,
        report_to=report_to,
        num_train_epochs=plan.epochs,
        max_steps=t.max_steps,
        learning_rate=cfg.learning_rate,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        activation_checkpointing=t.gradient_checkpointing,
        warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay,
        lr_scheduler_type=t.lr_scheduler,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        length_column_name="length",
        logging_steps=plan.logging_steps,
        logging_first_step=True,
        eval_strategy=t.eval_strategy.value,
        eval_steps=plan.eval_steps,
        save_strategy=t.save_strategy.value,
        save_steps=plan.save_steps,
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=t.load_best_model_at_end,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        seed=t.seed,
        data_seed=t.seed,
        dataloader_num_workers=t.num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        remove_unused_columns=False,
        # No accelerator at all (an MPS or XPU machine trains there): without use_cpu, accelerate takes torchrun's
        # processes for unrelated one-process runs (DistributedType.NO), each training alone on all the data.
        use_cpu=not torch.accelerator.is_available(),
        ddp_backend=None if torch.cuda.is_available() or "LOCAL_RANK" not in os.environ else "gloo",
    )


def _save_models(trainer: Any, cfg: TrainConfig, run_dir: Path) -> list[str]:
    """final/ = the last weights; best/ = the reloaded best checkpoint (regularized). Called on every process
    (the Trainer writes from the main one only)."""
    main = trainer.is_world_process_zero()

    def folder(name: str) -> str:
        return str(runs.new_file(run_dir, name) if main else run_dir / name)

    outputs = []
    last = _last_checkpoint(run_dir / "checkpoints")
    if cfg.trainer.load_best_model_at_end and trainer.state.best_model_checkpoint:
        trainer.save_model(folder("best"))
        outputs.append("best")
        if last is not None:  # the in-memory model is now the best one: final/ comes from the last checkpoint
            if main:
                _copy_model(last, runs.new_file(run_dir, "final"), trainer)
            outputs.append("final")
    if "final" not in outputs:
        trainer.save_model(folder("final"))
        outputs.append("final")
    return outputs


def _merge(trainer: Any, cfg: TrainConfig, run_dir: Path, base: str, source: str) -> str:
    """merged/: the adapter in `source` merged into a freshly loaded 16-bit base, with the tokenizer."""
    merge_adapter(base, run_dir / source, runs.new_file(run_dir, "merged"), cfg.export.merged_dtype)
    trainer.processing_class.save_pretrained(run_dir / "merged")
    return "merged"


def _last_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return found[-1] if found else None


def _copy_model(checkpoint: Path, out_dir: Path, trainer: Any) -> None:
    out_dir.mkdir()
    for name in MODEL_FILES:
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, out_dir / name)
    for shard in checkpoint.glob("model-*.safetensors"):
        shutil.copy2(shard, out_dir / shard.name)
    trainer.processing_class.save_pretrained(out_dir)
