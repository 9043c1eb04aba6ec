-- What reports read: per (session, UTC 15-minute bucket, model, project, host, edge) sums of
-- the counted records (rules 1-5), recomputed for the sessions a batch touched, exactly as
-- enhanced_token_summaries (newer `ver` replaces, tombstones for groups without usage).
-- `bucket` is the start of the UTC interval [bucket, bucket + 15 min) holding the records;
-- `edge` = 1 groups the records exactly at `bucket`. Every UTC offset in use is a multiple
-- of 15 minutes, so a group never spans a local midnight in any zone, and (edge records
-- apart) never an end-closed UTC hour, the hour a 5-hour block starts at (counting.md).
CREATE TABLE IF NOT EXISTS enhanced_token_buckets
(
    session_id String,
    bucket DateTime('UTC') COMMENT 'start of the UTC 15-minute interval of the records',
    model LowCardinality(String),
    project LowCardinality(String),
    host LowCardinality(String),
    edge UInt8 COMMENT '1 = the records exactly at bucket (the end of the previous hour)',
    input_tokens UInt64,
    output_tokens UInt64,
    cache_creation_5m_tokens UInt64,
    cache_creation_1h_tokens UInt64,
    cache_read_tokens UInt64,
    cost_usd Float64,
    record_count UInt64,
    first_timestamp DateTime64(3, 'UTC'),
    last_timestamp DateTime64(3, 'UTC'),
    migration_id LowCardinality(String) COMMENT 'the run that computed this row',
    ver UInt64 COMMENT 'computation order (ns since the epoch): the newest row wins',
    is_deleted UInt8 DEFAULT 0 COMMENT '1 = tombstone: the group has no usage any more'
)
ENGINE = ReplacingMergeTree(ver, is_deleted)
ORDER BY (session_id, bucket, model, project, host, edge)
COMMENT 'per 15-minute rollup of counted_token_details; read with FINAL';

-- A database created before this file: fill the rollup once from the counted records.
-- Repeating it (a crash before the file is recorded) writes the same rows again, which
-- replace themselves.
INSERT INTO enhanced_token_buckets
    (session_id, bucket, model, project, host, edge, input_tokens, output_tokens,
     cache_creation_5m_tokens, cache_creation_1h_tokens, cache_read_tokens, cost_usd,
     record_count, first_timestamp, last_timestamp, migration_id, ver, is_deleted)
SELECT
    session_id,
    toDateTime(intDiv(toUnixTimestamp64Milli(timestamp), 900000) * 900, 'UTC') AS bucket,
    model, project, host,
    toUInt8(toUnixTimestamp64Milli(timestamp) % 900000 = 0) AS edge,
    sum(input_tokens), sum(output_tokens), sum(cache_creation_5m_tokens),
    sum(cache_creation_1h_tokens), sum(cache_read_tokens), sum(cost_usd), count(),
    min(timestamp), max(timestamp), 'schema-006', toUInt64(1), toUInt8(0)
FROM counted_token_details
GROUP BY session_id, bucket, model, project, host, edge;
