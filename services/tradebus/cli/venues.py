"""`tradebus venues`: the venues this installation knows, one line each from its spec line
(connector/venuespecs.py): the SDK it needs and whether it is installed here, whether it has
an emulator, the order groups it holds natively (a group of another kind is refused with
`unsupported_order_group`) and its daily login, if any."""

from __future__ import annotations

import argparse
from importlib.util import find_spec

from tradebus.services.connector.venuespecs import VENUE_SPECS, VenueSpec

from .columns import aligned

COLUMNS = ("VENUE", "SDK", "HERE", "EMULATOR", "NATIVE GROUPS", "LOGIN")


def _row(spec: VenueSpec) -> tuple[str, ...]:
    if spec.sdk is None:
        sdk, here = "built in", "yes"
    else:
        sdk = f"{spec.sdk} ({spec.extra})"
        if find_spec(spec.sdk) is not None:
            here = "yes"
        elif spec.environment is not None:  # its SDK cannot share this environment (venuespecs.py)
            here = f"its own: {spec.environment}"
        else:
            here = f"pip install 'tradebus[{spec.extra}]'"
    groups = ", ".join(sorted(kind.value for kind in spec.order_groups)) or "none"
    login = f"tradebus login {spec.name}" if spec.login else "-"
    return spec.name, sdk, here, "yes" if spec.emulator else "-", groups, login


def venues(args: argparse.Namespace) -> int:
    for line in aligned([COLUMNS, *(_row(spec) for spec in VENUE_SPECS.values())]):
        print(line)
    print("Any other ccxt exchange id runs on the ccxt connector (no emulator, no native groups).")
    return 0
