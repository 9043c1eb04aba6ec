"""Counting Claude Code transcripts without a database: discovery, parsing, de-duplication, reports.

Public names (each loads its module on first use)::

    EnhancedTokenCounter(dirs).analyze()   the whole analysis -> AnalysisReport
    discover(resolve_roots(dirs))          the transcript files -> Discovery of TranscriptFile
    scan_file / scan_files                 usage records and skipped lines of files
    UsageCollector                         DESIGN §3 de-duplication of records
    PriceTable.load(path)                  model prices (costs)
    ReportQuery / build_report             daily, weekly, monthly, session and block reports
    report_from_transcripts(...)           a report straight from the transcripts
"""

from __future__ import annotations

from context_cleaner._lazy import TYPE_CHECKING, lazy_face

__all__ = [
    "AnalysisReport",
    "Discovery",
    "EnhancedTokenCounter",
    "PriceTable",
    "ReportQuery",
    "SkipLog",
    "SkippedLine",
    "TranscriptFile",
    "UsageCollector",
    "UsageRecord",
    "build_report",
    "discover",
    "report_from_transcripts",
    "resolve_roots",
    "scan_file",
    "scan_files",
]

__getattr__, __dir__ = lazy_face(__name__)

if TYPE_CHECKING:  # the names' homes; at run time ``__getattr__`` imports each on first use
    from context_cleaner.analysis.counter import EnhancedTokenCounter
    from context_cleaner.analysis.dedup import UsageCollector
    from context_cleaner.analysis.discovery import (
        Discovery,
        TranscriptFile,
        discover,
        resolve_roots,
    )
    from context_cleaner.analysis.periods import ReportQuery
    from context_cleaner.analysis.pricing import PriceTable
    from context_cleaner.analysis.records import SkippedLine, UsageRecord
    from context_cleaner.analysis.report import AnalysisReport
    from context_cleaner.analysis.report_rows import build_report
    from context_cleaner.analysis.scan import SkipLog, scan_file, scan_files
    from context_cleaner.analysis.transcript_report import report_from_transcripts
