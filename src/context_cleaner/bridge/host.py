"""Who writes a row: this machine's name and the user, stamped on usage and run rows.

Apart from :mod:`~context_cleaner.bridge.details` so that a ``sync`` with nothing new,
which needs the host to find its stat cache, imports neither the record types nor
their decoder.
"""

from __future__ import annotations

import os
import socket

from context_cleaner.settings import HOST_ENV


def default_host() -> str:
    """This machine's name on its rows: ``$CONTEXT_CLEANER_HOST`` when set, else the hostname."""
    return os.environ.get(HOST_ENV, "").strip() or socket.gethostname()


def default_user() -> str:
    import getpass  # (it imports termios: not on the path of a sync with nothing new)

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return ""
