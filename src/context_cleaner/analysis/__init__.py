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

from context_cleaner._lazy import lazy_face

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

__getattr__, __dir__ = lazy_face(
    __name__,
    {
        "context_cleaner.analysis.counter": ("EnhancedTokenCounter",),
        "context_cleaner.analysis.report": ("AnalysisReport",),
        "context_cleaner.analysis.discovery": (
            "Discovery",
            "TranscriptFile",
            "discover",
            "resolve_roots",
        ),
        "context_cleaner.analysis.scan": ("SkipLog", "scan_file", "scan_files"),
        "context_cleaner.analysis.records": ("SkippedLine", "UsageRecord"),
        "context_cleaner.analysis.dedup": ("UsageCollector",),
        "context_cleaner.analysis.pricing": ("PriceTable",),
        "context_cleaner.analysis.periods": ("ReportQuery",),
        "context_cleaner.analysis.report_rows": ("build_report",),
        "context_cleaner.analysis.transcript_report": ("report_from_transcripts",),
    },
)
