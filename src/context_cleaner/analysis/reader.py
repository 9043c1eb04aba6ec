"""Streaming line reader: complete lines with their line number and byte offset.

A line is complete when its newline has been written. The bytes after the last
newline (a line Claude Code is still writing) are never consumed:
``LineReader.end_offset`` stops before them, so an incremental sync resumes
there and reads the line whole once it is finished.

Memory is bounded by the chunk size plus ``max_line_bytes``: a longer line is
not held, it is passed over and reported (``on_oversized``).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from typing import BinaryIO

CHUNK_BYTES = 4 * 1024 * 1024
MAX_LINE_BYTES = 256 * 1024 * 1024


class NotRegularFileError(OSError):
    """A transcript path that names something other than a regular file (a FIFO, a device,
    a directory): it is skipped, never waited on."""


def open_fd(path: str | os.PathLike[str]) -> int:
    """Open ``path`` for reading only if it is a regular file; returns the descriptor.

    The file is opened non-blocking, so a FIFO put in a transcript's place (between
    discovery and reading) does not block the open waiting for a writer, and the
    opened descriptor itself is checked, so nothing swapped in after the check is read.
    Raises :class:`NotRegularFileError` (naming what it is) for anything else.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(f"not a regular file ({_kind(mode)}): skipped, not read")
    except BaseException:
        os.close(fd)
        raise
    return fd


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """A buffered file object on :func:`open_fd`'s descriptor."""
    fd = open_fd(path)
    try:
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class FdStream:
    """The two calls :class:`LineReader` makes on a stream, straight on a descriptor.

    A file object costs more to build and close than reading a small transcript's few
    kilobytes takes: the readers open tens of thousands of files. ``os.read`` retries an
    interrupted read; the caller closes the descriptor.
    """

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, size: int) -> bytes:
        return os.read(self.fd, size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return os.lseek(self.fd, offset, whence)


def head_digest(data: bytes) -> str:
    """The identity hash of a file's first bytes (SHA-256, hex: 64 characters).

    SHA-256, not the BLAKE2b of earlier versions: with the processor's SHA instructions it
    hashes a 4 KiB head in 3.5 us against 8.9 (a reader hashes every file it reads from its
    start; docs/benchmarks.md). A hash stored by an earlier version still describes its
    file: :func:`head_matches`.
    """
    return hashlib.sha256(data).hexdigest()


#: Length of an identity hash stored by versions before SHA-256 (BLAKE2b, 16 bytes, hex).
_BLAKE2B_HEX = 32


def head_matches(data: bytes, stored: str) -> bool:
    """Whether ``data`` are the bytes whose identity hash is ``stored``, made by this version
    (:func:`head_digest`) or by an earlier one (BLAKE2b, told by its length)."""
    if len(stored) == _BLAKE2B_HEX:
        return hashlib.blake2b(data, digest_size=16).hexdigest() == stored
    return head_digest(data) == stored


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a file"


OversizedCallback = Callable[[int, int, int], None]
"""Called as ``(line_number, byte_offset, length)`` for each line longer than the limit."""


class LineReader:
    """Iterate ``(line_number, byte_offset, line)`` over the complete lines of a file.

    ``line`` excludes its newline. With ``marker``, only lines containing those
    bytes are yielded (the others are still counted and passed over).
    ``start_offset`` must be the start of a line (0 or an ``end_offset`` of an
    earlier read); ``start_line`` is that line's 1-based number, when known
    (else numbering restarts at 1 from the offset).

    ``size_hint``: the file's size when last seen (its ``stat``). The first read asks for
    one byte more than that, not a whole chunk (allocating a chunk-sized buffer per small
    file costs more than reading it), and a read shorter than asked for that reaches that
    size is the end of the file: no further read is made to find it. The hint only sizes
    reads: a file that grew since is read on in chunks, one that shrank ends at its end.

    ``keep_head``: when reading from offset 0, keep the first bytes read, up to this
    many, as :attr:`head` (the bytes a head hash must describe, without reading again).
    """

    def __init__(
        self,
        stream: BinaryIO,
        *,
        start_offset: int = 0,
        start_line: int = 1,
        chunk_bytes: int = CHUNK_BYTES,
        max_line_bytes: int = MAX_LINE_BYTES,
        on_oversized: OversizedCallback | None = None,
        stop_at: int | None = None,
        marker: bytes | None = None,
        size_hint: int | None = None,
        keep_head: int = 0,
    ) -> None:
        self._stream = stream
        self._chunk = chunk_bytes
        self._max_line = max_line_bytes
        self._on_oversized = on_oversized
        self._stop_at = stop_at
        self._marker = marker
        self.end_offset = start_offset
        """Offset just after the last complete line read so far."""
        self.next_line = start_line
        """The number the next complete line will get."""
        self.bytes_read = 0
        self._read_pos = start_offset
        self._next_size = (
            min(chunk_bytes, max(size_hint - start_offset, 0) + 1)
            if size_hint is not None
            else chunk_bytes
        )
        self._size_hint = size_hint
        self._at_end = False
        self._keep_head = keep_head if start_offset == 0 else 0
        self.head = b""
        """With ``keep_head``: the file's first bytes as read (at most ``keep_head``; fewer
        when the first read was shorter)."""
        if start_offset:
            stream.seek(start_offset)

    def _read(self) -> bytes:
        if self._at_end:
            return b""
        size, self._next_size = self._next_size, self._chunk
        if self._stop_at is not None:
            size = min(size, self._stop_at - self._read_pos)
            if size <= 0:
                return b""
        data = self._stream.read(size)
        # A regular file's read returns less than asked only at its end (the raw and
        # the buffered reader both retry interrupted reads); where that size was seen,
        # a short read before it (a network or user-space file system) reads on.
        self._at_end = (
            len(data) < size
            and self._size_hint is not None
            and self._read_pos + len(data) >= self._size_hint
        )
        if self._keep_head and not self.bytes_read:
            self.head = data[: self._keep_head]
        self._read_pos += len(data)
        self.bytes_read += len(data)
        return data

    def __iter__(self) -> Iterator[tuple[int, int, bytes]]:
        pieces: list[bytes] = []  # the unfinished line, in pieces (no newline in any)
        pending = 0  # bytes in pieces
        skipping = False  # inside an oversized line, discarding until its newline
        marker = self._marker
        while True:
            chunk = self._read()
            if not chunk:
                return
            last_nl = chunk.rfind(b"\n")
            if last_nl < 0:
                pending += len(chunk)
                if not skipping:
                    pieces.append(chunk)
                    if pending > self._max_line:
                        skipping, pieces = True, []
                continue
            first_nl = chunk.find(b"\n")
            offset, number = self.end_offset, self.next_line
            if skipping or pieces:
                # Finish the line that began in an earlier chunk.
                length = pending + first_nl
                if skipping or length > self._max_line:
                    self._oversized(number, offset, length)
                else:
                    pieces.append(chunk[:first_nl])
                    line = b"".join(pieces)
                    if marker is None or marker in line:
                        yield number, offset, line
                offset += length + 1
                number += 1
                self.end_offset, self.next_line = offset, number
                has_body = first_nl < last_nl
                begin = first_nl + 1
            else:
                has_body, begin = True, 0
            end = last_nl  # the body: chunk[begin:end], whole lines (none when not has_body)
            pieces, pending, skipping = [], 0, False
            if has_body and marker is not None and self._chunk <= self._max_line:
                # Only lines holding the marker are wanted (none here can be oversized):
                # each line is found by its newline and searched from its end, within the
                # chunk's bounds rather than in a copy. A usage object closes the line that
                # carries it, so the search stops within its last few hundred bytes instead
                # of passing over its content: half the time of one search forward through
                # the chunk (docs/benchmarks.md).
                find, rfind = chunk.find, chunk.rfind
                start = begin
                while start <= end:
                    stop = find(b"\n", start, end + 1)  # chunk[end] is a newline
                    if rfind(marker, start, stop) >= 0:
                        self.end_offset, self.next_line = offset + start - begin, number
                        yield number, offset + start - begin, chunk[start:stop]
                    number += 1
                    start = stop + 1
                offset += end - begin + 1
                self.end_offset, self.next_line = offset, number
            elif has_body:
                for line in chunk[begin:end].split(b"\n"):
                    length = len(line)
                    if length > self._max_line:
                        self._oversized(number, offset, length)
                    elif marker is None or marker in line:
                        yield number, offset, line
                    offset += length + 1
                    number += 1
                    self.end_offset, self.next_line = offset, number
            tail = chunk[last_nl + 1 :]
            if tail:
                pending = len(tail)
                if pending > self._max_line:
                    skipping = True
                else:
                    pieces.append(tail)
            if self._at_end:  # the read reached the end: no read to find it (a small file)
                return

    def _oversized(self, number: int, offset: int, length: int) -> None:
        if self._on_oversized is not None:
            self._on_oversized(number, offset, length)
