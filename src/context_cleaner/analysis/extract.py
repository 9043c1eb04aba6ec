"""From one transcript line to a usage record (DESIGN §3 rules 1, 5, 6, 8).

The hot path tests the raw bytes for ``"usage"`` (a line without it cannot carry
usage) and decodes the rest with msgspec into Structs that name only the fields
counting needs: content is skipped by the decoder, never built into objects.
A line that fails the strict schema is decoded once more as plain JSON and
judged field by field, so that its skip reason is precise and no valid shape
(a ``message`` that is a string, a ``data`` that is a list ...) is mistaken for bad input.
"""

from __future__ import annotations

from datetime import UTC, datetime
from sys import intern
from typing import Annotated, Any

import msgspec

from context_cleaner.analysis.records import SkippedLine, UsageRecord

USAGE_MARKER = b'"usage"'

#: The largest token count one field of one request may hold: far above any real request
#: (~10^6), low enough that sums stay inside the database's UInt64 and msgpack's integers.
MAX_TOKENS = 2**40 - 1

#: The largest ``costUSD`` one response may carry. A larger, infinite or NaN cost is not a
#: cost (``1e308`` twice would make every total infinite): the line is skipped, named.
MAX_COST_USD = 1_000_000.0

NonNegative = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS)]

#: The instants the database can put on a day, in epoch milliseconds (UTC, both ends included):
#: the rollups' ``Date`` holds 1970-01-01 .. 2149-06-06, and ``toDate`` of a time outside it
#: wraps around (1969 lands on 2149-06-06, 9999 on 2105-01-05). A usage line timed outside is
#: skipped as ``timestamp_out_of_range`` everywhere: analysis, details rows, rollups, data lag.
MIN_TIMESTAMP_MS = 0
MAX_TIMESTAMP_MS = int(datetime(2149, 6, 7, tzinfo=UTC).timestamp() * 1000) - 1


class _CacheCreation(msgspec.Struct):
    ephemeral_5m_input_tokens: NonNegative = 0
    ephemeral_1h_input_tokens: NonNegative = 0


class _Usage(msgspec.Struct):
    input_tokens: NonNegative
    output_tokens: NonNegative
    cache_creation_input_tokens: NonNegative = 0
    cache_read_input_tokens: NonNegative = 0
    cache_creation: _CacheCreation | None = None
    speed: str | None = None


class _Message(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    usage: _Usage | None = None


class _Entry(msgspec.Struct):
    """What a line says of the response it records: also the shape of the assistant
    message a ``progress`` line carries in its ``data``."""

    timestamp: datetime | None = None
    requestId: str | None = None
    isSidechain: bool | None = None
    costUSD: float | None = None
    message: _Message | None = None


class _Line(_Entry):
    type: str | None = None
    sessionId: str | None = None
    data: msgspec.Raw = msgspec.Raw()
    """Kept undecoded until needed (``progress`` lines); empty when absent. (``Raw | None``
    would reject every object.)"""


class _ProgressData(msgspec.Struct):
    message: _Entry | None = None


_line_decoder = msgspec.json.Decoder(_Line)
_progress_decoder = msgspec.json.Decoder(_ProgressData | None)
_any_decoder = msgspec.json.Decoder()


class Source(msgspec.Struct, frozen=True):
    """Where the lines of one file come from: what every record of the file shares."""

    file_path: str
    project: str
    session_id: str


Extracted = UsageRecord | SkippedLine | None


def _epoch_ms(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    seconds = ts.timestamp()
    return int(seconds * 1000 + (0.5 if seconds >= 0 else -0.5))


def extract_line(source: Source, line_number: int, offset: int, line: bytes) -> Extracted:
    """The usage record a line carries, a ``SkippedLine`` saying why not, or ``None``.

    ``None`` means the line carries no usage (most lines: user turns, tool
    results, snapshots) and is nothing to report.
    """
    if USAGE_MARKER not in line:
        return None
    return extract_marked_line(source, line_number, offset, line)


def extract_marked_line(source: Source, line_number: int, offset: int, line: bytes) -> Extracted:
    """:func:`extract_line` for a line already known to hold :data:`USAGE_MARKER`."""
    if not line.isascii():
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return SkippedLine(source.file_path, line_number, offset, "invalid_utf8", str(exc))
    try:
        parsed = _line_decoder.decode(line)
    except msgspec.ValidationError:
        return _extract_slow(source, line_number, offset, line)
    except msgspec.DecodeError as exc:
        return SkippedLine(source.file_path, line_number, offset, "malformed_json", str(exc))
    except RecursionError:
        return _too_deep(source, line_number, offset)
    message = parsed.message
    if message is not None and message.usage is not None:
        return _record(
            source,
            line_number,
            offset,
            message,
            parsed.timestamp,
            parsed.requestId,
            parsed.sessionId,
            bool(parsed.isSidechain),
            parsed.costUSD,
            from_progress=False,
        )
    if parsed.type == "progress" and parsed.data:
        try:
            data = _progress_decoder.decode(parsed.data)
        except msgspec.ValidationError:
            return _extract_slow(source, line_number, offset, line)
        except RecursionError:
            return _too_deep(source, line_number, offset)
        inner = data.message if data is not None else None
        if inner is not None and inner.message is not None and inner.message.usage is not None:
            return _record(
                source,
                line_number,
                offset,
                inner.message,
                inner.timestamp or parsed.timestamp,
                inner.requestId or parsed.requestId,
                parsed.sessionId,
                bool(inner.isSidechain if inner.isSidechain is not None else parsed.isSidechain),
                inner.costUSD,
                from_progress=True,
            )
    return None


def _record(
    source: Source,
    line_number: int,
    offset: int,
    message: _Message,
    timestamp: datetime | None,
    request_id: str | None,
    session_id: str | None,
    is_sidechain: bool,
    cost_usd: float | None,
    *,
    from_progress: bool,
) -> UsageRecord | SkippedLine:
    usage = message.usage
    assert usage is not None
    if timestamp is None:
        return SkippedLine(
            source.file_path, line_number, offset, "missing_field", "timestamp is missing"
        )
    timestamp_ms = _epoch_ms(timestamp)
    if not MIN_TIMESTAMP_MS <= timestamp_ms <= MAX_TIMESTAMP_MS:
        return SkippedLine(
            source.file_path,
            line_number,
            offset,
            "timestamp_out_of_range",
            f"timestamp {timestamp.isoformat()} is outside 1970-01-01T00:00:00Z .. "
            "2149-06-06T23:59:59.999Z, the days the database can hold",
        )
    if cost_usd is not None and not 0 <= cost_usd <= MAX_COST_USD:  # NaN fails both
        return SkippedLine(
            source.file_path,
            line_number,
            offset,
            "negative_value" if cost_usd < 0 else "value_out_of_range",
            f"costUSD {cost_usd!r} is not a cost from 0 to {MAX_COST_USD:g} USD",
        )
    # Rule 5: cache_creation_input_tokens is the total; usage.cache_creation, when
    # present, says how much of it was written for 1 hour (the rest is 5 minutes).
    cache_total = usage.cache_creation_input_tokens
    split = usage.cache_creation
    cache_1h = min(split.ephemeral_1h_input_tokens, cache_total) if split is not None else 0
    cache_5m = cache_total - cache_1h
    # Positional (in field order): ~2x cheaper than keywords for 19 fields on the hot path.
    return UsageRecord(
        message.id or "",  # message_id
        request_id or "",  # request_id
        source.session_id,  # session_id
        intern(session_id) if session_id else "",  # line_session_id
        source.project,  # project
        source.file_path,  # file_path
        line_number,  # line_number
        offset,  # byte_offset
        timestamp_ms,  # timestamp_ms
        intern(message.model) if message.model else "",  # model
        is_sidechain,  # is_sidechain
        usage.speed or "",  # speed
        from_progress,  # from_progress
        usage.input_tokens,  # input_tokens
        usage.output_tokens,  # output_tokens
        cache_5m,  # cache_creation_5m_tokens
        cache_1h,  # cache_creation_1h_tokens
        usage.cache_read_input_tokens,  # cache_read_tokens
        cost_usd,  # cost_usd
    )


def _too_deep(source: Source, line_number: int, offset: int) -> SkippedLine:
    """A line nested deeper than the decoder follows (~1,000 levels; msgspec raises
    RecursionError, which ended the whole run). ccusage drops such a line too."""
    return SkippedLine(
        source.file_path,
        line_number,
        offset,
        "malformed_json",
        "JSON nested deeper than the decoder follows (about 1,000 levels)",
    )


# -- the careful path: a line that failed the strict schema ------------------------


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _extract_slow(source: Source, line_number: int, offset: int, line: bytes) -> Extracted:
    """Judge a line field by field; only the fields counting needs can make it bad."""
    try:
        doc = _any_decoder.decode(line)
    except msgspec.DecodeError as exc:
        return SkippedLine(source.file_path, line_number, offset, "malformed_json", str(exc))
    except RecursionError:
        return _too_deep(source, line_number, offset)
    if not isinstance(doc, dict):
        return None
    message = doc.get("message")
    prefix = "message"
    outer_ts: Any = doc.get("timestamp")
    ts_value, request_value = outer_ts, doc.get("requestId")
    sidechain, cost = doc.get("isSidechain"), doc.get("costUSD")
    from_progress = False
    if not (isinstance(message, dict) and isinstance(message.get("usage"), dict)):
        inner = _get(doc, "data", "message")
        if doc.get("type") != "progress" or not isinstance(_get(inner, "message", "usage"), dict):
            return _usage_not_an_object(source, line_number, offset, doc, message, inner)
        message = inner["message"]
        prefix = "data.message.message"
        ts_value = inner.get("timestamp") or outer_ts
        request_value = inner.get("requestId") or doc.get("requestId")
        if inner.get("isSidechain") is not None:
            sidechain = inner.get("isSidechain")
        cost = inner.get("costUSD")
        from_progress = True

    def skip(reason: str, detail: str) -> SkippedLine:
        return SkippedLine(source.file_path, line_number, offset, reason, detail)

    try:
        usage = msgspec.convert(message["usage"], _Usage)
    except msgspec.ValidationError as exc:
        return skip(_reason(str(exc)), f"{prefix}.usage: {exc}")
    fields: dict[str, Any] = {
        "id": message.get("id"),
        "model": message.get("model"),
        "requestId": request_value,
        "sessionId": doc.get("sessionId"),
    }
    for name, value in fields.items():
        if value is not None and not isinstance(value, str):
            return skip("invalid_field_type", f"{name} is {type(value).__name__}, not a string")
    if ts_value is None:
        return skip("missing_field", "timestamp is missing")
    try:
        timestamp = msgspec.convert(ts_value, datetime)
    except msgspec.ValidationError as exc:
        return skip("invalid_timestamp", f"timestamp {ts_value!r}: {exc}")
    if sidechain is not None and not isinstance(sidechain, bool):
        return skip("invalid_field_type", "isSidechain is not a boolean")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int | float)):
        return skip("invalid_field_type", "costUSD is not a number")
    return _record(
        source,
        line_number,
        offset,
        _Message(id=fields["id"], model=fields["model"], usage=usage),
        timestamp,
        fields["requestId"],
        fields["sessionId"],
        bool(sidechain),
        float(cost) if cost is not None else None,
        from_progress=from_progress,
    )


def _usage_not_an_object(
    source: Source, line_number: int, offset: int, doc: dict[str, Any], message: Any, inner: Any
) -> SkippedLine | None:
    """A usage that is there but is not an object (``"usage": "a lot"``) is bad input, reported.

    A missing or null usage is not: most lines carry none.
    """
    holders = [("message", message)]
    if doc.get("type") == "progress":
        holders.append(("data.message.message", _get(inner, "message")))
    for where, holder in holders:
        value = holder.get("usage") if isinstance(holder, dict) else None
        if value is not None:
            return SkippedLine(
                source.file_path,
                line_number,
                offset,
                "invalid_field_type",
                f"{where}.usage is {type(value).__name__}, not an object",
            )
    return None


def _reason(message: str) -> str:
    if "missing required field" in message:
        return "missing_field"
    if ">= 0" in message:
        return "negative_value"
    if f"<= {MAX_TOKENS}" in message:
        return "value_out_of_range"
    return "invalid_field_type"
