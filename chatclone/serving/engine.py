"""Batched decoding of concurrent requests with one loaded model per clone, in one scheduler thread.

A one-token decoding step on a CPU is memory-bound (every weight is read once per step), so a step for 8 sequences
costs little more than a step for 1. The scheduler takes the oldest waiting requests of one clone, up to
`max_batch` rows (a request with n=2 is two rows), left-pads and prefills their prompts together, then decodes all
rows step by step. Each row keeps its own temperature, top_p, top_k, repetition penalty, token budget and random
generator (seeded: a request's choice i uses seed + i), and its own stop rules, exactly those of inference.py:
the stop token ids (end of turn, eos) and chatclone.generation.stops' speaker safety net and stop texts, applied
while the text streams (StreamGate). Finished or cancelled rows leave the batch (their KV cache rows are dropped);
requests that arrive while a batch runs join it between two steps once prefilled, while rows are free. Requests
beyond the rows wait in a bounded queue; a full queue is refused (QueueFull: the API's 503).

One thread does all model work: on a CPU, torch's own worker threads already use every core, and a second
model thread would compete with them. Events (text deltas, a choice's end, the request's end) go to each request's
`emit`, which the API hands to its event loop.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chatclone.generation.clone import Clone
from chatclone.generation.stops import SpeakerCut, StreamGate

log = logging.getLogger(__name__)
CANDIDATES = 256  # the most likely tokens a row's nucleus is looked for in first (see sample)


class QueueFull(Exception):
    """Every waiting place is taken."""


@dataclass(frozen=True)
class Settings:
    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    max_tokens: int
    seed: int | None


@dataclass
class Job:
    """One chat-completion request: `n` choices after one prompt."""

    clone: str
    prompt_ids: list[int]
    n: int
    settings: Settings
    names: list[str]  # every speaker the safety net must know (the target first)
    stop_texts: tuple[str, ...]
    emit: Callable[[tuple], None]  # ("delta", index, text) | ("finish", index, reason, tokens) | ("done",)
    cancelled: threading.Event = field(default_factory=threading.Event)
    queued_at: float = field(default_factory=time.perf_counter)

    def cancel(self) -> None:
        self.cancelled.set()


class Row:
    """One choice being decoded: its tokens, stop rules and random generator."""

    def __init__(self, job: Job, index: int, clone: Clone, text_lock: threading.Lock):
        import torch

        self.job, self.index, self.clone, self.text_lock = job, index, clone, text_lock
        seed = job.settings.seed + index if job.settings.seed is not None else secrets.randbits(62)
        self.generator = torch.Generator(device=clone.device).manual_seed(seed)
        self.ids: list[int] = []  # generated tokens, a stop token excluded
        self.tokens = 0  # generated tokens, a stop token included
        self.fed = ""
        self.gate = StreamGate(SpeakerCut(job.names, job.names[0], job.stop_texts), self._emit)

    def _emit(self, text: str) -> None:
        self.job.emit(("delta", self.index, text))

    def add(self, token: int) -> str | None:
        """Take the sampled token; the finish reason (`stop`, `length`) once the row is done, else None."""
        self.tokens += 1
        if token in self.clone.stop_ids:
            return self.finish("stop")
        self.ids.append(token)
        text = self.text()
        if not text.endswith("\ufffd") and text.startswith(self.fed):  # an unfinished character waits
            self.gate.feed(text[len(self.fed) :])
            self.fed = text
        if self.gate.stopped:
            return self.finish("stop")
        if self.tokens >= self.job.settings.max_tokens:
            return self.finish("length")
        return None

    def text(self) -> str:
        with self.text_lock:  # the API's threads tokenize prompts with the same tokenizer
            return self.clone.tokenizer.decode(self.ids, skip_special_tokens=True)

    def finish(self, reason: str) -> str:
        text = self.text()
        if text.startswith(self.fed) and not self.gate.stopped:
            self.gate.feed(text[len(self.fed) :])
        self.gate.close()
        self.job.emit(("finish", self.index, reason, self.tokens))
        return reason


def sample(logits: Any, rows: list[Row], history: list[list[int]]) -> list[int]:
    """One token per row from its logits [rows, vocab], with the row's own settings and generator.

    The nucleus (top_p) is found among the CANDIDATES most likely tokens, and only a row whose nucleus is wider
    than that sorts its whole vocabulary: the same distribution, but a full sort of SmolLM2's 49k logits costs
    about as much as a decoding step (measured: 5 ms of an 18 ms tiny-model step), and a batch would pay it per row."""
    import torch

    logits = logits.float()
    for i, row in enumerate(rows):
        penalty, k = row.job.settings.repetition_penalty, row.job.settings.top_k
        if penalty != 1.0 and history[i]:
            seen = torch.tensor(sorted(set(history[i])), device=logits.device)
            values = logits[i, seen]
            logits[i, seen] = torch.where(values > 0, values / penalty, values * penalty)
        if 0 < k < logits.shape[-1]:
            logits[i] = logits[i].masked_fill(logits[i] < torch.topk(logits[i], k).values[-1], float("-inf"))
    temps = torch.tensor([max(r.job.settings.temperature, 1e-5) for r in rows], device=logits.device)
    probs = torch.softmax(logits / temps[:, None], dim=-1)
    top, order = probs.topk(min(CANDIDATES, probs.shape[-1]), dim=-1)
    return [_draw(logits[i], probs[i], top[i], order[i], row) for i, row in enumerate(rows)]


def _draw(logits: Any, probs: Any, top: Any, order: Any, row: Row) -> int:
    import torch

    settings = row.job.settings
    if settings.temperature == 0:
        return int(logits.argmax())
    if settings.top_p >= 1:
        return int(torch.multinomial(probs, 1, generator=row.generator))
    if float(top.sum()) < settings.top_p:  # a nucleus wider than the candidates: sort them all
        top, order = torch.sort(probs, descending=True)
    keep = (torch.cumsum(top, dim=-1) - top) <= settings.top_p  # the most likely token always stays
    nucleus = top * keep
    return int(order[torch.multinomial(nucleus / nucleus.sum(), 1, generator=row.generator)])


class Batch:
    """The rows decoding together, their KV cache, attention mask and next positions."""

    def __init__(self, clone: Clone, text_lock: threading.Lock):
        self.clone, self.text_lock = clone, text_lock
        self.rows: list[Row] = []
        self.history: list[list[int]] = []  # prompt + generated ids per row (repetition penalty)
        self.cache = self.mask = self.positions = self.logits = None

    def add(self, jobs: list[Job]) -> None:
        """Prefill the jobs' prompts (left-padded) and join their rows to the batch."""
        import torch
        from transformers import DynamicCache

        clone, device = self.clone, self.clone.device
        rows = [Row(job, i, clone, self.text_lock) for job in jobs for i in range(job.n)]
        prompts = [row.job.prompt_ids for row in rows]
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[clone.pad_id] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=clone.model.config)
        with torch.inference_mode():
            logits = clone.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1, :]
        self._merge(rows, prompts, cache, mask, positions[:, -1:], logits)

    def _merge(
        self, rows: list[Row], prompts: list[list[int]], cache: Any, mask: Any, positions: Any, logits: Any
    ) -> None:
        import torch

        if not self.rows:
            self.rows, self.history = rows, [list(p) for p in prompts]
            self.cache, self.mask, self.positions, self.logits = cache, mask, positions, logits
            return
        width = max(self.mask.shape[1], mask.shape[1])
        pad = torch.nn.functional.pad
        for old, new in zip(self.cache.layers, cache.layers):
            for name in ("keys", "values"):
                a, b = getattr(old, name), getattr(new, name)
                a = pad(a, (0, 0, width - a.shape[2], 0))
                b = pad(b, (0, 0, width - b.shape[2], 0))
                setattr(old, name, torch.cat([a, b]))
        self.mask = torch.cat([pad(self.mask, (width - self.mask.shape[1], 0)), pad(mask, (width - mask.shape[1], 0))])
        self.positions = torch.cat([self.positions, positions])
        self.logits = torch.cat([self.logits, logits])
        self.rows += rows
        self.history += [list(p) for p in prompts]

    def step(self) -> list[Row]:
        """Sample a token for every row, drop the rows that finished; the finished rows."""
        import torch

        with torch.inference_mode():  # the logits are inference tensors (the penalty edits them in place)
            tokens = sample(self.logits, self.rows, self.history)
        keep, done = [], []
        for i, (row, token) in enumerate(zip(self.rows, tokens)):
            if row.job.cancelled.is_set():
                done.append(row)
                continue
            self.history[i].append(token)
            if row.add(token):
                done.append(row)
            else:
                keep.append(i)
        if len(keep) < len(self.rows):
            index = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
            self.cache.batch_select_indices(index)
            self.mask, self.positions = self.mask[index], self.positions[index]
            tokens = [tokens[i] for i in keep]
            self.rows = [self.rows[i] for i in keep]
            self.history = [self.history[i] for i in keep]
        if self.rows:
            self._forward(tokens)
        return done

    def _forward(self, tokens: list[int]) -> None:
        import torch

        device = self.mask.device
        self.mask = torch.cat([self.mask, torch.ones((len(tokens), 1), dtype=self.mask.dtype, device=device)], 1)
        self.positions = self.positions + 1
        ids = torch.tensor(tokens, device=device)[:, None]
        with torch.inference_mode():
            self.logits = self.clone.model(
                input_ids=ids,
                attention_mask=self.mask,
                position_ids=self.positions,
                past_key_values=self.cache,
                use_cache=True,
            ).logits[:, -1, :]


class Scheduler:
    """The waiting queue and the thread that decodes batches, for every clone served (one batch at a time)."""

    def __init__(self, clones: dict[str, Clone], max_batch: int, queue_size: int):
        self.clones, self.max_batch, self.queue_size = clones, max_batch, queue_size
        self.waiting: dict[str, deque[Job]] = {name: deque() for name in clones}
        self.lock = threading.Condition()
        self.text_lock = threading.Lock()
        self.stats = {
            "requests": 0,
            "refused": 0,
            "cancelled": 0,
            "batches": 0,
            "steps": 0,
            "max_rows": 0,
            "tokens": 0,
            "running": 0,
        }
        self.closing = False
        self.thread = threading.Thread(target=self._loop, name="chatclone-decode", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        with self.lock:
            self.closing = True
            self.lock.notify_all()
        self.thread.join(timeout=10)

    def submit(self, job: Job) -> None:
        with self.lock:
            if sum(len(q) for q in self.waiting.values()) >= self.queue_size:
                self.stats["refused"] += 1
                raise QueueFull
            self.waiting[job.clone].append(job)
            self.stats["requests"] += 1
            self.lock.notify_all()

    def queued(self) -> int:
        with self.lock:
            return sum(len(q) for q in self.waiting.values())

    def _take(self, clone: str | None, rows_free: int, wait: bool) -> tuple[str | None, list[Job]]:
        """Waiting jobs of `clone` (None: of the clone whose oldest job waited longest) that fit `rows_free`."""
        with self.lock:
            while wait and not self.closing and not any(self.waiting.values()):
                self.lock.wait()
            if clone is None:
                ready = [(q[0].queued_at, name) for name, q in self.waiting.items() if q]
                clone = min(ready)[1] if ready else None
            jobs: list[Job] = []
            queue = self.waiting.get(clone) if clone else None
            while queue and (rows_free >= queue[0].n or (not jobs and rows_free == self.max_batch)):
                job = queue.popleft()
                if job.cancelled.is_set():
                    self.stats["cancelled"] += 1
                    job.emit(("done",))
                    continue
                jobs.append(job)
                rows_free -= job.n
            return clone, jobs

    def _loop(self) -> None:
        while not self.closing:
            clone, jobs = self._take(None, self.max_batch, wait=True)
            if not jobs:
                continue
            try:
                self._run(clone, jobs)
            except Exception:  # the requests fail, the server goes on
                log.exception("generation failed")
                for job in jobs:
                    job.emit(("error", "generation failed; see the server's log"))

    def _run(self, clone: str, jobs: list[Job]) -> None:
        """Decode `jobs` to the end, letting further jobs of the same clone join between steps while rows are free."""
        batch, open_rows = Batch(self.clones[clone], self.text_lock), {id(job): job.n for job in jobs}
        batch.add(jobs)
        self.stats["batches"] += 1
        while batch.rows:
            free = self.max_batch - len(batch.rows)
            if free > 0:
                _, joining = self._take(clone, free, wait=False)
                if joining:
                    batch.add(joining)
                    open_rows.update({id(job): job.n for job in joining})
            self.stats["max_rows"] = max(self.stats["max_rows"], len(batch.rows))
            self.stats["running"] = len(batch.rows)
            for row in batch.step():
                self.stats["tokens"] += row.tokens
                open_rows[id(row.job)] -= 1
                if open_rows[id(row.job)] == 0:
                    if row.job.cancelled.is_set():
                        self.stats["cancelled"] += 1
                    row.job.emit(("done",))
            self.stats["steps"] += 1
        self.stats["running"] = 0
