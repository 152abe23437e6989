"""train: each method and preset on a tiny model, resume after a kill, DDP on gloo, merges, W&B, bad input."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import chatclone.config  # noqa: F401
from chatclone import runs
from chatclone.config.train import Method, Strategy
from chatclone.errors import ChatcloneError
from chatclone.stages.train import train
from tests.conftest import ROOT, compose, quiet, run_script


def tiny_overrides(root: Path, model: Path, *more: str) -> list[str]:
    """A tiny, quiet run: no W&B, no samples at evaluations (an untrained tiny model never ends its turn, so each
    sample is max_new_tokens of generation; tests/test_fidelity_metrics.py tests the samples)."""
    keys = {o.split("=", 1)[0] for o in more}
    defaults = [
        f"outputs_root={root}",
        f"model.name_or_path={model}",
        "wandb.mode=disabled",
        "trainer.logging_steps=1",
        "trainer.batch_size=8",
        "trainer.save_strategy=no",
        "eval.sample_contexts=0",
    ]
    return [o for o in defaults if o.split("=", 1)[0] not in keys] + list(more)


def losses(metrics: dict) -> list[float]:
    return [e["loss"] for e in metrics["log_history"] if "loss" in e]


@pytest.mark.parametrize("method, lr", [("lora", "5e-2"), ("qlora", "5e-2"), ("full", "3e-3")])
def test_each_method_lowers_the_loss(dm_tokenized, tiny_llama, tmp_path, method, lr):
    cfg = compose(
        "train",
        tiny_overrides(
            dm_tokenized,
            tiny_llama,
            f"method={method}",
            "trainer.max_steps=6",
            "trainer.batch_size=4",
            f"trainer.learning_rate={lr}",
            "trainer.warmup_ratio=0",
        ),
    )
    metrics = train(cfg, tmp_path / "run", console=quiet())
    curve = losses(metrics)
    assert len(curve) == 6 and curve[-1] < curve[0] - 1.0, curve
    final = tmp_path / "run" / "final"
    weights = "model.safetensors" if method == "full" else "adapter_model.safetensors"
    assert (final / weights).is_file() and (final / "tokenizer.json").is_file()
    manifest = runs.read_manifest(tmp_path / "run")
    assert manifest["summary"]["base_model"] == str(tiny_llama) and manifest["summary"]["method"] == method
    assert (tmp_path / "run" / "loss_curve.png").stat().st_size > 1000


def test_qlora_base_is_really_4bit(dm_tokenized, tiny_llama):
    from chatclone.training.models import build_model

    cfg = compose("train", tiny_overrides(dm_tokenized, tiny_llama, "method=qlora"))
    model = build_model(cfg, str(tiny_llama), 100)
    kinds = {type(m).__name__ for m in model.modules()}
    assert "Linear4bit" in kinds and any(n for n, p in model.named_parameters() if p.requires_grad and "lora_" in n)
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


def test_regularized_keeps_the_best_checkpoint(dm_tokenized, tiny_llama, tmp_path):
    overrides = tiny_overrides(
        dm_tokenized,
        tiny_llama,
        "preset=regularized",
        "trainer.epochs=12",
        "trainer.learning_rate=3e-2",
        "trainer.early_stopping_patience=3",
    )
    cfg = compose("train", [o for o in overrides if "save_strategy" not in o])
    assert cfg.trainer.load_best_model_at_end and cfg.trainer.eval_strategy is Strategy.epoch
    metrics = train(cfg, tmp_path / "run", console=quiet())
    evals = [(e["step"], e["eval_loss"]) for e in metrics["log_history"] if "eval_loss" in e]
    best_step = min(evals, key=lambda e: e[1])[0]
    assert metrics["best_checkpoint"].endswith(f"checkpoint-{best_step}")
    best = load_file(tmp_path / "run" / "best" / "adapter_model.safetensors")
    from_checkpoint = load_file(Path(metrics["best_checkpoint"]) / "adapter_model.safetensors")
    assert all(torch.equal(best[k], from_checkpoint[k]) for k in best)
    final = load_file(tmp_path / "run" / "final" / "adapter_model.safetensors")
    if best_step != evals[-1][0]:  # validation loss rose after the best epoch: final differs from best
        assert any(not torch.equal(best[k], final[k]) for k in best)
    assert metrics["eval"]["eval_loss"] == pytest.approx(min(e[1] for e in evals), rel=1e-4)


def test_overfit_preset(dm_tokenized, tiny_llama, tmp_path):
    cfg = compose("train", tiny_overrides(dm_tokenized, tiny_llama, "preset=overfit", "trainer.epochs=2"))
    assert cfg.preset == "overfit" and cfg.trainer.eval_strategy is Strategy.no and cfg.method.dropout == 0
    assert compose("train", ["preset=overfit"]).trainer.epochs == 15
    train(cfg, tmp_path / "run", console=quiet())
    assert (tmp_path / "run" / "final").is_dir() and not (tmp_path / "run" / "best").exists()


def test_merge_writes_a_full_model_matching_base_plus_adapter(dm_tokenized, tiny_llama, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    cfg = compose(
        "train",
        tiny_overrides(
            dm_tokenized,
            tiny_llama,
            "trainer.max_steps=3",
            "trainer.learning_rate=1e-2",
            "export.merge=true",
            "export.merged_dtype=float32",
        ),
    )
    train(cfg, tmp_path / "run", console=quiet())
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "merged")
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), tmp_path / "run" / "final")
    ids = torch.tensor([[1, 5, 9, 42, 7]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-4)
    assert not any("lora" in k for k in load_file(tmp_path / "run" / "merged" / "model.safetensors"))


def test_wandb_offline_logs_metrics_but_no_chat_text(dm_tokenized, tiny_llama, tmp_path):
    overrides = [o for o in tiny_overrides(dm_tokenized, tiny_llama, "trainer.max_steps=2") if "wandb" not in o]
    train(compose("train", overrides), tmp_path / "run", console=quiet())
    offline = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    blob = b"".join(p.read_bytes() for p in offline[0].rglob("*") if p.is_file())
    assert b"train/loss" in blob
    train_text = (dm_tokenized / "process_messages" / "run" / "train.jsonl").read_text(encoding="utf-8")
    assert "thermos" in train_text and b"thermos" not in blob


@pytest.mark.slow
def test_resume_continues_a_killed_run_without_touching_it(dm_tokenized, tiny_llama, tmp_path):
    args = [
        sys.executable,
        "train.py",
        *tiny_overrides(
            dm_tokenized,
            tiny_llama,
            "trainer.max_steps=12",
            "trainer.batch_size=2",
            "trainer.save_strategy=steps",
            "trainer.save_steps=2",
            "trainer.save_total_limit=null",
            "hydra.run.dir=" + str(tmp_path / "killed"),
        ),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 900  # generous: a loaded CI machine is slow, a hang still fails
    while not list((tmp_path / "killed" / "checkpoints").glob("checkpoint-4/trainer_state.json")):
        assert proc.poll() is None and time.time() < deadline, "training ended or hung before checkpoint-4"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "killed").rglob("*")}
    assert not (tmp_path / "killed" / "manifest.json").exists()
    last = max(
        int(p.name.split("-")[1])
        for p in (tmp_path / "killed" / "checkpoints").glob("checkpoint-*")
        if (p / "trainer_state.json").exists()
    )
    cfg = compose(
        "train",
        tiny_overrides(
            dm_tokenized, tiny_llama, "trainer.max_steps=12", "trainer.batch_size=2", f"resume={tmp_path / 'killed'}"
        ),
    )
    metrics = train(cfg, tmp_path / "resumed", console=quiet())
    assert metrics["global_step"] == 12
    steps = [e["step"] for e in metrics["log_history"] if "loss" in e]
    assert steps == list(range(1, 13)), "steps 1..last come from the checkpoint, the rest from the resumed run"
    assert last >= 4
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "killed").rglob("*")} == before
    # the steps after the kill are the ones a run that was never killed takes
    cfg = compose("train", tiny_overrides(dm_tokenized, tiny_llama, "trainer.max_steps=12", "trainer.batch_size=2"))
    whole = train(cfg, tmp_path / "uninterrupted", console=quiet())

    def logged(m):
        return [(e["step"], e["loss"], e["grad_norm"]) for e in m["log_history"] if "loss" in e]

    assert logged(metrics) == logged(whole)


def test_trainer_seed_decides_the_adapters_initial_weights(dm_tokenized, tiny_llama, tmp_path):
    """trainer.seed, not whatever ran before in the process, decides LoRA's random init (a seed sweep must vary it,
    a repeated run must not)."""
    adapters = []
    for disturbance, seed in [(1, 42), (2, 42), (1, 7)]:
        torch.manual_seed(disturbance)  # the global RNG as earlier work in the same process left it
        cfg = compose("train", tiny_overrides(dm_tokenized, tiny_llama, "trainer.max_steps=1", f"trainer.seed={seed}"))
        train(cfg, tmp_path / f"run-{disturbance}-{seed}", console=quiet())
        adapters.append(load_file(tmp_path / f"run-{disturbance}-{seed}" / "final" / "adapter_model.safetensors"))
    names = [n for n in adapters[0] if "lora_A" in n]
    assert names and all(torch.equal(adapters[0][n], adapters[1][n]) for n in names)
    assert not any(torch.equal(adapters[0][n], adapters[2][n]) for n in names)


@pytest.mark.slow
def test_two_process_gloo_run(dm_tokenized, tiny_llama, tmp_path):
    """DDP over 2 CPU processes with the regularized preset and a merge: evaluation during and after training and
    the final saves are collective (a process that skipped them left the other one failing in a gather)."""
    outputs = tmp_path / "outputs"
    torchrun = Path(sys.executable).parent / "torchrun"
    with socket.socket() as probe:  # a free port: parallel test runs must not collide
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    overrides = [
        o
        for o in tiny_overrides(
            outputs,
            tiny_llama,
            "trainer.max_steps=4",
            "trainer.batch_size=2",
            "preset=regularized",
            "export.merge=true",
            f"input={dm_tokenized / 'tokenize_dataset' / 'run'}",
        )
        if "save_strategy" not in o
    ]
    overrides += [
        "trainer.eval_strategy=steps",
        "trainer.eval_steps=2",
        "trainer.save_strategy=steps",
        "trainer.save_steps=2",
    ]
    result = run_script(
        "train", *overrides, launcher=[str(torchrun), "--nproc_per_node=2", f"--master_port={port}"], timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dirs = list((outputs / "train").iterdir())
    assert len(run_dirs) == 1 and run_dirs[0].name.endswith("-ddp"), run_dirs
    manifest = runs.read_manifest(run_dirs[0])
    assert manifest["summary"]["metrics"]["global_step"] == 4
    # data-parallel for real: one Trainer over 2 processes, not two single-process runs sharing a run dir
    assert manifest["summary"]["metrics"]["world_size"] == 2
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["distributed"] == "MULTI_CPU" and "eval_loss" in metrics["eval"]
    assert metrics["best_checkpoint"].endswith(("checkpoint-2", "checkpoint-4"))
    for folder in ("best", "final"):
        assert (run_dirs[0] / folder / "adapter_model.safetensors").is_file(), folder
    assert (run_dirs[0] / "merged" / "model.safetensors").is_file()
    assert set(manifest["outputs"]) >= {"best", "final", "merged", "metrics.json"}


def test_phi3_qlora_composes_for_a_gpu_user():
    cfg = compose("train", ["model=phi3", "method=qlora"])
    assert cfg.model.name_or_path == "microsoft/Phi-3-mini-4k-instruct" and cfg.method.name is Method.qlora
    assert cfg.model.lora_target_modules == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    assert cfg.method.quant_type == "nf4" and cfg.method.double_quant and cfg.learning_rate == 2e-4
    cfg.check()


def test_phi3_qlora_trains_a_tiny_local_phi3(dm_tokenized, embedded_dir, tmp_path):
    """The GPU user's `python train.py model=phi3 method=qlora`, unchanged but for model.name_or_path: a tiny
    random Phi-3 with a Phi-3-style tokenizer, tokenized with the phi3 group's template, trained on a 4-bit base."""
    from transformers import AutoModelForCausalLM

    from chatclone.stages.tokenize_dataset import tokenize_dataset
    from tests.test_formatting import group_tokenizer
    from tests.tiny_models import build_tiny_model

    group_tokenizer(embedded_dir, "phi3").save_pretrained(tmp_path / "phi3-tokenizer")
    phi3 = build_tiny_model("phi3", tmp_path / "phi3", tmp_path / "phi3-tokenizer")
    outputs = tmp_path / "outputs"
    tokenize_dataset(
        compose(
            "tokenize_dataset",
            [
                "model=phi3",
                f"model.name_or_path={phi3}",
                "progress=false",
                "num_proc=1",
                f"input={dm_tokenized / 'process_messages' / 'run'}",
            ],
        ),
        outputs / "tokenize_dataset" / "run",
        console=quiet(),
    )
    cfg = compose(
        "train",
        tiny_overrides(
            outputs,
            phi3,
            "model=phi3",
            "method=qlora",
            "trainer.max_steps=6",
            "trainer.batch_size=4",
            "trainer.learning_rate=5e-2",
            "trainer.warmup_ratio=0",
        ),
    )
    metrics = train(cfg, tmp_path / "run", console=quiet())
    curve = losses(metrics)
    assert len(curve) == 6 and curve[-1] < curve[0] - 1.0, curve
    adapter = json.loads((tmp_path / "run" / "final" / "adapter_config.json").read_text())
    assert set(adapter["target_modules"]) == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}
    summary = runs.read_manifest(tmp_path / "run")["summary"]
    assert summary["method"] == "qlora" and summary["model"]["group"] == "phi3"
    assert type(AutoModelForCausalLM.from_pretrained(phi3)).__name__ == "Phi3ForCausalLM"


@pytest.mark.parametrize("group", ["smollm2", "gpt2", "phi3", "mistral"])
@pytest.mark.parametrize("method", ["lora", "qlora", "full"])
def test_every_model_and_method_composes(group, method):
    cfg = compose("train", [f"model={group}", f"method={method}"])
    assert cfg.model.group == group and cfg.method.name is Method(method)


def test_bad_inputs_fail_before_training(dm_tokenized, tiny_llama, tmp_path):
    def error(overrides) -> str:
        with pytest.raises(ChatcloneError) as info:
            train(
                compose("train", tiny_overrides(dm_tokenized, tiny_llama, *overrides)), tmp_path / "x", console=quiet()
            )
        return str(info.value)

    assert "no such run dir" in error([f"input={tmp_path / 'nope'}"])
    assert "expected a tokenize_dataset run" in error([f"input={dm_tokenized / 'process_messages' / 'run'}"])
    assert "tokenized for smollm2" in error(["model.name_or_path=" + str(tmp_path)])
    assert "nothing to resume" in error([f"resume={tmp_path}"])
    assert "trainer.early_stopping_patience" in error(["trainer.early_stopping_patience=2"])
    assert "export.merge" in error(["method=full", "export.merge=true"])
    assert "must equal trainer.eval_strategy" in error(["preset=regularized"])


def test_qlora_without_bitsandbytes_says_so(dm_tokenized, tiny_llama, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a)
    )
    with pytest.raises(ChatcloneError, match="method=qlora needs bitsandbytes"):
        train(
            compose("train", tiny_overrides(dm_tokenized, tiny_llama, "method=qlora")), tmp_path / "x", console=quiet()
        )
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_sweep_lands_each_job_in_its_own_run_dir(dm_tokenized, tiny_llama, tmp_path):
    result = run_script(
        "train",
        "-m",
        "method=lora,full",
        "trainer.learning_rate=1e-4,2e-4",
        *tiny_overrides(dm_tokenized, tiny_llama, "trainer.max_steps=1"),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = sorted((dm_tokenized / "train" / "multirun").glob("*/*/manifest.json"))
    assert len(jobs) == 4
    seen = {
        (
            json.loads(p.read_text())["config"]["method"]["name"],
            json.loads(p.read_text())["config"]["trainer"]["learning_rate"],
        )
        for p in jobs
    }
    assert seen == {("lora", 1e-4), ("lora", 2e-4), ("full", 1e-4), ("full", 2e-4)}
