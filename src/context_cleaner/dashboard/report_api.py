"""``GET /api/report/{daily|weekly|monthly|session|blocks}``: the CLI's reports on the dashboard.

The parameters are ``report``'s flags (``since``, ``until``, ``timezone``,
``start_of_week``, ``project``, ``model``, ``host``, ``breakdown``, ``order``,
``last``, and ``token_limit`` for blocks), checked by the same rules
(:mod:`context_cleaner.analysis.report_values`): a bad or unknown one is a 400
naming it. The answer is exactly the document of ``context-cleaner report KIND
--json`` over the dashboard's source (the database, or the transcripts in direct
mode), plus ``stale`` and ``as_of`` like every answer of the API: it is read inside
one ``source.unit()`` and shared or kept by
:class:`~context_cleaner.dashboard.answers.Answers`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from context_cleaner.analysis.report_values import (
    calendar_day,
    timezone_name,
    token_limit_value,
    weekday_number,
    whole_number,
)
from context_cleaner.dashboard.answers import Answers
from context_cleaner.dashboard.filters import AUTH_PARAMS, InvalidFilterError, parse_filters
from context_cleaner.dashboard.sources import DashboardSource

if TYPE_CHECKING:
    from context_cleaner.analysis.periods import ReportQuery
    from context_cleaner.analysis.records import UsageRecord

# The report modules are imported on the first report request, not at start-up (the
# period rules bring in the whole counter).

router = APIRouter(prefix="/api/report")

PARAMS = (
    "since",
    "until",
    "timezone",
    "start_of_week",
    "project",
    "model",
    "host",
    "breakdown",
    "order",
    "last",
    "token_limit",
)
_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off", "")
_CHECKS: dict[str, Callable[[str], object]] = {
    "since": calendar_day,
    "until": calendar_day,
    "timezone": timezone_name,
    "start_of_week": weekday_number,
    "last": lambda text: whole_number(text, 1),
    "token_limit": token_limit_value,
}


def parse_report_query(kind: str, params: Mapping[str, str]) -> ReportQuery:
    """The :class:`ReportQuery` a request asks for; :class:`InvalidFilterError` names a bad
    parameter (the same rules as the CLI's flags)."""
    from context_cleaner.analysis.periods import REPORTS, ReportQuery

    if kind not in REPORTS:
        raise InvalidFilterError(f"Unknown report {kind!r}; use one of {', '.join(REPORTS)}.")
    allowed = PARAMS if kind == "blocks" else PARAMS[:-1]
    unknown = sorted(set(params) - set(allowed) - set(AUTH_PARAMS))
    if unknown:
        only = " (token_limit is for blocks only)" if "token_limit" in unknown else ""
        raise InvalidFilterError(
            f"Unknown query parameter(s) {', '.join(unknown)}{only}; this endpoint accepts "
            f"{', '.join(allowed)}."
        )
    values: dict[str, Any] = {"kind": kind}
    for name, check in _CHECKS.items():
        if name in params:
            try:
                values[name] = check(params[name])
            except ValueError as exc:
                raise InvalidFilterError(f"{name}: {exc}.") from None
    texts = parse_filters(
        {k: params[k] for k in ("project", "model", "host") if k in params},
        allowed=("project", "model", "host"),
    )
    values.update(project=texts.project, model=texts.model, host=texts.host)
    if "breakdown" in params:
        flag = params["breakdown"].strip().lower()
        if flag not in _YES + _NO:
            raise InvalidFilterError(
                f"breakdown: {params['breakdown']!r} is not a yes or no (allowed: 1, true, 0, "
                "false)."
            )
        values["breakdown"] = flag in _YES
    if "order" in params:
        if params["order"] not in ("asc", "desc"):
            raise InvalidFilterError(f"order: {params['order']!r} is not asc or desc.")
        values["order"] = params["order"]
    since, until = values.get("since"), values.get("until")
    if isinstance(since, date) and isinstance(until, date) and since > until:
        raise InvalidFilterError(f"since {since} is after until {until}; swap them or drop one.")
    return ReportQuery(**values)


def _question(query: ReportQuery) -> str:
    """The request as checked values: ``since=20260211`` and ``since=2026-02-11`` share."""
    parts = [f"{k}={getattr(query, k)}" for k in PARAMS if getattr(query, k) is not None]
    return f"/api/report/{query.kind}?" + "&".join(parts)


class _TranscriptRecords:
    """The counted records of a direct source's transcripts, read again only when they
    changed (the source's own fingerprint of the files says so)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: weakref.WeakKeyDictionary[Any, tuple[object, list[UsageRecord]]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, source: Any) -> list[UsageRecord]:
        from context_cleaner.analysis.discovery import discover, resolve_roots
        from context_cleaner.analysis.scan import scan_files_parallel

        with self._lock:
            fingerprint = source.snapshot().fingerprint
            kept = self._kept.get(source)
            if kept is not None and kept[0] == fingerprint:
                return kept[1]
            found = discover(resolve_roots(source.source_dirs or None))
            records = scan_files_parallel(found.files, workers=source.workers).collector.records()
            self._kept[source] = (fingerprint, list(records))
            return self._kept[source][1]


_RECORDS = _TranscriptRecords()


def read_report(source: DashboardSource, query: ReportQuery) -> dict[str, Any]:
    """``query``'s report from ``source`` (inside its ``unit()``): the CLI's JSON document.

    A database that has no usage yet gives an empty report (the dashboard never fails
    for that, it says so elsewhere)."""
    from context_cleaner.analysis.periods import cells_from_records
    from context_cleaner.analysis.report_rows import build_report

    if source.kind == "direct":
        cells = cells_from_records(
            _RECORDS.get(source),
            query,
            source.prices,  # type: ignore[attr-defined]
            host=source.host,  # type: ignore[attr-defined]
        )
        return build_report(query, cells, source="transcripts")
    if not source.describe()["initialised"]:
        return build_report(query, [], source="database")
    # Sessions do not depend on the timezone unless days are filtered: asked in UTC, the
    # database answers them from its rollup instead of the usage rows (the page asks
    # for them on every load, in the browser's zone).
    asked = query
    if query.kind == "session" and query.since is None and query.until is None:
        asked = replace(query, timezone="UTC")
    # The request's unit of work already holds the database session; the bridge reuses it.
    payload = source.bridge.report(asked)  # type: ignore[attr-defined]
    payload["timezone"] = query.timezone
    return payload


@router.get("/{kind}")
def report(request: Request, kind: str) -> dict[str, Any]:
    params = request.query_params
    repeated = sorted({k for k in params if len(params.getlist(k)) > 1})
    if repeated:
        raise InvalidFilterError(f"Give each parameter once; repeated: {', '.join(repeated)}.")
    query = parse_report_query(kind, dict(params))
    source: DashboardSource = request.app.state.source
    answers: Answers = request.app.state.answers

    def read_now(wait: float | None) -> dict[str, Any]:
        with source.unit(wait):
            return read_report(source, query)

    return answers.get(_question(query), read_now)
