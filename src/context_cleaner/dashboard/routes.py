"""The JSON API of the dashboard (``/api/...``): thin, one unit of work per request.

Every endpoint checks its query string with :func:`parse_filters` (a bad or
unknown parameter is a 400 naming it), then asks the source inside one
``source.unit()`` (one database session for the whole request), through
:class:`~context_cleaner.dashboard.answers.Answers`: equal concurrent requests
share one read, and while a writer has the database the last answer is served,
marked stale. Every answer has ``stale`` and ``as_of`` (and ``busy`` when stale).

==============================  ====================================================
``GET /api/info``               source, where it reads, banner (direct mode)
``GET /api/totals``             ``{"totals": {...}, "sessions": n}`` (DESIGN §10 shape)
``GET /api/overview``           totals, sessions, by day/model/project/host, menus
``GET /api/breakdown/{dim}``    day, model, project, host or session; limit/offset
``GET /api/sessions``           one page of sessions: search, order, direction,
                                limit/offset, and the ``total`` matching
``GET /api/runs``               recent migration runs with progress and validation
``GET /api/validation``         the latest validation result (or null)
``GET /api/freshness``          data lag, last sync, tracked files behind
``GET /api/alerts``             alerts from runs and freshness (a list)
``GET /api/health``             runs, validation, freshness and alerts at once
``GET /api/report/{kind}``      ``report KIND --json``'s document (``report_api.py``)
==============================  ====================================================

Filters everywhere they apply: ``start``, ``end`` (YYYY-MM-DD or YYYYMMDD, days in
``timezone``), ``timezone`` (IANA name, default UTC: the reports' rule, so the counts,
sessions and rankings agree with ``/api/report/*`` asked the same), ``model``,
``project``, ``host``, ``search`` (part of a session id or project).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from context_cleaner.dashboard.answers import Answers
from context_cleaner.dashboard.filters import (
    FILTER_PARAMS,
    PAGING_PARAMS,
    InvalidFilterError,
    Page,
    QueryFilters,
    check_dimension,
    parse_filters,
)
from context_cleaner.dashboard.sources import DashboardSource

router = APIRouter(prefix="/api")

BREAKDOWN_LIMIT = 100
"""Rows per breakdown on the overview (days are all returned)."""
RUNS_LIMIT = 10


def _source(request: Request) -> DashboardSource:
    return request.app.state.source  # type: ignore[no-any-return]


def _answer(request: Request, read: Callable[[DashboardSource], dict[str, Any]]) -> dict[str, Any]:
    """``read(source)`` inside one unit of work, shared and kept by the app's answers."""
    source = _source(request)
    answers: Answers = request.app.state.answers
    params = sorted((k, v) for k, v in request.query_params.items() if k != "token")
    question = request.url.path + "?" + "&".join(f"{k}={v}" for k, v in params)

    def read_now(wait: float | None) -> dict[str, Any]:
        with source.unit(wait):
            return read(source)

    return answers.get(question, read_now)


def _filters(request: Request, allowed: tuple[str, ...]) -> QueryFilters:
    params = request.query_params
    repeated = sorted({k for k in params if len(params.getlist(k)) > 1})
    if repeated:
        raise InvalidFilterError(f"Give each parameter once; repeated: {', '.join(repeated)}.")
    return parse_filters(dict(params), allowed=allowed)


def _runs_limit(request: Request) -> int:
    limit = _filters(request, ("limit",)).limit
    return limit if "limit" in request.query_params else RUNS_LIMIT


@router.get("/info")
def info(request: Request) -> dict[str, Any]:
    _filters(request, ())
    return _answer(request, lambda source: source.describe())


@router.get("/totals")
def totals(request: Request) -> dict[str, Any]:
    f = _filters(request, FILTER_PARAMS)
    return _answer(
        request,
        lambda source: {
            "totals": source.totals(f),
            "sessions": source.count_sessions(f),
            "filters": f.echo(),
        },
    )


@router.get("/overview")
def overview(request: Request) -> dict[str, Any]:
    f = _filters(request, FILTER_PARAMS)

    def read(source: DashboardSource) -> dict[str, Any]:
        out = source.overview(f, BREAKDOWN_LIMIT)
        out.update(options=source.options(), filters=f.echo())
        return out

    return _answer(request, read)


@router.get("/breakdown/{dimension}")
def breakdown(request: Request, dimension: str) -> dict[str, Any]:
    check_dimension(dimension)
    f = _filters(request, FILTER_PARAMS + PAGING_PARAMS)
    paged = "limit" in request.query_params or "offset" in request.query_params
    order = f.order if "order" in request.query_params else _default_order(dimension)

    def read(source: DashboardSource) -> dict[str, Any]:
        page = Page(f.limit if paged else None, f.offset, order, f.page().descending)
        items = source.breakdown(dimension, f, page)
        return {"dimension": dimension, "items": items, "filters": f.echo()}

    return _answer(request, read)


def _default_order(dimension: str) -> str:
    return "key" if dimension == "day" else "total_tokens"


@router.get("/sessions")
def sessions(request: Request) -> dict[str, Any]:
    f = _filters(request, FILTER_PARAMS + PAGING_PARAMS)
    return _answer(
        request,
        lambda source: {
            "total": source.count_sessions(f),
            "limit": f.limit,
            "offset": f.offset,
            "order": f.order,
            "direction": f.direction or "desc",
            "items": source.breakdown("session", f, f.page()),
            "filters": f.echo(),
        },
    )


@router.get("/runs")
def runs(request: Request) -> dict[str, Any]:
    limit = _runs_limit(request)
    return _answer(request, lambda source: {"runs": source.health(limit)["runs"]})


@router.get("/validation")
def validation(request: Request) -> dict[str, Any]:
    return _health_part(request, "validation")


@router.get("/freshness")
def freshness(request: Request) -> dict[str, Any]:
    return _health_part(request, "freshness")


@router.get("/alerts")
def alerts(request: Request) -> dict[str, Any]:
    return _health_part(request, "alerts")


def _health_part(request: Request, part: str) -> dict[str, Any]:
    """One part of ``/health`` (these endpoints take no query parameters)."""
    _filters(request, ())
    return _answer(request, lambda source: {part: source.health(1)[part]})


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    limit = _runs_limit(request)
    return _answer(request, lambda source: source.health(limit))
