"""The audit logger: every command, routing decision and event, in an append-only,
hash-chained store (SQLite by default, PostgreSQL when configured)."""
