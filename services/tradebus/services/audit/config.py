"""Settings of the audit logger (the `[audit]` section; env `TRADEBUS_AUDIT__<KEY>`)."""

from __future__ import annotations

import os
import re
from typing import Literal

import msgspec

from tradebus.shared.config import Secret

# The table name is spliced into SQL (identifiers cannot be query parameters): allow only
# plain identifiers short enough that the names derived from it (`<table>_order_key`,
# `<table>_streams`) stay within PostgreSQL's 63-byte limit instead of being cut short.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,52}$")


class AuditConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    store: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: str = ""  # empty = <data_dir>/audit.sqlite
    postgres_dsn: Secret | None = None  # a DSN can hold a password
    postgres_table: str = "audit_log"
    batch_size: int = 500  # messages fetched, committed in one transaction, then acked

    def __post_init__(self) -> None:
        if self.store == "postgres" and self.postgres_dsn is None:
            raise ValueError("store = 'postgres' needs postgres_dsn")
        if not _IDENTIFIER.match(self.postgres_table):
            raise ValueError(f"postgres_table {self.postgres_table!r} is not a plain SQL identifier of at most 53 characters")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {self.batch_size}")

    def sqlite_file(self, data_dir: str) -> str:
        return self.sqlite_path or os.path.join(data_dir, "audit.sqlite")
