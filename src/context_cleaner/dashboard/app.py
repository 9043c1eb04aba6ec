"""The dashboard's FastAPI application: the API, the page, access control, error mapping.

``create_app(source, token=...)`` is the whole surface: routes parse and
check input, ask the :class:`~context_cleaner.dashboard.sources.DashboardSource`,
and turn the package's errors into JSON ``{"error": message}`` with a status:
400 for a bad filter, 503 when the database is busy or unreachable (try
again), 500 otherwise. While a writer has the embedded database, a question
answered before gets that answer marked stale (``dashboard/answers.py``).

Access: with a token, every request (page, files, API) must carry it, as
``Authorization: Bearer <token>``, as ``?token=<token>`` (how the page is first
opened), or as the cookie set when the page was opened with it. Without a
token the dashboard listens on loopback only, and ``allowed_hosts`` rejects
requests whose ``Host`` is not a loopback name (so a web page cannot reach it
through DNS rebinding).
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from context_cleaner.dashboard.answers import Answers
from context_cleaner.dashboard.filters import InvalidFilterError
from context_cleaner.dashboard.report_api import router as report_router
from context_cleaner.dashboard.routes import router
from context_cleaner.dashboard.sources import DashboardSource
from context_cleaner.errors import ContextCleanerError, TransientError
from context_cleaner.version import __version__

STATIC_DIR = Path(__file__).with_name("static")
COOKIE = "context_cleaner_dashboard"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

Handler = Callable[[Request], Awaitable[Response]]


def _supplied_token(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.query_params.get("token") or request.cookies.get(COOKIE) or ""


def _host_name(request: Request) -> str:
    host = request.headers.get("host", "")
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def create_app(
    source: DashboardSource,
    *,
    token: str | None = None,
    allowed_hosts: Collection[str] | None = None,
) -> FastAPI:
    """The dashboard for ``source``; see the module docstring for ``token`` and hosts."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    app = FastAPI(
        title="context-cleaner dashboard",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.source = source
    app.state.answers = Answers()
    allowed = {h.lower() for h in allowed_hosts} if allowed_hosts is not None else None

    @app.middleware("http")
    async def guard(request: Request, call_next: Handler) -> Response:
        if allowed is not None and _host_name(request).lower() not in allowed:
            return JSONResponse(
                {"error": "Unexpected Host header; open the dashboard at its loopback address."},
                status_code=400,
            )
        if token is not None:
            supplied = _supplied_token(request)
            if not hmac.compare_digest(supplied.encode(), token.encode()):
                return JSONResponse(
                    {
                        "error": "A token is required: send 'Authorization: Bearer <token>' "
                        "or open the page as /?token=<token> (the token the dashboard was "
                        "started with)."
                    },
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        response = await call_next(request)
        if token is not None and request.query_params.get("token") == token:
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        path = request.url.path
        response.headers.setdefault(
            "Cache-Control", "no-store" if path.startswith("/api/") else "no-cache"
        )
        return response

    @app.exception_handler(InvalidFilterError)
    async def bad_filter(_request: Request, exc: InvalidFilterError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(TransientError)
    async def busy(_request: Request, exc: TransientError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "2"})

    @app.exception_handler(ContextCleanerError)
    async def failed(_request: Request, exc: ContextCleanerError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=500)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.include_router(router)
    app.include_router(report_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
