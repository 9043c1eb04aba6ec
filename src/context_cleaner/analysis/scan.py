"""Scanning files: read complete lines, extract records, collect them.

``scan_file`` is the one place a transcript file is read; the analyser, the
migration and the incremental sync all call it (with a start offset for the
latter). ``scan_files_parallel`` spreads files over processes for large corpora.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import msgspec

from context_cleaner.analysis.dedup import UsageCollector
from context_cleaner.analysis.discovery import TranscriptFile, project_of, session_of, storable
from context_cleaner.analysis.extract import (
    USAGE_MARKER,
    Extracted,
    Source,
    extract_marked_line,
)
from context_cleaner.analysis.processes import worker_pool
from context_cleaner.analysis.reader import (
    MAX_LINE_BYTES,
    FdStream,
    LineReader,
    NotRegularFileError,
    head_digest,
    open_fd,
)
from context_cleaner.analysis.records import SkippedLine, UsageRecord

#: Keep at most this many skipped lines in detail (counts by reason are always complete).
MAX_SKIPPED_DETAIL = 10_000


class FileStats(msgspec.Struct, array_like=True):
    """What reading one file found (an array on the wire: the readers send one per file)."""

    path: str
    relative_path: str
    session_id: str
    project: str
    size: int
    start_offset: int = 0
    end_offset: int = 0
    """Offset after the last complete line: where the next read starts."""
    lines: int = 0
    usage_lines: int = 0
    skipped_lines: int = 0
    torn_tail_bytes: int = 0
    """Bytes after the last newline, not consumed (a line still being written)."""
    error: str = ""
    head_hash: str = ""
    """With ``head_bytes``: :func:`head_digest` of the first ``min(head_bytes, end_offset)``
    bytes, read through the descriptor the lines were read from (``""`` when none)."""


@dataclass(slots=True)
class SkipLog:
    """Skipped lines: complete counts by reason, detail up to a bound."""

    limit: int = MAX_SKIPPED_DETAIL
    details: list[SkippedLine] = field(default_factory=list)
    by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, skipped: SkippedLine) -> None:
        self.by_reason[skipped.reason] = self.by_reason.get(skipped.reason, 0) + 1
        if len(self.details) < self.limit:
            self.details.append(skipped)

    def merge(self, other: SkipLog) -> None:
        for reason, count in other.by_reason.items():
            self.by_reason[reason] = self.by_reason.get(reason, 0) + count
        room = self.limit - len(self.details)
        if room > 0:
            self.details.extend(other.details[:room])

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())


RecordSink = Callable[[UsageRecord], None]


def scan_file(
    transcript: TranscriptFile,
    sink: RecordSink,
    skips: SkipLog,
    *,
    start_offset: int = 0,
    start_line: int = 1,
    stop_at: int | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
    head_bytes: int = 0,
) -> FileStats:
    """Read ``transcript`` from ``start_offset`` and hand each usage record to ``sink``.

    ``head_bytes``: also hash the file's head (``FileStats.head_hash``), the identity a
    migration commits, so the run's own process need not open every file again.

    Never raises on input: a file that cannot be opened or read is reported in
    ``FileStats.error`` (with what was read before the failure kept).
    """
    return _scan_file(
        transcript.path_str,
        transcript.relative_path,
        transcript.size,
        sink,
        skips,
        start_offset,
        start_line,
        stop_at,
        max_line_bytes,
        head_bytes,
    )


def _scan_file(
    path: str,
    relative: str,
    size: int,
    sink: RecordSink,
    skips: SkipLog,
    start_offset: int,
    start_line: int,
    stop_at: int | None,
    max_line_bytes: int,
    head_bytes: int,
) -> FileStats:
    """:func:`scan_file` of the file at ``path`` (``relative`` below its root, ``size``
    bytes when found), named by its :func:`~.discovery.storable` form in what it reports."""
    display = storable(path)
    session, project = session_of(relative), project_of(relative)
    # Positional, in field order (path, relative_path, session_id, project, size,
    # start_offset, end_offset): this runs once per file, tens of thousands of times.
    stats = FileStats(display, relative, session, project, size, start_offset, start_offset)
    source = Source(relative, project, session)

    def oversized(number: int, offset: int, length: int) -> None:
        stats.skipped_lines += 1
        skips.add(
            SkippedLine(
                display,
                number,
                offset,
                "line_too_long",
                f"{length} bytes, above the {max_line_bytes}-byte limit",
            )
        )

    try:
        fd = open_fd(path)
        try:
            stream = FdStream(fd)
            if (
                not start_offset
                and start_line == 1
                and stop_at is None
                and size < WHOLE_READ_BYTES
                and size <= max_line_bytes
                and _scan_whole(stream, stats, source, sink, skips, display, head_bytes)
            ):
                return stats
            reader = LineReader(
                stream,
                start_offset=start_offset,
                start_line=start_line,
                max_line_bytes=max_line_bytes,
                on_oversized=oversized,
                stop_at=stop_at,
                marker=USAGE_MARKER,
                size_hint=size,
                keep_head=head_bytes,
            )
            usage = 0
            try:
                for number, offset, line in reader:  # only lines holding the marker
                    result = extract_marked_line(source, number, offset, line)
                    usage += _hand_on(result, sink, stats, skips, display)
            finally:
                stats.usage_lines = usage
                stats.end_offset = reader.end_offset
                stats.lines = reader.next_line - start_line
                stats.size = max(stats.size, start_offset + reader.bytes_read)
                stats.torn_tail_bytes = start_offset + reader.bytes_read - reader.end_offset
            length = min(head_bytes, stats.end_offset)
            if 0 < length <= len(reader.head):  # the head was in the first read: no read again
                stats.head_hash = head_digest(reader.head[:length])
            elif length > 0:
                with contextlib.suppress(OSError):  # the lines were read: no hash, not an error
                    stream.seek(0)
                    head = stream.read(length)
                    stats.head_hash = head_digest(head) if len(head) == length else ""
        finally:
            os.close(fd)
    except FileNotFoundError:
        stats.error = "file vanished before it could be read"
    except NotRegularFileError as exc:
        stats.error = str(exc)
    except OSError as exc:
        stats.error = f"cannot read: {exc.strerror or exc}"
    return stats


#: A file read from its start that was smaller than this when found is read whole, in one
#: read, and its lines are found in place (:func:`_scan_whole`), not through a
#: :class:`LineReader`: tens of thousands of small transcripts are read 14% faster
#: (docs/benchmarks.md). Larger files are read in chunks, their lines bounded.
WHOLE_READ_BYTES = 1024 * 1024


def _scan_whole(
    stream: FdStream,
    stats: FileStats,
    source: Source,
    sink: RecordSink,
    skips: SkipLog,
    display: str,
    head_bytes: int,
) -> bool:
    """Scan a small file whole from one read, as :class:`LineReader` with the usage
    marker would (lines found by their newline, searched for the marker from their end;
    bytes after the last newline are a torn tail, not read). Returns False, nothing
    counted and the descriptor back at 0, when the read did not return exactly the size
    found: the file changed since, and the reader reads it as it is now."""
    size = stats.size
    data = stream.read(size + 1)
    if len(data) != size:
        stream.seek(0)
        return False
    end = data.rfind(b"\n") + 1  # after the last complete line
    find, rfind = data.find, data.rfind
    marker = USAGE_MARKER
    start = 0
    number = 1
    usage = 0
    while start < end:
        stop = find(b"\n", start, end)
        if rfind(marker, start, stop) >= 0:
            result = extract_marked_line(source, number, start, data[start:stop])
            usage += _hand_on(result, sink, stats, skips, display)
        number += 1
        start = stop + 1
    stats.usage_lines = usage
    stats.end_offset = end
    stats.lines = number - 1
    stats.torn_tail_bytes = size - end
    length = min(head_bytes, end)
    if length > 0:
        stats.head_hash = head_digest(data[:length])
    return True


def _hand_on(
    result: Extracted, sink: RecordSink, stats: FileStats, skips: SkipLog, display: str
) -> int:
    """A line's extraction handed on: a record to ``sink`` (returns 1), a skipped line to
    ``skips`` under the file's displayed path (returns 0); nothing for a line without
    usage."""
    if result is None:
        return 0
    if type(result) is UsageRecord:
        sink(result)
        return 1
    stats.skipped_lines += 1
    skips.add(_with_display_path(result, display))  # type: ignore[arg-type]
    return 0


def _with_display_path(skipped: SkippedLine, display: str) -> SkippedLine:
    return msgspec.structs.replace(skipped, file_path=display)


@dataclass(slots=True)
class ScanResult:
    """Everything a scan of many files produced."""

    collector: UsageCollector
    files: list[FileStats]
    skips: SkipLog


#: A file to read from ``start_offset`` (a line start whose number is ``start_line``).
FileRange = tuple[TranscriptFile, int, int]

#: A :data:`FileRange` as a reader process is handed it: the file's path, its path
#: relative to its root, its size when found, the start offset and line. Plain values: a
#: batch of them pickles in a third of the time of its ``TranscriptFile`` objects (whose
#: root is a ``Path``) and unpickles in a fifth (docs/benchmarks.md).
ReadTask = tuple[str, str, int, int, int]


def read_tasks(ranges: Iterable[FileRange]) -> list[ReadTask]:
    return [(f.path_str, f.relative_path, f.size, start, line) for f, start, line in ranges]


def scan_tasks(
    tasks: Iterable[ReadTask],
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
    head_bytes: int = 0,
    every_line: bool = True,
) -> ScanResult:
    """Scan files from their start offsets, one after the other, in this process
    (``head_bytes``: see :func:`scan_file`; ``every_line=False``: the collector's
    every-line sum, ``UsageCollector.raw``, is left empty, as a migration has no use for it)."""
    collector = UsageCollector()
    skips = SkipLog()
    add = collector.add if every_line else collector.keep
    stats = [
        _scan_file(path, relative, size, add, skips, start, line, None, max_line_bytes, head_bytes)
        for path, relative, size, start, line in tasks
    ]
    return ScanResult(collector, stats, skips)


def scan_ranges(
    ranges: Sequence[FileRange],
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
    head_bytes: int = 0,
    every_line: bool = True,
) -> ScanResult:
    """:func:`scan_tasks` of ``ranges``."""
    return scan_tasks(
        read_tasks(ranges),
        max_line_bytes=max_line_bytes,
        head_bytes=head_bytes,
        every_line=every_line,
    )


def scan_files(
    files: Sequence[TranscriptFile], *, max_line_bytes: int = MAX_LINE_BYTES
) -> ScanResult:
    """Scan whole files one after the other in this process."""
    return scan_ranges([(f, 0, 1) for f in files], max_line_bytes=max_line_bytes)


_WIRE_TYPE = tuple[bytes, list[FileStats], list[SkippedLine], dict[str, int]]


def encode_scan(result: ScanResult) -> bytes:
    """A scan result as bytes, to hand from a worker process to its parent."""
    return msgspec.msgpack.encode(
        (result.collector.to_bytes(), result.files, result.skips.details, result.skips.by_reason)
    )


def decode_scan(data: bytes, tasks: Sequence[ReadTask] | None = None) -> ScanResult:
    """The scan :func:`encode_scan` made; ``tasks``: the ones :func:`scan_tasks_encoded`
    read, whose paths it left out (given back here, in order)."""
    blob, files, details, by_reason = msgspec.msgpack.decode(data, type=_WIRE_TYPE)
    if tasks is not None:
        for stats, task in zip(files, tasks, strict=True):
            stats.path, stats.relative_path = storable(task[0]), task[1]
    return ScanResult(
        UsageCollector.from_bytes(blob), files, SkipLog(details=details, by_reason=by_reason)
    )


def scan_tasks_encoded(
    tasks: Sequence[ReadTask],
    max_line_bytes: int = MAX_LINE_BYTES,
    head_bytes: int = 0,
    every_line: bool = True,
) -> bytes:
    """Worker entry point: scan and encode (records cross the process boundary as msgpack).

    Each file's path and relative path are left out: the parent has them (its ``tasks``,
    :func:`decode_scan`). A batch of 100 small files then fits a pipe's 64 KiB buffer
    (72 KiB with them, docs/benchmarks.md), so the reader hands it over in one write
    instead of waiting for the parent to drain the pipe.
    """
    result = scan_tasks(
        tasks, max_line_bytes=max_line_bytes, head_bytes=head_bytes, every_line=every_line
    )
    for stats in result.files:
        stats.path = stats.relative_path = ""
    return encode_scan(result)


def split_by_size(files: Sequence[TranscriptFile], parts: int) -> list[list[TranscriptFile]]:
    """Deal files into ``parts`` groups of about equal bytes (largest first, to the lightest)."""
    groups: list[list[TranscriptFile]] = [[] for _ in range(parts)]
    weights = [0] * parts
    for f in sorted(files, key=lambda f: f.size, reverse=True):
        lightest = weights.index(min(weights))
        groups[lightest].append(f)
        weights[lightest] += f.size
    return [g for g in groups if g]


#: Below this many bytes, starting processes costs more than it saves.
PARALLEL_MIN_BYTES = 64 * 1024 * 1024


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def scan_files_parallel(
    files: Sequence[TranscriptFile],
    *,
    workers: int | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
    start_method: str | None = None,
) -> ScanResult:
    """Scan on several processes when the corpus is large enough to gain from it.

    The result does not depend on how files are split: collectors merge by rule 3.
    """
    workers = default_workers() if workers is None else max(1, workers)
    total = sum(f.size for f in files)
    if workers == 1 or total < PARALLEL_MIN_BYTES or len(files) < 2:
        return scan_files(files, max_line_bytes=max_line_bytes)
    # More groups than workers so a slow group does not leave a core idle.
    groups = split_by_size(files, min(len(files), workers * 4))
    with worker_pool(workers, start_method) as pool:
        parts = [read_tasks((f, 0, 1) for f in g) for g in groups]
        futures = [pool.submit(scan_tasks_encoded, tasks, max_line_bytes) for tasks in parts]
        merged = merge_scans(
            decode_scan(future.result(), tasks)
            for future, tasks in zip(futures, parts, strict=True)
        )
    order = {f.relative_path + "\0" + str(f.path): i for i, f in enumerate(files)}
    merged.files.sort(key=lambda s: order.get(s.relative_path + "\0" + s.path, 0))
    return merged


def merge_scans(parts: Iterable[ScanResult]) -> ScanResult:
    """One result for several scans of different byte ranges (collectors merge by rule 3)."""
    collector = UsageCollector()
    skips = SkipLog()
    stats: list[FileStats] = []
    for part in parts:
        collector.merge(part.collector)
        stats.extend(part.files)
        skips.merge(part.skips)
    return ScanResult(collector, stats, skips)
