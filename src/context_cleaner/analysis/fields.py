"""The token fields: the one home of every list of them (DESIGN §3 rule 5, §10).

A usage record carries five token counts (cache writes split by lifetime); reports
show four (the two cache writes summed) and their total. Whatever stores, sums,
compares or reports tokens takes the names from here, in this order, so that a
column list, a ``--json`` shape and a comparison can never disagree on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

STORED_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "cache_read_tokens",
)
"""The five counts a record holds and the database stores (columns of the same names)."""

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
"""The four counts a report shows (``cache_creation_tokens`` = 5m + 1h writes)."""

TOTAL_FIELDS = (*TOKEN_FIELDS, "total_tokens")
"""The token keys of a DESIGN §10 ``totals`` object."""


def totals(tokens: Sequence[Any], cost_usd: Any, records: Any) -> dict[str, Any]:
    """The DESIGN §10 ``totals`` shape of :data:`STORED_TOKEN_FIELDS` sums (``None`` = 0),
    with the cache writes by lifetime and the number of records beside it."""
    inp, out, c5, c1, read = (int(v or 0) for v in tokens)
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_creation_tokens": c5 + c1,
        "cache_read_tokens": read,
        "total_tokens": inp + out + c5 + c1 + read,
        "cost_usd": round(float(cost_usd or 0), 10),
        "cache_creation_5m_tokens": c5,
        "cache_creation_1h_tokens": c1,
        "records": int(records or 0),
    }
