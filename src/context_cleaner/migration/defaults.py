"""How a run groups its work by default (a leaf module: the CLI's help reads it cheaply)."""

from __future__ import annotations

#: Bounds on one read batch: source bytes (memory stays flat whatever the corpus).
MAX_BATCH_BYTES = 64 * 1024 * 1024

#: Seconds of read batches one commit gathers. Each commit costs ~0.1 s of fixed
#: database work (inserts, the summary refresh, the offsets) whatever its size,
#: and a waiting reader gets the database within about this long.
COMMIT_EVERY = 1.0

#: A commit never gathers more usage records than this (memory stays bounded).
COMMIT_MAX_RECORDS = 200_000
