"""Test-only launcher: a FastAPI app with only the judging page mounted (chatclone.judging.router.mount_judging,
the call the web server makes), served by uvicorn on the given host:port sockets until killed. The printed links
go to stdout, then `serving` once the sockets listen.

    python -m tests.judging_server <judging run dir> <base url> <api key> <judge,judge> <host:port> [<host:port> ...]
"""

from __future__ import annotations

import socket
import sys

import uvicorn
from fastapi import FastAPI

from chatclone.config.judging import JudgingConfig
from chatclone.judging.router import mount_judging


def listen(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them: ready once "serving" is printed
    return sock


def main(judging_dir: str, base_url: str, api_key: str, judges: str, *addresses: str) -> None:
    app = FastAPI()
    mount_judging(
        app,
        JudgingConfig(run=judging_dir, judges=judges.split(",")),
        "unused-outputs-root",
        base_url,
        api_key=api_key,
        out=lambda line: print(line, flush=True),
    )
    sockets = [listen(a) for a in addresses]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    print("serving", flush=True)
    server.run(sockets=sockets)


if __name__ == "__main__":
    main(*sys.argv[1:])
