"""The cluster's shared node secret: what a node shows to another node's control API.

From `[cluster] node_secret` (or `CLASSROOM_CLUSTER__NODE_SECRET`), else from the file `node-secret` in
the data folder (owner-only, one line). A node that has neither refuses to start its control API:
there is no default secret. Compared in constant time."""

from __future__ import annotations

import hmac
from pathlib import Path

SECRET_FILE = "node-secret"
MIN_LENGTH = 16


class NodeSecretMissing(RuntimeError):
    """No node secret is configured: the control API stays shut."""


def load_node_secret(configured: str, data_dir: Path) -> str:
    """The configured secret, else the data folder's `node-secret` file; refused if absent or short."""
    secret = configured.strip()
    path = data_dir / SECRET_FILE
    if not secret and path.is_file():
        secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise NodeSecretMissing(f"no node secret: set [cluster] node_secret (CLASSROOM_CLUSTER__NODE_SECRET) "
                                f"or write one line to {path}, the same on every node")
    if len(secret) < MIN_LENGTH:
        raise NodeSecretMissing(f"the node secret has {len(secret)} characters; use at least {MIN_LENGTH}")
    return secret


def secret_matches(presented: str | None, secret: str) -> bool:
    """Whether `presented` is the secret, compared in constant time (None never matches)."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), secret.encode())


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, or None."""
    if not header or not header.startswith("Bearer "):
        return None
    return header[len("Bearer "):].strip()
