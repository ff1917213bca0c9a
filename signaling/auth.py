"""Access to the REST API: a bearer token checked in constant time.

The administrator's token is generated on first start and kept in the data folder with owner-only
permissions; `/healthz` and the pages stay open.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path

from aiohttp import web

from signaling.rest import Handler, error

log = logging.getLogger(__name__)

OPEN_PATHS = ("/healthz",)


def load_or_create_token(path: Path, configured: str = "") -> str:
    """The configured token, or the one stored at `path`, or a new one written there with mode 0600."""
    if configured:
        return configured
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    log.info("generated the administrator token in %s", path)
    return token


def token_middleware(token: str) -> web.middleware:  # type: ignore[valid-type]
    expected = token.encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        given = header[7:].strip().encode() if header.lower().startswith("bearer ") else b""
        if not given or not hmac.compare_digest(given, expected):
            log.warning("refused %s %s from %s: bad or missing token", request.method, request.path, request.remote)
            return error(401, "missing or wrong access token (Authorization: Bearer <token>)")
        request["actor"] = "admin"
        return await handler(request)

    return check
