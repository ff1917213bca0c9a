"""Owner-only data: the data folder 0700, the database (and its -wal/-shm), keys and tokens 0600.

The process starts with umask 077 so everything it creates is owner-only; at start `secure_data` checks
what is already there, tightens what it can and warns clearly about the rest. The rule (`too_open`) is
pure; `secure_data` is the thin shell around chmod and the log.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("classroom")

FOLDER_MODE = 0o700
FILE_MODE = 0o600
SECRET_FILES = ("signing-key", "admin-token", "demo-accounts.txt")


def too_open(mode: int) -> bool:
    """Whether a file or folder with `mode` lets other local users (group or others) in at all."""
    return bool(stat.S_IMODE(mode) & 0o077)


def data_files(data: Path, database: Path) -> list[tuple[Path, int, bool]]:
    """What must be owner-only: (path, the mode it should have, whether to tighten it or only warn).
    Files that do not exist are left out. A database configured outside the data folder has its folder
    checked but never changed: it may be shared with other things."""
    wanted: list[tuple[Path, int, bool]] = [(data, FOLDER_MODE, True)]
    if database.parent != data:
        wanted.append((database.parent, FOLDER_MODE, False))
    for suffix in ("", "-wal", "-shm", "-journal"):
        wanted.append((database.with_name(database.name + suffix), FILE_MODE, True))
    wanted += [(data / name, FILE_MODE, True) for name in SECRET_FILES]
    return [(path, mode, tighten) for path, mode, tighten in wanted if path.exists()]


def secure_data(files: Iterable[tuple[Path, int, bool]]) -> list[str]:
    """Make each of `files` owner-only (or only warn); returns the warnings it logged."""
    warnings = []
    for path, mode, tighten in files:
        current = stat.S_IMODE(path.stat().st_mode)
        if not too_open(current):
            continue
        if not tighten:
            text = (f"{path} (the database's folder) is {current:04o}: other local users can list it; "
                    f"consider chmod {mode:o} {path}")
            log.warning("%s", text)
            warnings.append(text)
            continue
        try:
            os.chmod(path, mode)
        except OSError as exc:
            text = (f"{path} is {current:04o}: other local users can read it (password hashes, audit trail, device "
                    f"ids); it could not be changed ({exc.strerror}): run chmod {mode:o} {path}")
        else:
            text = (f"{path} was {current:04o}, readable by other local users (password hashes, audit trail, "
                    f"device ids); it is now {mode:04o}")
        log.warning("%s", text)
        warnings.append(text)
    return warnings


def owner_only_umask() -> None:
    """Everything this process creates from now on is owner-only (files 0600, folders 0700)."""
    os.umask(0o077)
