-- Migration tracking (spec "Migration Tracking Tables", plus what exactly-once needs).
-- Same rules as 001: no database name, one statement per ';', IF NOT EXISTS everywhere.

-- What each run did, step by step (spec columns plus host).
CREATE TABLE IF NOT EXISTS migration_execution_log
(
    migration_id String,
    execution_timestamp DateTime64(3, 'UTC'),
    phase LowCardinality(String),
    operation String,
    status Enum8('started' = 1, 'completed' = 2, 'failed' = 3),
    details String,
    processing_time_ms UInt32,
    host LowCardinality(String)
)
ENGINE = MergeTree
ORDER BY (migration_id, execution_timestamp);

-- One row per commit of a file's byte range (DESIGN §5): rows are inserted first, then a
-- row here records [range_start, committed_offset) as done. The current state of a file is
-- its latest row by processed_at; older rows are the history a partial rollback needs.
-- File identity = (device, inode) plus file_hash; a file that shrank or whose head changed
-- is read again from 0.
CREATE TABLE IF NOT EXISTS migration_file_tracking
(
    migration_id String,
    file_path String COMMENT 'relative to source_root, /-separated (as UsageRecord.file_path)',
    file_hash String COMMENT 'hash of the first 4 KiB (the head hash of the file identity)',
    processing_status Enum8('pending' = 1, 'processing' = 2, 'completed' = 3, 'failed' = 4),
    tokens_found UInt64,
    records_inserted UInt32,
    error_message String,
    processed_at DateTime64(6, 'UTC'),
    host LowCardinality(String),
    source_root String COMMENT 'the transcript root the path is relative to',
    device UInt64,
    inode UInt64,
    file_size UInt64 COMMENT 'size when the range was read',
    mtime_ns Int64 COMMENT 'modification time when the range was read, ns since the epoch',
    range_start UInt64 COMMENT 'first byte of the range this row commits',
    committed_offset UInt64 COMMENT 'bytes [0, committed_offset) are in the database',
    lines_skipped UInt64,
    schema_version UInt16 DEFAULT 1 COMMENT 'layout version of this row; upgraded step by step'
)
ENGINE = MergeTree
ORDER BY (migration_id, file_path, processed_at);
