"""Where replies come from: the clones loaded in this process (inference.py's loading and generation code), or a
running serve.py over its OpenAI-compatible chat-completions API, so the web page and the bot share one loaded
model. Either way the bot hands over the same context (chatclone.bot.context) and the prompt is rendered by the
same `PromptBuilder` (here, or in serve.py)."""

from __future__ import annotations

import io
from typing import Any, Protocol

from chatclone.bot.clones import BotClone
from chatclone.bot.context import Context, openai_messages
from chatclone.config.discord_bot import DiscordBotConfig
from chatclone.config.generation import SamplingConfig
from chatclone.errors import ChatcloneError
from chatclone.generation.session import CUT_MARK, Session


class Backend(Protocol):
    def reply(self, clone: BotClone, context: Context) -> str:
        """The clone's next turn after `context` ("" when it has nothing to say)."""


class InProcess:
    """Each clone loaded once, with one `Session` (its generator and KV cache reused from reply to reply)."""

    def __init__(self, clones: list[BotClone], cfg: DiscordBotConfig, logits_processor: Any = None):
        from chatclone.generation import running
        from chatclone.generation.clone import load_clone

        self.sessions: dict[str, Session] = {}
        for clone in clones:
            clone_cfg = cfg.clone_config(clone.run)
            loaded = load_clone(clone.spec, clone_cfg)
            self.sessions[clone.name] = running.new_session(loaded, clone_cfg, [], io.StringIO(), logits_processor)
        if cfg.seed is not None:
            from transformers import set_seed

            set_seed(cfg.seed)

    def prompt(self, clone: BotClone, context: Context) -> str:
        """The prompt text the clone is given for `context` (what training rendered before a target turn)."""
        return self.sessions[clone.name].clone.prompts.render(context.messages, clone.name)[0]

    def reply(self, clone: BotClone, context: Context) -> str:
        """Generated as inference.py's chat generates a turn: fitted to the model's budget (oldest messages dropped),
        stopped at the end of turn or another speaker's line, an empty draw drawn again up to reply_attempts."""
        session = self.sessions[clone.name]
        session.history = list(context.messages)
        session.transcript.clear()
        session.replies.clear()
        session.printer.out = io.StringIO()  # streamed into nothing: the bot posts the finished reply
        session.generator.names = list(dict.fromkeys([clone.name, *context.speakers, *clone.spec.partners]))
        reply = session.generate(clone.name)[-1]
        if not reply.text:
            return ""
        return reply.text + (CUT_MARK if reply.stopped == "max_new_tokens" else "")


class Http:
    """A running serve.py: POST `<backend>/v1/chat/completions` with the context as OpenAI messages and the clone's
    id as `model`; the server renders the prompt and stops at the clone's end of turn."""

    def __init__(
        self, url: str, timeout_s: float, sampling: SamplingConfig, seed: int | None = None, transport: Any = None
    ):
        import httpx

        self.url, self.sampling, self.seed = url.rstrip("/"), sampling, seed
        self.client = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport)

    def check(self, clones: list[BotClone]) -> None:
        """Before the bot connects: the server answers and serves every clone (GET /v1/models)."""
        data = self._call("GET", "/v1/models")
        served = [m.get("id") for m in data.get("data", []) if isinstance(m, dict)]
        missing = [c.id for c in clones if c.id not in served]
        if missing:
            raise ChatcloneError(
                f"backend={self.url} serves {', '.join(map(str, served)) or 'no model'}, not "
                f"{', '.join(missing)}: start serve.py with the same clones"
            )

    def request(self, clone: BotClone, context: Context) -> dict:
        """The chat-completions request body for the clone's next turn."""
        body: dict[str, Any] = {
            "model": clone.id,
            "messages": openai_messages(context.messages),
            "max_tokens": self.sampling.max_new_tokens,
            "n": 1,
            "temperature": 0.0 if self.sampling.greedy else self.sampling.temperature,
        }
        if not self.sampling.greedy:
            body["top_p"] = self.sampling.top_p
        if self.seed is not None:
            body["seed"] = self.seed
        return body

    def reply(self, clone: BotClone, context: Context) -> str:
        data = self._call("POST", "/v1/chat/completions", self.request(clone, context))
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise ChatcloneError(f"backend={self.url}: the reply has no choices[0].message.content") from None
        text = text.strip()
        return text + (CUT_MARK if text and choice.get("finish_reason") == "length" else "")

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        import httpx

        try:
            response = self.client.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise ChatcloneError(
                f"backend={self.url}: {type(error).__name__}: {error} (is serve.py running?)"
            ) from None
        if response.status_code != 200:
            raise ChatcloneError(f"backend={self.url}{path}: HTTP {response.status_code}{_reason(response)}")
        try:
            data = response.json()
        except ValueError:
            raise ChatcloneError(f"backend={self.url}{path}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise ChatcloneError(f"backend={self.url}{path}: the answer is not a JSON object")
        return data


def _reason(response: Any) -> str:
    """The server's own one-line reason (OpenAI's `error.message`, or a string `detail`), never the echo of a
    request body: a validation error can quote the messages, which must not reach the run's log."""
    try:
        data = response.json()
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    reason = (data.get("error") or {}).get("message") if isinstance(data.get("error"), dict) else data.get("detail")
    return f": {reason.splitlines()[0][:200]}" if isinstance(reason, str) and reason.strip() else ""


def backend_for(cfg: DiscordBotConfig, clones: list[BotClone]) -> Backend:
    if cfg.in_process:
        return InProcess(clones, cfg)
    http = Http(cfg.backend, cfg.backend_timeout_s, cfg.sampling, cfg.seed)
    http.check(clones)
    return http
