"""Samples while training: a few fixed validation contexts answered by the model in training at each evaluation.

    callback = SampleCallback(spec, contexts, tokenizer, run_dir, console, seed=42, log_samples=False)
    trainer.add_callback(callback)     # on_evaluate: generate, print, append to samples.md, W&B if opted in

The replies are generated exactly as inference.py and evaluate_clone.py generate them (chatclone.evaluation.passes's
generation pass: the run's PromptBuilder renders each context with the training chat template; stops at the
target's end of turn): with the in-training model, in eval mode, without gradients, then back in train mode. The
sampling is `sampling=default`, seeded with trainer.seed at every evaluation, so a change between two evaluations
is the model's, not the dice's; the random state training uses (Python, NumPy, torch, CUDA) is saved and restored
around it, so turning samples on or off never changes the training run itself. Text goes to W&B only with
wandb.log_samples=true.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from transformers import TrainerCallback

from chatclone.config.generation import SamplingConfig
from chatclone.evaluation.data import Context
from chatclone.generation.clone import Clone, CloneSpec, stop_and_pad_ids
from chatclone.generation.generate import Reply
from chatclone.generation.prompt import PromptBuilder

SAMPLES = "samples.md"
CONTEXT_SHOWN = 3  # context messages shown per sample (the last ones)


@contextmanager
def untouched_rng() -> Iterator[None]:
    """Run a block without changing Python's, NumPy's or torch's (CPU and CUDA) random state."""
    import numpy as np
    import torch

    state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(state)
        np.random.set_state(np_state)


def answer_contexts(
    model: Any,
    tokenizer: Any,
    spec: CloneSpec,
    contexts: list[Context],
    seed: int,
    sampling: SamplingConfig | None = None,
) -> list[Reply]:
    """One reply of the target per context from `model` as it is now (eval mode, no gradients; its mode and the
    random state are restored afterwards), through the same generation pass as evaluate_clone."""
    import torch

    from chatclone.evaluation.passes import generation_pass

    stops, pad = stop_and_pad_ids(spec.model_info, tokenizer)
    clone = Clone(spec, model, tokenizer, PromptBuilder(tokenizer, spec.format), stops, pad, str(model.device))
    was_training = model.training
    model.eval()
    try:
        with untouched_rng(), torch.no_grad():
            return generation_pass(clone, contexts, sampling or SamplingConfig(), seed, None)
    finally:
        model.train(was_training)


def samples_markdown(
    step: int, epoch: float | None, loss: float | None, contexts: list[Context], replies: list[Reply]
) -> str:
    """One evaluation's section of samples.md: per context its last messages, the real reply and the model's."""
    head = f"## step {step}" + (f", epoch {epoch:.2f}" if epoch is not None else "")
    head += f", validation loss {loss:.4f}" if loss is not None else ""
    lines = [head, ""]
    for context, reply in zip(contexts, replies):
        lines += [f"### validation turn {context.turn}", ""]
        shown = context.history[-CONTEXT_SHOWN:]
        lines += [f"> {m['name']}: {_one_line(m['content'])}" for m in shown] or ["> (the conversation starts here)"]
        lines += ["", f"- real: {_quote(context.reply)}", f"- clone: {_quote(reply.text)} ({reply.stopped})", ""]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return text.replace("\n", " ⏎ ")


def _quote(text: str) -> str:
    return "`" + (_one_line(text).replace("`", "'") or "(empty)") + "`"


class SampleCallback(TrainerCallback):
    """At each evaluation (main process only): answer the fixed contexts, print them, append them to samples.md in
    the run dir, and log a W&B table when `log_samples`."""

    def __init__(
        self,
        spec: CloneSpec,
        contexts: list[Context],
        tokenizer: Any,
        run_dir: Path,
        console: Console,
        seed: int,
        log_samples: bool = False,
    ):
        self.spec, self.contexts, self.tokenizer = spec, contexts, tokenizer
        self.path, self.console, self.seed, self.log_samples = Path(run_dir) / SAMPLES, console, seed, log_samples

    def on_evaluate(
        self, args: Any, state: Any, control: Any, model: Any = None, metrics: dict | None = None, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero or model is None or not self.contexts:
            return
        replies = answer_contexts(model, self.tokenizer, self.spec, self.contexts, self.seed)
        loss = (metrics or {}).get("eval_loss")
        section = samples_markdown(state.global_step, state.epoch, loss, self.contexts, replies)
        new = not self.path.exists()
        with open(self.path, "a", encoding="utf-8") as f:
            if new:
                f.write(
                    f"# Samples while training: {self.spec.target}\n\nThe same validation contexts answered at "
                    f"each evaluation (sampling `default`, seed {self.seed}), the real reply first.\n\n"
                )
            f.write(section)
        self.console.print(f"samples at step {state.global_step}:", highlight=False)
        for context, reply in zip(self.contexts, replies):
            last = context.history[-1] if context.history else None
            said = f"{last['name']}: {_one_line(last['content'])}" if last else "(the conversation starts here)"
            self.console.print(
                f"  {said}\n    real: {_one_line(context.reply)}\n    clone: {_one_line(reply.text)}",
                markup=False,
                highlight=False,
            )
        if self.log_samples:
            self._log_wandb(state.global_step, replies)

    def _log_wandb(self, step: int, replies: list[Reply]) -> None:
        from chatclone import wandb_runs

        if wandb_runs.active_run() is None:
            return
        import wandb

        rows = [
            [
                step,
                c.turn,
                " ⏎ ".join(f"{m['name']}: {m['content']}" for m in c.history[-CONTEXT_SHOWN:]),
                c.reply,
                r.text,
            ]
            for c, r in zip(self.contexts, replies)
        ]
        wandb.log(
            {
                "train/samples": wandb.Table(columns=["step", "turn", "context", "real", "clone"], data=rows),
                "train/global_step": step,
            }
        )
