"""The administrator's bearer token: generated on first start and kept in the data folder with owner-only
permissions. It is checked (in constant time) by `signaling.http.auth_middleware`, beside logins.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)


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
