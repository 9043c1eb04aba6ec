-- Core tables: usage records, their per-(session, day, model) rollup, one row per run.
-- Rules for every file in sql/: plain SQL without a database name (the client's
-- database is used), one statement per ';', and every statement safe to run twice
-- (IF NOT EXISTS), because a file that fails half-way is run again from its start.
-- Never edit a file once released: add the next NNN_name.sql instead.

-- One row per usage record (DESIGN §3, §4). The key is rule 2's (message.id, requestId);
-- `ver` encodes rule 3 (UsageRecord.version), so ReplacingMergeTree keeps the preferred
-- duplicate whatever order rows arrive in. A line without message.id is stored under the
-- synthetic id 'nomsgid:<16 hex digits of path_hash(file_path)>:<byte_offset>': unique per
-- line, so it never collapses with another line, yet a replay of the same byte range
-- lands on the same key and changes nothing. No time partitioning: merges never cross
-- partitions, so duplicates in two months would both survive. Exact reads use FINAL.
CREATE TABLE IF NOT EXISTS enhanced_token_details
(
    message_id String COMMENT 'message.id, or nomsgid:<path hash>:<byte offset> when the line has none',
    request_id String COMMENT 'requestId, or empty',
    ver UInt256 COMMENT 'rule 3 preference (UsageRecord.version): FINAL keeps the largest',
    session_id String COMMENT 'the file''s session (subagent files belong to their parent session)',
    line_session_id String COMMENT 'the line''s own sessionId',
    project LowCardinality(String),
    file_path String COMMENT 'relative to its transcript root, /-separated',
    line_number UInt64 CODEC(Delta, ZSTD(1)),
    byte_offset UInt64 CODEC(Delta, ZSTD(1)),
    timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    model LowCardinality(String),
    is_sidechain Bool,
    speed LowCardinality(String) COMMENT 'usage.speed (standard, fast) or empty',
    from_progress Bool COMMENT 'usage embedded in a progress line',
    input_tokens UInt64,
    output_tokens UInt64,
    cache_creation_5m_tokens UInt64,
    cache_creation_1h_tokens UInt64,
    cache_read_tokens UInt64,
    cache_creation_tokens UInt64 ALIAS cache_creation_5m_tokens + cache_creation_1h_tokens,
    total_tokens UInt64 ALIAS input_tokens + output_tokens + cache_creation_5m_tokens
        + cache_creation_1h_tokens + cache_read_tokens,
    cost_usd Float64 COMMENT 'costUSD of the line, else priced from the offline table',
    cost_from_line Bool COMMENT 'true when cost_usd is the line''s own costUSD',
    host LowCardinality(String),
    user LowCardinality(String),
    migration_id LowCardinality(String) COMMENT 'the run that inserted this version of the row',
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_session_id session_id TYPE bloom_filter GRANULARITY 4,
    INDEX idx_file_path file_path TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(ver)
ORDER BY (message_id, request_id)
COMMENT 'one row per Claude Code usage record; read with FINAL';

-- What the dashboard reads: per (session, UTC day, model) sums of the counted records
-- (rules 1-5), recomputed for the sessions a batch touched. A recomputation inserts rows
-- with a larger `ver`, which replace the old ones; a group that no longer has usage gets
-- a tombstone (is_deleted = 1). Never a materialized view: it would sum every inserted
-- block, so a replay would double-count.
CREATE TABLE IF NOT EXISTS enhanced_token_summaries
(
    session_id String,
    day Date COMMENT 'UTC date of the records',
    model LowCardinality(String),
    project LowCardinality(String),
    host LowCardinality(String),
    input_tokens UInt64,
    output_tokens UInt64,
    cache_creation_5m_tokens UInt64,
    cache_creation_1h_tokens UInt64,
    cache_read_tokens UInt64,
    cache_creation_tokens UInt64 ALIAS cache_creation_5m_tokens + cache_creation_1h_tokens,
    total_tokens UInt64 ALIAS input_tokens + output_tokens + cache_creation_5m_tokens
        + cache_creation_1h_tokens + cache_read_tokens,
    cost_usd Float64,
    record_count UInt64,
    first_timestamp DateTime64(3, 'UTC'),
    last_timestamp DateTime64(3, 'UTC'),
    migration_id LowCardinality(String) COMMENT 'the run that computed this row',
    computed_at DateTime64(3, 'UTC') DEFAULT now64(3),
    ver UInt64 COMMENT 'computation order (ns since the epoch): the newest row wins',
    is_deleted UInt8 DEFAULT 0 COMMENT '1 = tombstone: the group has no usage any more'
)
ENGINE = ReplacingMergeTree(ver, is_deleted)
ORDER BY (session_id, day, model)
COMMENT 'per (session, day, model) rollup of enhanced_token_details; read with FINAL';

-- One row per run (migrate, sync, validate, rollback), rewritten as the run progresses:
-- the row with the latest updated_at wins.
CREATE TABLE IF NOT EXISTS enhanced_analysis_metadata
(
    migration_id String,
    run_kind LowCardinality(String) COMMENT 'migrate | sync | validate | rollback',
    status LowCardinality(String) COMMENT 'running | completed | failed | rolled_back',
    started_at DateTime64(3, 'UTC'),
    finished_at Nullable(DateTime64(3, 'UTC')),
    host LowCardinality(String),
    user LowCardinality(String),
    tool_version String,
    schema_version String COMMENT 'name of the last schema file applied',
    source_roots Array(String),
    files_found UInt64,
    files_processed UInt64,
    files_skipped UInt64,
    files_failed UInt64,
    records_inserted UInt64,
    lines_skipped UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_creation_5m_tokens UInt64,
    cache_creation_1h_tokens UInt64,
    cache_read_tokens UInt64,
    total_tokens UInt64 ALIAS input_tokens + output_tokens + cache_creation_5m_tokens
        + cache_creation_1h_tokens + cache_read_tokens,
    cost_usd Float64,
    details String COMMENT 'JSON: options, errors, validation results',
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY migration_id
COMMENT 'one row per run; read with FINAL';
