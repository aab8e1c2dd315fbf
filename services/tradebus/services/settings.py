"""The fleet's settings: one model for every service, so one file can configure a whole
fleet and an unknown key is an error wherever it appears.

Loaded from a TOML file (`--config`, or TRADEBUS_CONFIG) and environment variables
(`TRADEBUS_NATS_URL`, `TRADEBUS_PAPER__SEED`, ...); see docs/configuration.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from tradebus.shared.config import ENV_PREFIX, load_config
from tradebus.shared.service import RuntimeSettings

from .audit.config import AuditConfig
from .connector.config import ConnectorConfig
from .connector.venues.paper.config import PaperConfig
from .connector.venuespecs import venue_spec
from .oms.config import OmsConfig
from .risk.config import RiskConfig
from .sizing.config import SizingConfig


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "tradebus")


class Settings(RuntimeSettings, kw_only=True, forbid_unknown_fields=True):
    data_dir: str = msgspec.field(default_factory=default_data_dir)
    connector: ConnectorConfig = msgspec.field(default_factory=ConnectorConfig)
    paper: PaperConfig = msgspec.field(default_factory=PaperConfig)
    audit: AuditConfig = msgspec.field(default_factory=AuditConfig)
    oms: OmsConfig = msgspec.field(default_factory=OmsConfig)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    sizing: SizingConfig = msgspec.field(default_factory=SizingConfig)
    # `[venues.<venue>]` tables: checked against the venue's own config type by the process
    # that runs the venue (each venue's SDK is an optional extra, not imported here).
    venues: dict[str, dict[str, Any]] = {}


def load_settings(path: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    return load_config(Settings, path=path or env.get("TRADEBUS_CONFIG"), env=env)


def venue_config(settings: Settings, venue: str, env: Mapping[str, str] | None = None) -> msgspec.Struct:
    """The settings of a venue: its own section (`[paper]`) where its spec names one, else
    `[venues.<venue>]` overridden by environment variables `TRADEBUS_VENUES__<VENUE>__<KEY>`
    (e.g. TRADEBUS_VENUES__BINANCE__TESTNET), as the type its spec names."""
    spec = venue_spec(venue)
    if spec.section is not None:
        section: msgspec.Struct = getattr(settings, spec.section)
        return section
    config: msgspec.Struct = load_config(
        spec.config_class(), table=(f"[venues.{venue}]", settings.venues.get(venue, {})), env=env,
        prefix=f"{ENV_PREFIX}VENUES__{venue.upper()}__",
    )
    return config
