"""Schedules, file triggers and backfills: deciding when runs happen."""
