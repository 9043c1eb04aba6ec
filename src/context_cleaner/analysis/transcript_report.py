"""A report computed straight from the transcripts (``report --source transcripts``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from context_cleaner.analysis.discovery import discover, resolve_roots
from context_cleaner.analysis.periods import ReportQuery, cells_from_records
from context_cleaner.analysis.pricing import PriceTable
from context_cleaner.analysis.report_rows import build_report
from context_cleaner.analysis.scan import scan_files_parallel


def report_from_transcripts(
    query: ReportQuery,
    source_dirs: Sequence[str | os.PathLike[str]] | None = None,
    *,
    host: str,
    prices: PriceTable | None = None,
    workers: int | None = None,
    now_ms: int | None = None,
) -> dict[str, object]:
    """Discover, read and de-duplicate the transcripts (DESIGN §3), then report on them.

    ``host`` is this machine's name (the host every record here belongs to).
    """
    roots = resolve_roots(list(source_dirs) if source_dirs else None)
    found = discover(roots)
    scan = scan_files_parallel(found.files, workers=workers)
    records = scan.collector.records()
    cells = cells_from_records(
        records, query, prices if prices is not None else PriceTable.load(), host=host
    )
    return build_report(query, cells, source="transcripts", now_ms=now_ms)
