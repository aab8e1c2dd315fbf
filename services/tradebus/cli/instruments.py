"""`tradebus instruments`: a venue's reference data (tick size, lot size, minimums), asked
of its connector on `tradebus.ctl.instruments.<venue>`."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal

from tradebus.client import Client, QueryError
from tradebus.schemas.codecs import encode
from tradebus.schemas.market import Instrument

from .busclient import connect_client
from .columns import aligned

COLUMNS = ("symbol", "venue_symbol", "asset_class", "base", "quote", "tick_size", "lot_size", "min_quantity",
           "min_notional")


def add_instruments_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    parser = commands.add_parser("instruments", parents=[common], help="show a venue's instruments and trading rules")
    parser.add_argument("--venue", required=True, help="venue whose connector answers (paper, binance, ...)")
    parser.add_argument("--symbol", action="append", help="only this symbol (repeatable; default every instrument)")
    parser.add_argument("--json", action="store_true", help="one instrument per line, exactly the wire JSON")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the connector (default 5)")


def table(instruments: list[Instrument]) -> list[str]:
    """Aligned columns; decimals exactly as the venue gives them (never through a float)."""
    return aligned([COLUMNS, *(tuple(_cell(getattr(i, column)) for column in COLUMNS) for i in instruments)])


def _cell(value: object) -> str:
    # Positional notation: str(Decimal("0.000000001")) would print 1E-9.
    return f"{value:f}" if isinstance(value, Decimal) else str(value)


async def instruments(args: argparse.Namespace) -> int:
    client = Client(await connect_client(args, "tradebus-instruments"))
    try:
        listed = await client.instruments(args.venue, args.symbol or (), timeout=args.timeout)
    except QueryError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    lines = [encode(i).decode() for i in listed] if args.json else table(listed)
    print("\n".join(lines))
    return 0
