"""The judging page and its JSON API, for a FastAPI app (the web server mounts it with `mount_judging`):

    GET  /judge                        the page (a personal link adds ?judge=<name>&token=<token>)
    GET  /judge/api/next?judge=<name>  {judge, target, done, total, item: {id, context, a, b} | null when done}
    POST /judge/api/vote               {judge, item, choice: "a" | "b" | "cant_tell", token?} -> {recorded, done, total}

Errors are JSON, `{"error": {"message", "type", "param"}}` as the OpenAI API writes them, with the field at fault:
400 bad input, 401 no access (chatclone.judging.access), 404 unknown item, 409 a second vote on an item (the first
stands). Each judge gets the items they have not voted on, in an order of their own (a hash of name and item), so
that no item is always seen first; which reply is the clone's is never sent.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from chatclone import runs
from chatclone.config.judging import JudgingConfig, check_judge_name
from chatclone.errors import ChatcloneError
from chatclone.judging.access import ApiKeyCheck, bearer_check, is_loopback, judge_links, read_secret, token_valid
from chatclone.judging.page import render
from chatclone.judging.pairs import SOURCE_STAGE, STAGE, VOTES, load_items, prepare_judging, read_judging_run
from chatclone.judging.votes import CHOICES, DuplicateVote, read_votes, record_vote

PREFIX = "/judge"


class RequestError(Exception):
    def __init__(self, status: int, param: str | None, message: str):
        self.status, self.param, self.message = status, param, message
        super().__init__(message)


def error_response(e: RequestError) -> JSONResponse:
    kind = {
        401: "authentication_error",
        404: "not_found_error",
        409: "conflict_error",
        500: "server_error",
        503: "server_error",
    }.get(e.status, "invalid_request_error")
    return JSONResponse({"error": {"message": e.message, "type": kind, "param": e.param}}, status_code=e.status)


@dataclass
class Judging:
    """One judging run as the API serves it."""

    dir: Path
    check_key: ApiKeyCheck
    items: dict = field(init=False)
    target: str = field(init=False)
    secret: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.target = read_judging_run(self.dir).target
        self.items, self.secret = load_items(self.dir), read_secret(self.dir)

    def judge(self, request, name: object, token: object) -> str:
        """The judge's name, checked, if this request may vote under it (RequestError 400 / 401 otherwise)."""
        try:
            name = check_judge_name(name, "judge")
        except ChatcloneError as e:
            raise RequestError(400, "judge", str(e)) from None
        if is_loopback(request.client.host if request.client else None) or self.check_key(request):
            return name
        if token is None:
            raise RequestError(
                401,
                "token",
                "off loopback the judging page needs your personal link (its token) "
                "or the server's API key (Authorization: Bearer)",
            )
        if not token_valid(self.secret, name, token):
            raise RequestError(401, "token", f"this token is not {name}'s: use the link you were given")
        return name

    def order(self, judge: str) -> list[int]:
        return sorted(self.items, key=lambda i: hashlib.sha256(f"{judge}\n{i}".encode()).hexdigest())

    def next_item(self, judge: str) -> dict:
        voted = {v.item for v in read_votes(self.dir / VOTES, judge)}
        left = [i for i in self.order(judge) if i not in voted]
        item = self.items[left[0]].public() if left else None
        return {
            "judge": judge,
            "target": self.target,
            "done": len(self.items) - len(left),
            "total": len(self.items),
            "item": item,
        }

    def vote(self, judge: str, body: dict) -> dict:
        item, choice = body.get("item"), body.get("choice")
        if not isinstance(item, int) or isinstance(item, bool):
            raise RequestError(400, "item", f"item must be an item id (an integer), not {item!r}")
        if item not in self.items:
            raise RequestError(404, "item", f"no item {item} in this judging run")
        if choice not in CHOICES:
            raise RequestError(400, "choice", f"choice must be one of {', '.join(CHOICES)}, not {choice!r}")
        try:
            record_vote(self.dir / VOTES, judge, item, choice, self.items[item].clone)
        except DuplicateVote as e:
            raise RequestError(409, "item", str(e)) from None
        done = len({v.item for v in read_votes(self.dir / VOTES, judge)})
        return {"recorded": True, "done": done, "total": len(self.items)}


def judging_router(judging_dir: Path, api_key: str | ApiKeyCheck | None = None, prefix: str = PREFIX) -> APIRouter:
    """An APIRouter serving the judging run in `judging_dir` under `prefix`. `api_key`: the server's API key, or
    its check (a callable taking the request, true when it carries the key); None = loopback and tokens only."""
    judging = Judging(Path(judging_dir), bearer_check(api_key))
    router = APIRouter(prefix=prefix)

    async def handle(work):
        try:
            return await run_in_threadpool(work)
        except RequestError as e:
            return error_response(e)
        except ChatcloneError as e:  # the run dir broke under the server (a deleted file): say so, no traceback
            return error_response(RequestError(500, None, str(e)))
        except sqlite3.Error as e:  # still locked after votes.BUSY_TIMEOUT_S, or a damaged file
            return error_response(RequestError(503, None, f"the votes database cannot be used now ({e}); try again"))

    @router.get("", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request):
        q = request.query_params

        def work():
            if "judge" in q or "token" in q:
                judging.judge(request, q.get("judge"), q.get("token"))
            elif not (is_loopback(request.client.host if request.client else None) or judging.check_key(request)):
                raise RequestError(401, "token", "off loopback the judging page needs your personal link")
            return HTMLResponse(render(prefix))

        return await handle(work)

    @router.get("/api/next")
    async def next_item(request: Request):
        q = request.query_params
        return await handle(lambda: judging.next_item(judging.judge(request, q.get("judge"), q.get("token"))))

    @router.post("/api/vote")
    async def vote(request: Request):
        try:
            body = await request.json()
        except ValueError:
            return error_response(RequestError(400, None, "the body must be a JSON object: {judge, item, choice}"))
        if not isinstance(body, dict):
            return error_response(RequestError(400, None, "the body must be a JSON object: {judge, item, choice}"))
        return await handle(lambda: judging.vote(judging.judge(request, body.get("judge"), body.get("token")), body))

    return router


@dataclass(frozen=True)
class JudgingSession:
    dir: Path
    items: int
    links: dict[str, str]  # judge -> personal link


def open_judging(cfg: JudgingConfig, outputs_root: Path | str) -> Path | None:
    """The judging run dir `cfg` names: a new one under outputs_root/judging made from `judging.source`, or the
    existing `judging.run`; None when judging is off."""
    from chatclone.config import run_stamp

    cfg.check()
    if cfg.run is not None:
        return runs.resolve_input(cfg.run, Path(outputs_root), STAGE)
    if cfg.source is None:
        return None
    source = runs.resolve_input(cfg.source, Path(outputs_root), SOURCE_STAGE)
    return prepare_judging(source, Path(outputs_root) / STAGE / run_stamp(), cfg.seed).dir


def mount_judging(
    app,
    cfg: JudgingConfig,
    outputs_root: Path | str,
    base_url: str,
    api_key: str | ApiKeyCheck | None = None,
    out=print,
) -> JudgingSession | None:
    """The one call the web server makes: open (or prepare) the judging run `cfg` names, mount its page and API
    under /judge, and `out` the page's address and each judge's personal link. None (and nothing mounted) when
    judging is off."""
    judging_dir = open_judging(cfg, outputs_root)
    if judging_dir is None:
        return None
    app.include_router(judging_router(judging_dir, api_key))
    run = read_judging_run(judging_dir)
    links = judge_links(judging_dir, list(cfg.judges), base_url, PREFIX)
    out(
        f"judging page: {base_url.rstrip('/')}{PREFIX} ({run.items} items of {run.target}'s; votes in "
        f"{judging_dir / VOTES}; python judge_report.py run={judging_dir})"
    )
    for judge, link in links.items():
        out(f"  {judge}: {link}")
    return JudgingSession(judging_dir, run.items, links)
