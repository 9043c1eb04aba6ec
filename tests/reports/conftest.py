"""Fixtures for the report tests."""

from .helpers import ccusage

__all__ = ["ccusage"]
