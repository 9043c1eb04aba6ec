-- Alerts (spec "Alerting Configuration"): one row each time a MIGRATION_ALERTS rule starts
-- firing or resolves during a run. Written by the run that raised it, read by
-- `context-cleaner status` and the dashboard. Run history: never rolled back, except by
-- `rollback --mode schema`, which drops every table. Same rules as 001: no database name,
-- one statement per ';', IF NOT EXISTS everywhere.
CREATE TABLE IF NOT EXISTS migration_alerts
(
    migration_id String,
    run_kind LowCardinality(String) COMMENT 'migrate | sync',
    alert LowCardinality(String) COMMENT 'high_error_rate | slow_processing | high_memory_usage | migration_stalled',
    state Enum8('firing' = 1, 'resolved' = 2),
    raised_at DateTime64(3, 'UTC') COMMENT 'when the rule was evaluated',
    metric LowCardinality(String) COMMENT 'error_rate | tokens_per_second | memory_usage_ratio | seconds_without_progress',
    value Float64 COMMENT 'the measured value that crossed (or came back under) the threshold',
    threshold Float64,
    window_seconds UInt32 COMMENT 'the window the value was measured over (0 = the run so far)',
    message String,
    host LowCardinality(String)
)
ENGINE = MergeTree
ORDER BY (migration_id, raised_at, alert);
