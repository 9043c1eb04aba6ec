"""Prefect orchestration of the migration; nothing outside this package imports Prefect.

The flows (``historical_migration_flow``, ``incremental_sync_flow``,
``validation_flow``, ``rollback_flow``) are in :mod:`.flows`, their tasks in
:mod:`.flow_tasks`, their reports in :mod:`.flow_reports`.
"""
