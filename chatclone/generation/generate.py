"""One turn of generation: sampling settings, stop tokens, streaming, timings and the speaker safety net.

A turn stops at the speaker's end of turn: generate stops on `[end_of_turn_id, eos_token_id]` (from the train
run's manifest), so the end-of-turn token never reaches the text. A stopping criterion also ends a sequence
whose text reaches another speaker's line (the cut itself is applied to the decoded text). Streaming happens inside
generate, in the calling thread: a `TextStreamer` hands each finished word to a `StreamGate`, which prints only
what no cut can remove. (A consumer thread, as with `TextIteratorStreamer`, competes with torch's worker threads
for the cores: on the 2-core reference machine it cost a fifth of the tokens/s.) Ctrl-C ends a streamed turn
where it is and keeps what was generated.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatclone.config.generation import SamplingConfig
from chatclone.generation.stops import SpeakerCut, StreamGate


@dataclass
class Reply:
    """A generated turn and how it ended."""

    speaker: str
    text: str
    tokens: int  # generated tokens, the stop token included
    seconds: float
    first_token_s: float | None  # from the call to the first generated token (prompt processing included)
    prompt_tokens: int
    stopped: str  # end_of_turn | max_new_tokens | speaker (cut at another speaker) | interrupted
    cut_at: str | None = None  # the speaker whose `Name:` line the turn was cut at
    candidate: int = 0
    attempt: int = 1  # which draw of its turn this was (an empty draw is drawn again)
    shown: bool = True  # false: an empty draw that was drawn again, never shown

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def record(self) -> dict:
        return {
            "speaker": self.speaker,
            "candidate": self.candidate,
            "text": self.text,
            "tokens": self.tokens,
            "prompt_tokens": self.prompt_tokens,
            "seconds": round(self.seconds, 4),
            "first_token_s": None if self.first_token_s is None else round(self.first_token_s, 4),
            "tokens_per_s": round(self.tokens_per_s, 2),
            "stopped": self.stopped,
            "cut_at": self.cut_at,
            "attempt": self.attempt,
            "shown": self.shown,
        }


def generation_config(sampling: SamplingConfig, stop_ids: list[int], pad_id: int, n: int | None = None) -> Any:
    """A fresh GenerationConfig (the checkpoint's own generation_config.json defaults play no part)."""
    from transformers import GenerationConfig

    settings: dict[str, Any] = {
        "max_new_tokens": sampling.max_new_tokens,
        "do_sample": not sampling.greedy,
        "num_return_sequences": n or sampling.num_return_sequences,
        "repetition_penalty": sampling.repetition_penalty,
        "eos_token_id": list(stop_ids),
        "pad_token_id": pad_id,
    }
    if not sampling.greedy:
        settings.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k)
    return GenerationConfig(**settings)


class _Timer:
    """A generate() streamer that only notes when the first generated token arrives (any batch size)."""

    def __init__(self) -> None:
        self.calls, self.first = 0, None

    def put(self, value: Any) -> None:
        self.calls += 1
        if self.calls == 2:  # call 1 is the prompt
            self.first = time.perf_counter()

    def end(self) -> None:
        return None


def _text_streamer(tokenizer: Any, gate: StreamGate) -> Any:
    """A transformers TextStreamer that feeds its finished words to `gate`, keeps the generated ids (a Ctrl-C'd
    generate returns nothing) and notes when the first one came."""
    from transformers import TextStreamer

    class Streamer(TextStreamer):
        def __init__(self) -> None:
            super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
            self.ids: list[int] = []
            self.first: float | None = None

        def put(self, value: Any) -> None:
            if not self.next_tokens_are_prompt:
                self.first = self.first or time.perf_counter()
                self.ids.extend(value.reshape(-1).tolist())
            super().put(value)

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            gate.feed(text)

    return Streamer()


class _Stop:
    """Stopping criterion: a sequence stops once its text reaches another speaker's line (or a stop text), checked
    on the decoded text at every step."""

    def __init__(self, cut: SpeakerCut, tokenizer: Any, prompt_length: int):
        self.cut, self.tokenizer, self.prompt_length = cut, tokenizer, prompt_length

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = []
        for row in input_ids[:, self.prompt_length :].tolist():
            _, who, stop = self.cut.raw_end(self.tokenizer.decode(row, skip_special_tokens=True))
            done.append(who is not None or stop)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class PrefixCache:
    """The KV cache of the last streamed turn (prompt + reply), reused for as much of the next prompt as starts with
    the same tokens: in a chat, the next prompt is the last one plus the reply and a new message, so only those are
    processed instead of the whole history. Only plain dynamic caches (every layer a `DynamicLayer`) are kept."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.cache: Any = None

    def take(self, model: Any, prompt_ids: list[int]) -> Any:
        """A cache holding the longest common prefix of the kept tokens and the prompt (never all of the prompt:
        generate needs one token to process), or a fresh one."""
        from transformers import DynamicCache

        cache, self.cache = self.cache, None
        common = 0
        for kept, new in zip(self.ids, prompt_ids[:-1]):
            if kept != new:
                break
            common += 1
        if cache is None or common == 0:
            return DynamicCache(config=model.config)
        if cache.get_seq_length() > common:
            cache.crop(common - cache.get_seq_length())
        return cache

    def keep(self, sequence: list[int], cache: Any) -> None:
        from transformers.cache_utils import DynamicLayer

        if all(type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None])):
            self.ids, self.cache = sequence[: cache.get_seq_length()], cache


class Generator:
    """Generates turns with one loaded model, tokenizer and sampling setting."""

    def __init__(
        self,
        clone: Any,
        sampling: SamplingConfig,
        names: list[str],
        logits_processor: Any = None,
        reuse_cache: bool = True,
    ):
        """For a loaded clone (generation.clone.Clone: its model, tokenizer, stop and pad ids); `names`: the speakers
        a reply stops before (`\nName:`)."""
        self.model, self.tokenizer, self.sampling = clone.model, clone.tokenizer, sampling
        self.stop_ids, self.pad_id, self.names = clone.stop_ids, clone.pad_id, names
        self.logits_processor = logits_processor  # tests script tokens through it
        self.static_step = getattr(self.model, "static_cache_step", None)  # compile_decode: a static cache each call
        self.prefix = PrefixCache() if reuse_cache and not self.static_step else None

    def turn(
        self,
        prompt_ids: list[int],
        speaker: str,
        stop_texts: tuple[str, ...] = (),
        n: int = 1,
        on_text: Callable[[str], None] | None = None,
    ) -> list[Reply]:
        """`n` candidate turns of `speaker` after the prompt; with `on_text` (n=1) text streams to it as it comes."""
        cut = SpeakerCut(self.names, speaker, stop_texts)
        if on_text is not None and n == 1:
            return [self._streamed(prompt_ids, speaker, cut, on_text)]
        return self._batch(prompt_ids, speaker, cut, n)

    def _inputs(self, prompt_ids: list[int]) -> dict:
        import torch

        ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.model.device)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def generate(
        self, prompt_ids: list[int], cut: SpeakerCut | None = None, n: int = 1, streamer: Any = None, cache: Any = None
    ) -> Any:
        """`model.generate` for `n` sequences after the prompt (the returned ids include it), stopped by the stop
        tokens, max_new_tokens and, with `cut`, another speaker's line. No decoding, no speaker net on the text:
        `turn` does those (benchmarks time this raw call)."""
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        config = generation_config(self.sampling, self.stop_ids, self.pad_id, n)
        extra = {"logits_processor": LogitsProcessorList(self.logits_processor)} if self.logits_processor else {}
        if cache is None and self.static_step:
            from transformers import StaticCache

            # compile_decode: sizes in multiples of static_step (each size compiled once): a step attends over the
            # whole cache, so a short prompt in a long cache would pay for the empty positions
            step = self.static_step
            length = -(-(len(prompt_ids) + self.sampling.max_new_tokens) // step) * step
            cache = StaticCache(config=self.model.config, max_cache_len=length)
        if cache is not None:
            extra["past_key_values"] = cache
        stops = [_Stop(cut, self.tokenizer, len(prompt_ids))] if cut is not None else []
        with torch.inference_mode():
            return self.model.generate(
                **self._inputs(prompt_ids),
                generation_config=config,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList(stops),
                **extra,
            )

    def _batch(self, prompt_ids: list[int], speaker: str, cut: SpeakerCut, n: int) -> list[Reply]:
        timer, started = _Timer(), time.perf_counter()
        out = self.generate(prompt_ids, cut, n, timer)
        seconds = time.perf_counter() - started
        first = timer.first - started if timer.first else None
        return [
            self._reply(row[len(prompt_ids) :].tolist(), speaker, cut, seconds, first, len(prompt_ids), i)
            for i, row in enumerate(out)
        ]

    def _streamed(self, prompt_ids: list[int], speaker: str, cut: SpeakerCut, on_text: Callable[[str], None]) -> Reply:
        gate, started = StreamGate(cut, on_text), time.perf_counter()
        streamer = _text_streamer(self.tokenizer, gate)
        cache = self.prefix.take(self.model, prompt_ids) if self.prefix else None
        try:
            new_ids = self.generate(prompt_ids, cut, 1, streamer, cache)[0][len(prompt_ids) :].tolist()
        except KeyboardInterrupt:  # the cache is dropped: it may hold a half-written step
            new_ids, interrupted = streamer.ids, True
            streamer.end()  # shows the words it was holding back
        else:
            interrupted = False
            if self.prefix:
                self.prefix.keep(prompt_ids + new_ids, cache)
        gate.close()
        seconds = time.perf_counter() - started
        first = streamer.first - started if streamer.first else None
        reply = self._reply(new_ids, speaker, cut, seconds, first, len(prompt_ids), 0)
        if interrupted:
            reply.stopped = "interrupted"
        return reply

    def _reply(
        self,
        new_ids: list[int],
        speaker: str,
        cut: SpeakerCut,
        seconds: float,
        first: float | None,
        prompt_tokens: int,
        candidate: int,
    ) -> Reply:
        """The turn from its new token ids: up to the first stop token, then the speaker safety net."""
        stop_at = next((i for i, t in enumerate(new_ids) if t in self.stop_ids), None)
        kept = new_ids if stop_at is None else new_ids[:stop_at]
        tokens = len(kept) + (stop_at is not None)
        result = cut.cut(self.tokenizer.decode(kept, skip_special_tokens=True))
        stopped = (
            "speaker"
            if result.speaker
            else "end_of_turn"
            if stop_at is not None or result.at_stop_text
            else "max_new_tokens"
        )
        return Reply(speaker, result.text, tokens, seconds, first, prompt_tokens, stopped, result.speaker, candidate)
