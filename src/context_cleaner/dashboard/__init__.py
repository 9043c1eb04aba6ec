"""The dashboard: a FastAPI app and one web page over the bridge (or the transcripts).

Public API::

    DashboardSettings.build(...)       where it listens, what it reads, the token
    open_source(settings)              DatabaseSource (bridge) or DirectSource (analysis)
    create_app(source, token=...)      the FastAPI application (API + page)

``context-cleaner dashboard`` (``dashboard/command.py``) puts them together and
runs uvicorn. Nothing here writes to the database or shows transcript content:
only ids, models, projects and numbers.
"""

from context_cleaner.dashboard.settings import DashboardSettings, is_loopback

__all__ = ["DashboardSettings", "create_app", "is_loopback", "open_source"]


def __getattr__(name: str) -> object:
    """``create_app`` and ``open_source`` load FastAPI lazily (the CLI stays fast)."""
    if name == "create_app":
        from context_cleaner.dashboard.app import create_app

        return create_app
    if name == "open_source":
        from context_cleaner.dashboard.sources import open_source

        return open_source
    raise AttributeError(name)
