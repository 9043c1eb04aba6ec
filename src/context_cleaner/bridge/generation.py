"""The write generation: a token beside an embedded database that every writer replaces.

Two equal reads of the token mean no unit of work wrote in between, so a cache of
committed state keyed by it (the sync's stat cache) stays valid without opening the
engine. Servers have no token: their callers always open the database.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from context_cleaner.bridge.database import Database


def generation_path(database: Database) -> Path | None:
    """``<database dir>.generation`` beside an on-disk embedded database; else None."""
    lock = database.lock_path
    return None if lock is None else lock.with_name(Path(database.url.path).name + ".generation")


def read_generation(database: Database) -> str | None:
    """The token every :meth:`EnhancedTokenDatabaseBridge.writer` replaces before writing.

    Two equal reads mean no unit of work wrote in between (writers take it under the
    lock), so a cache of committed state keyed by it (the sync's stat cache) stays
    valid without opening the engine. ``""`` before the first write; None for servers.
    """
    path = generation_path(database)
    if path is None:
        return None
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        return ""
    except OSError:
        return None


def bump_generation(database: Database) -> None:
    """Replace the generation token atomically; when that fails, remove it (never leave it
    stale: an empty or missing token is never trusted by a cache)."""
    path = generation_path(database)
    if path is None:
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        # secrets.token_hex(16) without importing secrets (a no-op sync reads this module)
        tmp.write_text(os.urandom(16).hex() + "\n", encoding="ascii")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
