"""Password hashing with scrypt (a memory-hard standard KDF in the standard library).

Stored form: `scrypt$n$r$p$salt_b64$hash_b64`, so the cost can be raised later without breaking old hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1  # ~16 MiB and ~50 ms per check: slow for guessing, fine for a login
MIN_LENGTH = 8


class WeakPassword(ValueError):
    pass


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(want)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def dummy_verify(password: str) -> None:
    """Spend the same time for an unknown user, so timing does not tell which usernames exist."""
    verify_password(password, _DUMMY)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


_DUMMY = f"scrypt${_N}${_R}${_P}${_b64(b'0' * 16)}${_b64(b'0' * 32)}"
