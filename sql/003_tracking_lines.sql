-- File tracking needs two more facts to resume exactly: the number of the first line after
-- the committed offset (so line numbers stay true across runs) and how many head bytes the
-- head hash covers (a file smaller than 4 KiB when committed is compared on that many bytes).
ALTER TABLE migration_file_tracking ADD COLUMN IF NOT EXISTS committed_line UInt64 DEFAULT 1
    COMMENT 'the 1-based number of the first line after committed_offset';
ALTER TABLE migration_file_tracking ADD COLUMN IF NOT EXISTS head_length UInt32 DEFAULT 0
    COMMENT 'bytes covered by file_hash (min(4096, committed_offset))';

-- Snapshots taken for rollback (DESIGN §6): one row per snapshot; `tables` lists the
-- snapshot table of each migration-owned table. Rows of dropped snapshots are tombstoned.
CREATE TABLE IF NOT EXISTS migration_snapshots
(
    snapshot_id String,
    migration_id String,
    checkpoint String COMMENT 'empty for the snapshot taken before the run',
    created_at DateTime64(3, 'UTC'),
    host LowCardinality(String),
    tables Map(String, String) COMMENT 'table -> its snapshot table',
    row_counts Map(String, UInt64),
    ver UInt64,
    is_deleted UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(ver, is_deleted)
ORDER BY snapshot_id;
