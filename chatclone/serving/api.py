"""The HTTP face of a Service: OpenAI's chat-completions API, the web chat page and a health check (FastAPI).

Routes: `GET /` (the page), `GET /health`, `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/chat/completions`
(plain JSON or server-sent events ending in `data: [DONE]`, as the `openai` client reads them). With an api key,
every /v1 route wants `Authorization: Bearer <key>`. Bad requests are OpenAI-style error JSON (400 naming the field,
401, 404, 413, 429, 503 with Retry-After), never a traceback. The body is read here (not by FastAPI) so that its
size is checked while it arrives. More pages mount as routers on the app `create_app` returns.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from chatclone.serving.engine import QueueFull
from chatclone.serving.service import RequestError, Service

log = logging.getLogger(__name__)
PAGE = "page.html"
WAIT_POLL_S = 0.25  # a non-streamed request checks this often whether its client is still there


def create_app(service: Service, api_key: str | None, conversations: Any = None) -> FastAPI:
    """The app; `conversations` (a callable taking a dict) records chats only when log_conversations=true."""
    app = FastAPI(title="chatclone", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service, app.state.api_key, app.state.conversations = service, api_key, conversations
    _error_handlers(app)
    app.include_router(_page_routes())
    app.include_router(_api_routes(), prefix="/v1")
    return app


def _error(error: RequestError) -> JSONResponse:
    """The OpenAI error JSON of a refused request, with its status and headers (Retry-After)."""
    return JSONResponse(error.body(), error.status, headers=error.headers)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError) -> JSONResponse:
        return _error(error)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        param = _param(first.get("loc", ()))
        return _error(RequestError(400, f"{param}: {first.get('msg')}", param))

    @app.exception_handler(HTTPException)
    async def http(request: Request, error: HTTPException) -> JSONResponse:
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        return _error(
            RequestError(error.status_code, f"{request.method} {request.url.path}: {error.detail}", None, None, kind)
        )

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> JSONResponse:
        log.error("internal error on %s %s: %s", request.method, request.url.path, type(error).__name__)
        return _error(RequestError(500, "internal server error; see the server's log", None, None, "server_error"))


def _param(loc: tuple) -> str:
    out = ""
    for part in loc:
        if part == "body":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _page_routes() -> APIRouter:
    router = APIRouter()
    page = resources.files("chatclone.serving").joinpath(PAGE).read_text(encoding="utf-8")

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @router.get("/health")
    async def health(request: Request) -> dict:
        service: Service = request.app.state.service
        stats = dict(service.scheduler.stats)
        return {"status": "ok", "models": list(service.models), "queued": service.scheduler.queued(), **stats}

    return router


def _authorize(request: Request) -> None:
    key = request.app.state.api_key
    if key is None:
        return
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise RequestError(
            401,
            "missing or wrong api key: send `Authorization: Bearer <key>` (the server's CHATCLONE_API_KEY)"
            if given == ""
            else "wrong api key",
            None,
            "invalid_api_key",
        )


async def _body(request: Request, limit: int) -> dict:
    """The JSON body, refused with 413 once it is longer than `limit` bytes (by its Content-Length or as it comes)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {declared} bytes, at most {limit} (limits.max_body_bytes)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body over {limit} bytes (limits.max_body_bytes)")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks) or b"null")
    except ValueError as error:
        raise RequestError(400, f"body: not valid JSON ({error})", "body") from None
    if not isinstance(body, dict):
        raise RequestError(400, "body: must be a JSON object", "body")
    return body


def _api_routes() -> APIRouter:
    router = APIRouter()

    @router.get("/models")
    async def models(request: Request) -> dict:
        _authorize(request)
        return {"object": "list", "data": [m.card() for m in request.app.state.service.models.values()]}

    @router.get("/models/{model_id}")
    async def model(model_id: str, request: Request) -> dict:
        _authorize(request)
        return request.app.state.service.served(model_id).card()

    @router.post("/chat/completions")
    async def completions(request: Request) -> Any:
        _authorize(request)
        service: Service = request.app.state.service
        body = await _body(request, service.limits.max_body_bytes)
        _check_types(body)
        service.rate.check(request.client.host if request.client else "unknown")
        loop, events = asyncio.get_running_loop(), asyncio.Queue()

        def emit(event: tuple) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the event loop is gone (shutdown)
                pass

        job, served = service.prepare(body, emit)
        try:
            service.scheduler.submit(job)
        except QueueFull:
            retry = str(service.cfg.retry_after_s)
            raise RequestError(
                503,
                f"the server is busy: {service.cfg.queue_size} requests are waiting (queue_size); retry shortly",
                None,
                "server_busy",
                "server_error",
                {"Retry-After": retry},
            ) from None
        reply = Reply(job.n, served.id, body, request.app.state.conversations)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                reply.stream(events, job, include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await reply.collect(events, job, request)

    return router


def _check_types(body: dict) -> None:
    """The types of the fields the server reads (values are checked by Service.prepare)."""
    numbers = {"temperature": (0, 2), "top_p": (0, 1)}
    for key, (low, high) in numbers.items():
        value = body.get(key)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not low <= value <= high
            or (key == "top_p" and value == 0)
        ):
            raise RequestError(
                400, f"{key}={value!r}: must be a number in {'(' if key == 'top_p' else '['}{low}, {high}]", key
            )
    for key in ("max_tokens", "max_completion_tokens", "n", "seed"):
        value = body.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or (key != "seed" and value < 1)
        ):
            raise RequestError(
                400, f"{key}={value!r}: must be a whole number" + ("" if key == "seed" else " >= 1"), key
            )
    if not isinstance(body.get("model"), str):
        raise RequestError(400, "model: required, the id of a served clone (GET /v1/models)", "model")
    if not isinstance(body.get("stream", False), bool):
        raise RequestError(400, "stream: must be true or false", "stream")
    if body.get("stream_options") is not None and not isinstance(body.get("stream_options"), dict):
        raise RequestError(400, "stream_options: must be an object", "stream_options")
    messages = body.get("messages")
    if isinstance(messages, list):
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                raise RequestError(
                    400, f"messages[{index}]: must be an object with role and content", f"messages[{index}]"
                )


class Reply:
    """A request's choices as they arrive from the scheduler, as one JSON response or as SSE chunks."""

    def __init__(self, n: int, model: str, body: dict, conversations: Any):
        self.id, self.created, self.model = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), model
        self.texts, self.finish, self.tokens = [""] * n, [None] * n, [0] * n
        self.body, self.conversations = body, conversations

    def take(self, event: tuple) -> None:
        if event[0] == "delta":
            self.texts[event[1]] += event[2]
        elif event[0] == "finish":
            self.finish[event[1]], self.tokens[event[1]] = event[2], event[3]

    def usage(self, prompt_tokens: int) -> dict:
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": sum(self.tokens),
            "total_tokens": prompt_tokens + sum(self.tokens),
        }

    def record(self) -> None:
        if self.conversations is not None:
            self.conversations(
                {
                    "id": self.id,
                    "model": self.model,
                    "time": self.created,
                    "messages": self.body.get("messages"),
                    "replies": self.texts,
                    "finish_reasons": self.finish,
                }
            )

    async def collect(self, events: asyncio.Queue, job: Any, request: Request) -> dict:
        try:
            while True:
                try:
                    event = await asyncio.wait_for(events.get(), WAIT_POLL_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        job.cancel()
                        return {}
                    continue
                if event[0] == "error":
                    raise RequestError(500, event[1], None, None, "server_error")
                if event[0] == "done":
                    break
                self.take(event)
        finally:
            job.cancel()  # a no-op once done; stops the generation when the handler is cancelled
        self.record()
        choices = [
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": reason, "logprobs": None}
            for i, (text, reason) in enumerate(zip(self.texts, self.finish))
        ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self.usage(len(job.prompt_ids)),
        }

    def chunk(self, choices: list[dict], **extra: Any) -> str:
        data = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    async def stream(self, events: asyncio.Queue, job: Any, include_usage: bool) -> AsyncIterator[str]:
        """SSE: a role chunk per choice, content deltas, a finish chunk per choice, (usage), `data: [DONE]`. A
        client that disconnects closes this generator, which cancels the job: its rows leave the batch."""
        try:
            for i in range(job.n):
                yield self.chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            while True:
                event = await events.get()
                if event[0] == "done":
                    break
                if event[0] == "error":
                    error = RequestError(500, event[1], None, None, "server_error").body()
                    yield f"event: error\ndata: {json.dumps(error)}\n\n"
                    return
                self.take(event)
                if event[0] == "delta":
                    yield self.chunk([{"index": event[1], "delta": {"content": event[2]}, "finish_reason": None}])
                else:
                    yield self.chunk([{"index": event[1], "delta": {}, "finish_reason": event[2]}])
            self.record()
            if include_usage:
                yield self.chunk([], usage=self.usage(len(job.prompt_ids)))
            yield "data: [DONE]\n\n"
        finally:
            job.cancel()
