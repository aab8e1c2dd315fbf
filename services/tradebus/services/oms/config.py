"""Settings of the order manager (the `[oms]` section; env `TRADEBUS_OMS__<KEY>`)."""

from __future__ import annotations

import msgspec


class OmsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    stuck_after: float = 5.0  # seconds in pending_new without a venue answer before asking the connector
    reconcile_interval: float = 2.0  # seconds between two looks for stuck orders
    batch_size: int = 500  # messages fetched and written to the bucket at once
    # The tenants file (shared/tenants.py), read at start: with it, the order manager also
    # answers `tradebus.ctl.oms.tenant.<tenant>`, each tenant about its own accounts only.
    # Empty: no tenant's query is answered.
    tenants_file: str = ""
