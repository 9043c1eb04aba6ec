"""The exact totals a correct analyser must report for a generated corpus.

The generator calls :meth:`ExpectedUsage.add` for every usage record it writes
(assistant lines and usage embedded in ``progress`` lines) and
:meth:`ExpectedUsage.result` computes the de-duplicated totals with the rules of
DESIGN.md §3:

* key = (``message.id``, ``requestId``); every record the generator writes has both;
* per key keep one record: a non-sidechain one over a sidechain one, then the
  larger input+output+cache_creation+cache_read, then the earliest
  (timestamp, file path, byte offset);
* a kept sidechain record whose ``message.id`` also appears on a non-sidechain
  record is dropped (a replay under a new request id).

Totals, days and models never depend on the path tie-break (the only exact ties
the generator writes are byte-identical copies in resumed sessions, which share
timestamp and day). Per-session totals do: a record copied into a resumed
session counts for whichever of the two files wins the tie. ``sessions`` here
uses the plain string order of the ``/``-separated path relative to
``projects/``; compare the sessions of each ``session_groups`` entry (sessions
linked by resuming) by their sum, the others one by one.
"""

from __future__ import annotations

from typing import NamedTuple

TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "cache_read_tokens",
    "total_tokens",
)


class UsageLine(NamedTuple):
    """One usage record as written to disk."""

    message_id: str
    request_id: str
    is_sidechain: bool
    input_tokens: int
    output_tokens: int
    cache_creation_5m: int
    cache_creation_1h: int
    cache_read: int
    timestamp: str
    """ISO timestamp with milliseconds and ``Z``: string order is time order."""
    path: str
    """File path relative to ``projects/``, ``/``-separated."""
    offset: int
    session: str
    """The file's session (stem of the session file, or its folder for subagents)."""
    model: str
    from_progress: bool

    @property
    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_5m
            + self.cache_creation_1h
            + self.cache_read
        )


def _better(a: UsageLine, b: UsageLine) -> bool:
    """True when ``a`` wins over ``b`` under rule 3 (no generated line has ``speed``)."""
    if a.is_sidechain != b.is_sidechain:
        return not a.is_sidechain
    ta, tb = a.total, b.total
    if ta != tb:
        return ta > tb
    return (a.timestamp, a.path, a.offset) < (b.timestamp, b.path, b.offset)


def _zero() -> list[int]:
    return [0] * len(TOKEN_KEYS)


def _add_into(acc: list[int], u: UsageLine) -> None:
    cc = u.cache_creation_5m + u.cache_creation_1h
    acc[0] += u.input_tokens
    acc[1] += u.output_tokens
    acc[2] += cc
    acc[3] += u.cache_creation_5m
    acc[4] += u.cache_creation_1h
    acc[5] += u.cache_read
    acc[6] += u.input_tokens + u.output_tokens + cc + u.cache_read


def _as_dict(acc: list[int]) -> dict[str, int]:
    return dict(zip(TOKEN_KEYS, acc, strict=True))


class ExpectedUsage:
    """Accumulates usage records and computes the exact de-duplicated totals."""

    def __init__(self) -> None:
        self._best: dict[tuple[str, str], UsageLine] = {}
        self._main_message_ids: set[str] = set()
        self._naive = _zero()
        self.usage_lines = 0
        self.progress_usage_lines = 0
        self.sidechain_usage_lines = 0

    def add(self, u: UsageLine) -> None:
        self.usage_lines += 1
        if u.from_progress:
            self.progress_usage_lines += 1
        if u.is_sidechain:
            self.sidechain_usage_lines += 1
        else:
            self._main_message_ids.add(u.message_id)
        _add_into(self._naive, u)
        key = (u.message_id, u.request_id)
        old = self._best.get(key)
        if old is None or _better(u, old):
            self._best[key] = u

    def result(self) -> dict[str, object]:
        totals = _zero()
        days: dict[str, list[int]] = {}
        models: dict[str, list[int]] = {}
        sessions: dict[str, list[int]] = {}
        dropped = 0
        kept = 0
        for u in self._best.values():
            if u.is_sidechain and u.message_id in self._main_message_ids:
                dropped += 1
                continue
            kept += 1
            _add_into(totals, u)
            _add_into(days.setdefault(u.timestamp[:10], _zero()), u)
            _add_into(models.setdefault(u.model, _zero()), u)
            _add_into(sessions.setdefault(u.session, _zero()), u)
        return {
            "usage_lines": self.usage_lines,
            "progress_usage_lines": self.progress_usage_lines,
            "sidechain_usage_lines": self.sidechain_usage_lines,
            "unique_keys": len(self._best),
            "kept_records": kept,
            "dropped_sidechain_replays": dropped,
            "totals": _as_dict(totals),
            "naive_sum_of_all_lines": _as_dict(self._naive),
            "days": [{"date": d, **_as_dict(days[d])} for d in sorted(days)],
            "models": [{"model": m, **_as_dict(models[m])} for m in sorted(models)],
            "sessions": [{"session_id": s, **_as_dict(sessions[s])} for s in sorted(sessions)],
        }
