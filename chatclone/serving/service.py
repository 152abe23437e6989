"""The clones a server holds, and a chat-completion request checked and turned into a scheduler Job.

Everything here is independent of HTTP: a chat bot can build a `Service` and call `prepare` + `Scheduler.submit`
directly, or talk to serve.py's API. Bad requests raise `RequestError` (status, message naming the field); the API
turns it into OpenAI's error JSON.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from chatclone.config.serve import LimitsConfig, ServeConfig
from chatclone.errors import ChatcloneError
from chatclone.generation.clone import Clone
from chatclone.serving.engine import Job, Scheduler, Settings
from chatclone.serving.messages import MessageError, Speakers, names_in, to_history

UNSUPPORTED = (
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "response_format",
    "audio",
    "modalities",
    "prediction",
    "frequency_penalty",
    "presence_penalty",
)


class RequestError(Exception):
    """A request the server refuses: HTTP status, a message naming the field, OpenAI's error type and code."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class Served:
    """One clone under its model id."""

    id: str
    clone: Clone
    partner: str
    turn_end: str
    created: int = field(default_factory=lambda: int(time.time()))

    def card(self) -> dict:
        spec = self.clone.spec
        return {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": "chatclone",
            "target": spec.target,
            "base_model": spec.base_model,
            "run_dir": str(spec.run_dir),
            "kind": spec.kind,
            "partner": self.partner,
            "system_prompt": spec.format.style.system_prompt,
        }


def model_ids(targets: list[str]) -> list[str]:
    """A model id per clone, named after its target (`Tamsin Vale` -> `tamsin-vale`); a repeated one gets -2, -3."""
    ids: list[str] = []
    for target in targets:
        base = re.sub(r"[^a-z0-9._-]+", "-", target.casefold()).strip("-") or "clone"
        name, count = base, 1
        while name in ids:
            count += 1
            name = f"{base}-{count}"
        ids.append(name)
    return ids


class RateLimit:
    """At most `per_minute` requests per client in any 60 s; 0 = off."""

    def __init__(self, per_minute: int):
        self.per_minute, self.seen = per_minute, defaultdict(deque)
        self.lock = threading.Lock()

    def check(self, client: str) -> None:
        if not self.per_minute:
            return
        now = time.monotonic()
        with self.lock:
            seen = self.seen[client]
            while seen and now - seen[0] >= 60:
                seen.popleft()
            if len(seen) >= self.per_minute:
                wait = max(1, int(60 - (now - seen[0])) + 1)
                raise RequestError(
                    429,
                    f"rate limit: at most {self.per_minute} requests a minute per client "
                    f"(limits.requests_per_minute); retry in {wait} s",
                    None,
                    "rate_limit_exceeded",
                    "rate_limit_error",
                    {"Retry-After": str(wait)},
                )
            seen.append(now)


class Service:
    """The served clones, the scheduler decoding for all of them, the limits and the sampling defaults."""

    def __init__(self, cfg: ServeConfig, clones: list[Clone], partners: list[str]):
        self.cfg, self.limits = cfg, cfg.limits
        self.models = {
            name: Served(name, clone, partner, clone.prompts.turn_end(clone.spec.target))
            for name, clone, partner in zip(model_ids([c.spec.target for c in clones]), clones, partners)
        }
        self.scheduler = Scheduler({name: s.clone for name, s in self.models.items()}, cfg.max_batch, cfg.queue_size)
        self.rate = RateLimit(cfg.limits.requests_per_minute)
        self.text_lock = self.scheduler.text_lock

    def served(self, model: object) -> Served:
        if not isinstance(model, str) or model not in self.models:
            raise RequestError(
                404,
                f"model {model!r} does not exist; GET /v1/models lists {', '.join(self.models)}",
                "model",
                "model_not_found",
            )
        return self.models[model]

    def prepare(self, request: dict, emit: Any) -> tuple[Job, Served]:
        """The request checked against the limits and rendered into a Job (not yet submitted)."""
        served = self.served(request.get("model"))
        _check_unsupported(request)
        messages = request.get("messages")
        _check_messages(messages, self.limits)
        settings, n = self._settings(request), request.get("n") or 1
        if n > self.limits.max_n:
            raise RequestError(400, f"n={n}: at most {self.limits.max_n} choices (limits.max_n)", "n")
        if n > 1 and settings.temperature == 0:
            raise RequestError(400, f"n={n} with temperature 0: every choice would be the same", "n")
        stops = _stops(request.get("stop"), self.limits)
        spec = served.clone.spec
        speakers = Speakers(spec.target, served.partner, spec.format.style.system_prompt, self.cfg.system_messages)
        try:
            history = to_history(messages, speakers)
        except MessageError as error:
            raise RequestError(400, str(error), error.param) from None
        budget = spec.format.max_length - settings.max_tokens
        try:
            with self.text_lock:
                ids, _ = served.clone.prompts.fit(history, spec.target, budget)
        except ChatcloneError as error:
            raise RequestError(400, f"messages: {error}", "messages", "context_length_exceeded") from None
        names = list(dict.fromkeys([spec.target, *names_in(history), served.partner, *spec.partners]))
        stop_texts = (spec.format.end_of_turn, served.turn_end, *stops)
        return Job(served.id, ids, n, settings, names, stop_texts, emit), served

    def _settings(self, request: dict) -> Settings:
        default = self.cfg.sampling
        tokens = request.get("max_completion_tokens") or request.get("max_tokens") or default.max_new_tokens
        key = "max_completion_tokens" if request.get("max_completion_tokens") else "max_tokens"
        if tokens > self.limits.max_tokens:
            raise RequestError(
                400, f"{key}={tokens}: at most {self.limits.max_tokens} tokens a reply (limits.max_tokens)", key
            )
        temperature = request.get("temperature")
        if temperature is None:
            temperature = 0.0 if default.greedy else default.temperature
        top_p = request.get("top_p")
        return Settings(
            float(temperature),
            float(default.top_p if top_p is None else top_p),
            default.top_k,
            default.repetition_penalty,
            int(tokens),
            request.get("seed"),
        )


def _check_unsupported(request: dict) -> None:
    for key in UNSUPPORTED:
        value = request.get(key)
        if value in (None, False, 0, [], {}, "none", "auto") or value == {"type": "text"}:
            continue
        raise RequestError(
            400,
            f"{key}: not supported by a chatclone server (a clone only writes chat replies)",
            key,
            "unsupported_parameter",
        )


def _check_messages(messages: object, limits: LimitsConfig) -> None:
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "messages: a non-empty list of messages is required", "messages")
    if len(messages) > limits.max_messages:
        raise RequestError(
            400, f"messages: {len(messages)} messages, at most {limits.max_messages} (limits.max_messages)", "messages"
        )
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        size = (
            len(content)
            if isinstance(content, str)
            else sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
            if isinstance(content, list)
            else 0
        )
        if size > limits.max_message_chars:
            raise RequestError(
                400,
                f"messages[{index}].content: {size} characters, at most "
                f"{limits.max_message_chars} (limits.max_message_chars)",
                f"messages[{index}].content",
            )


def _stops(stop: object, limits: LimitsConfig) -> list[str]:
    if stop is not None and not isinstance(stop, (str, list)):
        raise RequestError(400, "stop: a string or a list of strings", "stop")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > limits.max_stop:
        raise RequestError(400, f"stop: {len(stops)} sequences, at most {limits.max_stop}", "stop")
    for index, text in enumerate(stops):
        if not isinstance(text, str) or not text or len(text) > limits.max_stop_chars:
            raise RequestError(
                400, f"stop[{index}]: each stop sequence is 1-{limits.max_stop_chars} characters", "stop"
            )
    return stops
