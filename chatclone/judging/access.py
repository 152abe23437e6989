"""Who may judge. A request from loopback (127.0.0.0/8, ::1) needs nothing and may vote under any name. Any other
needs either the judge's personal token, which lets it vote as that judge only, or the server's API key as
`Authorization: Bearer <key>` (checked by the server's own check when one is given), which lets it vote as anyone.

A judge's token is an HMAC-SHA256 of the name with the judging run's `secret` file: links can be printed again at
any time (the same name gives the same link), the database holds no tokens, and deleting `secret` (then making a
new one) revokes every link. Anyone holding a link can vote as that judge: send each judge only their own.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from chatclone.errors import ChatcloneError
from chatclone.judging.pairs import SECRET

TOKEN_CHARS = 32  # hex characters of the HMAC kept in a link (128 bits)
ApiKeyCheck = Callable[[object], bool]  # the server's check: request -> whether it carries the API key


def read_secret(judging_dir: Path) -> bytes:
    path = Path(judging_dir) / SECRET
    if not path.is_file():
        raise ChatcloneError(f"no {SECRET} file: not a prepared judging run dir", judging_dir)
    return path.read_text(encoding="utf-8").strip().encode()


def judge_token(secret: bytes, judge: str) -> str:
    return hmac.new(secret, judge.encode("utf-8"), hashlib.sha256).hexdigest()[:TOKEN_CHARS]


def token_valid(secret: bytes, judge: str, token: object) -> bool:
    return isinstance(token, str) and hmac.compare_digest(judge_token(secret, judge), token)


def judge_links(judging_dir: Path, judges: list[str], base_url: str, path: str = "/judge") -> dict[str, str]:
    """Each judge's personal link: `<base_url>/judge?judge=<name>&token=<token>`."""
    secret = read_secret(judging_dir)
    return {
        j: f"{base_url.rstrip('/')}{path}?{urlencode({'judge': j, 'token': judge_token(secret, j)})}" for j in judges
    }


def is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bearer_check(api_key: str | ApiKeyCheck | None) -> ApiKeyCheck:
    """The API-key check as a callable: the server's own (a plain function of the request, true when it carries
    the key; one that raises counts as false), or one comparing `Authorization: Bearer <key>` with `api_key` in
    constant time; None = no key (only loopback and tokens let anyone in)."""
    if api_key is None:
        return lambda request: False
    if callable(api_key):

        def server_check(request) -> bool:
            try:
                return bool(api_key(request))
            except Exception:  # a check that refuses by raising (an HTTPException): no key; a token may still do
                return False

        return server_check

    expected = f"Bearer {api_key}".encode()

    def check(request) -> bool:
        return hmac.compare_digest(request.headers.get("authorization", "").encode(), expected)

    return check
