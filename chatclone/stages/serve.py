"""serve: one or more clones behind an OpenAI-compatible API and a web chat page, until Ctrl-C.

Every clone is found and checked before any weights load; the key rule (a non-loopback host needs an api key) is
checked before that. The run dir holds the log (no chat text: requests are logged by method, path and status), and
conversations.jsonl only with log_conversations=true; manifest.json is written at shutdown with the request counts.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from chatclone import logs, runs
from chatclone.config.generation import CloneStageConfig, clone_settings
from chatclone.config.serve import ServeConfig
from chatclone.errors import ChatcloneError
from chatclone.generation import running
from chatclone.generation.clone import CloneSpec, locate

STAGE = "serve"
CONVERSATIONS = "conversations.jsonl"
REDACTED = "<redacted>"


def clone_config(cfg: ServeConfig, run: str) -> CloneStageConfig:
    """How inference.py would find and load the clone in `run` with the server's settings."""
    return clone_settings(cfg, run)


def locate_clones(cfg: ServeConfig) -> list[CloneSpec]:
    specs = []
    for index, run in enumerate(cfg.clones):
        try:
            specs.append(locate(clone_config(cfg, str(run))))
        except ChatcloneError as error:
            raise ChatcloneError(f"clones[{index}]={run}: {error}") from None
    return specs


def partner_of(spec: CloneSpec, cfg: ServeConfig) -> str:
    partner = cfg.user_name or running.partners(spec, [], 1)[0]
    if partner.casefold() == spec.target.casefold():
        raise ChatcloneError(f"user_name={partner} is the target of {spec.run_dir}: the clone answers its partners")
    return partner


class ConversationLog:
    """conversations.jsonl in the run dir, one request and its replies a line (log_conversations=true only)."""

    def __init__(self, run_dir: Path):
        self.path, self.lock = runs.new_file(run_dir, CONVERSATIONS), threading.Lock()

    def __call__(self, record: dict) -> None:
        with self.lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), so the address is known before the server runs."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        raise ChatcloneError(f"host={host} port={port}: cannot listen there ({error.strerror or error})") from None
    return sock


def reachable(host: str) -> str:
    """The address to put in links for others: this machine's LAN address when listening on every interface."""
    if host not in ("0.0.0.0", "[::]"):
        return host
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return host


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(cfg: ServeConfig, run_dir: Path, console: Console | None = None) -> dict:
    """Serve `cfg.clones` until interrupted; returns the summary written to the manifest."""
    import uvicorn

    from chatclone.judging.router import mount_judging
    from chatclone.serving.api import create_app
    from chatclone.serving.service import Service

    console = console or logs.console(sys.stderr)
    cfg.check()
    specs = locate_clones(cfg)
    partners = [partner_of(spec, cfg) for spec in specs]
    sock = listen(cfg.host, cfg.port)
    clones = [running.load(spec, clone_config(cfg, str(spec.run_dir)), console) for spec in specs]
    service = Service(cfg, clones, partners)
    log = ConversationLog(run_dir) if cfg.log_conversations else None
    app = create_app(service, cfg.resolved_api_key(), log)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(
        f"serving {', '.join(service.models)} at http://{shown}:{port}/ (OpenAI API: http://{shown}:{port}/v1)",
        flush=True,
    )
    mount_judging(
        app,
        cfg.judging,
        cfg.outputs_root,
        base_url=f"http://{reachable(shown)}:{port}",
        api_key=cfg.resolved_api_key(),
        out=lambda line: print(line, flush=True),
    )
    service.scheduler.start()
    signal.signal(signal.SIGTERM, _interrupt)  # uvicorn re-raises the signal that stopped it, once it has stopped
    try:
        uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=True, timeout_graceful_shutdown=5)).run(
            sockets=[sock]
        )
    except KeyboardInterrupt:
        pass
    finally:
        service.scheduler.close()
    summary = {
        "models": {name: m.card() for name, m in service.models.items()},
        **{k: v for k, v in service.scheduler.stats.items() if k != "running"},
    }
    outputs = [str(log.path)] if log else []
    runs.finish_run(
        run_dir,
        STAGE,
        replace(cfg, api_key=REDACTED if cfg.api_key else None),
        inputs=[str(s.run_dir) for s in specs],
        outputs=outputs,
        summary=summary,
    )
    return summary
