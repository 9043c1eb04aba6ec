"""How a run groups its work by default (a leaf module: the CLI's help reads it cheaply)."""

from __future__ import annotations

#: Bounds on one read batch: source bytes (memory stays flat whatever the corpus).
MAX_BATCH_BYTES = 64 * 1024 * 1024

#: Seconds of read batches one commit gathers. Each commit costs ~0.1 s of fixed
#: database work (inserts, the summary refresh, the offsets) whatever its size,
#: and a waiting reader gets the database within about this long.
COMMIT_EVERY = 1.0

#: A commit never gathers more usage records than this, so memory stays flat whatever
#: the corpus or the machine (usually ``COMMIT_EVERY`` ends a unit first). Since the
#: engine's freed memory is released after each unit, working memory hardly depends on
#: it: 1 GB migrated, 49-64 MiB at 10k-20k, 68 MiB at 40k; 500 MB takes 2.07 CPU-s at
#: 40k against 2.30 at 10k (fewer units, each ~0.1 s of fixed database work).
COMMIT_MAX_RECORDS = 40_000
