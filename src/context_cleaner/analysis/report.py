"""The analysis report: pydantic models at the edge (JSON output, the bridge, the dashboard).

Field names are the interface of DESIGN §10: ``totals`` with ``input_tokens``,
``output_tokens``, ``cache_creation_tokens``, ``cache_read_tokens``,
``total_tokens``, ``cost_usd``; ``sessions``, ``days``, ``files``, ``skipped_lines``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TokenTotals(BaseModel):
    """Token counts and cost of a set of usage records."""

    model_config = ConfigDict(extra="forbid")

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    cache_creation_5m_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    records: int = Field(0, description="usage records counted (responses, after de-duplication)")


class SessionUsage(TokenTotals):
    session_id: str
    project: str
    first_timestamp: str
    last_timestamp: str
    models: list[str]


class DayUsage(TokenTotals):
    date: str = Field(description="YYYY-MM-DD in the report's timezone")


class ModelUsage(TokenTotals):
    model: str


class ProjectUsage(TokenTotals):
    project: str


class RawLineTotals(BaseModel):
    """Every usage line summed, duplicates included: what the original count showed."""

    lines: int
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int
    total_tokens: int
    overcount_ratio: float = Field(description="raw total / de-duplicated total")
    explanation: str


class FileReport(BaseModel):
    path: str
    session_id: str
    project: str
    size: int
    end_offset: int
    lines: int
    usage_lines: int
    skipped_lines: int
    torn_tail_bytes: int
    error: str = ""


class SkippedLineReport(BaseModel):
    file: str
    line: int
    byte_offset: int
    reason: str
    detail: str = ""


class Problem(BaseModel):
    path: str
    reason: str


class AnalysisReport(BaseModel):
    """The whole result of one analysis."""

    roots: list[str]
    timezone: str
    totals: TokenTotals
    sessions: list[SessionUsage]
    days: list[DayUsage]
    models: list[ModelUsage]
    projects: list[ProjectUsage]
    raw_line_sum: RawLineTotals
    duplicate_lines_removed: int
    sidechain_replays_dropped: int
    files: list[FileReport]
    skipped_lines: list[SkippedLineReport]
    skipped_by_reason: dict[str, int]
    skipped_lines_total: int
    unknown_models: list[str]
    discovery_problems: list[Problem]
    warnings: list[str]
    bytes_read: int
    elapsed_seconds: float

    @property
    def calculated_total_tokens(self) -> int:
        """The spec's name for the de-duplicated total."""
        return self.totals.total_tokens
