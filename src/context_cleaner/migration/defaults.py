"""How a run groups its work by default (a leaf module: the CLI's help reads it cheaply)."""

from __future__ import annotations

#: Bounds on one read batch: source bytes (memory stays flat whatever the corpus).
MAX_BATCH_BYTES = 64 * 1024 * 1024

#: Seconds of read batches one commit gathers. Each commit costs ~0.1 s of fixed
#: database work (inserts, the summary refresh, the offsets) whatever its size,
#: and a waiting reader gets the database within about this long.
COMMIT_EVERY = 1.0

#: A commit never gathers more usage records than this, so memory stays flat whatever
#: the corpus: gathering and committing a record costs this process ~3 KB at the peak
#: (1 GB migrated: 140 MiB of working memory with up to 45k records a commit, 65 MiB
#: with 10k; the time is the same).
COMMIT_MAX_RECORDS = 10_000
