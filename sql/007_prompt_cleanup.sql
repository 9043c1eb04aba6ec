-- Parts a merge or a rebuild replaced ("outdated") are deleted by the engine's cleanup,
-- which runs first `cleanup_delay_period` seconds (30, plus up to 10 at random) after the
-- engine starts. An embedded engine lives as long as one command, ~1 s for an hourly sync,
-- so it never ran: 150 small syncs left 640 outdated parts, 11,000 files and 49 MB beside
-- 100 kB of data, growing with every run (docs/operations.md, "Disk use over months").
-- After 1 s it runs within the command: the command waits for it when many are pending
-- (bridge/database.py). The embedded engine keeps no outdated part for crash safety
-- (its old_parts_lifetime is 0); a server's setting is untouched by this file.
ALTER TABLE enhanced_token_details MODIFY SETTING cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE enhanced_token_summaries MODIFY SETTING cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE enhanced_token_buckets MODIFY SETTING cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE enhanced_analysis_metadata MODIFY SETTING cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE migration_execution_log MODIFY SETTING cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE migration_file_tracking MODIFY SETTING cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE migration_snapshots MODIFY SETTING cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE migration_alerts MODIFY SETTING cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
ALTER TABLE schema_migrations MODIFY SETTING cleanup_delay_period = 1, cleanup_delay_period_random_add = 0;
