"""What refusing JSON numbers for decimals costs the command hot path (risk and connectors
decode every command).

    .venv/bin/python bench/command_decode.py [--rounds 200000]

`value`: commands decoded per second by the fleet's command decoder (decimal fields are
`PositiveDecimal`, read through `decode_hook`: a Python call and a regular expression per
decimal field). `baseline`: the same commands, same validation, decoded into the same
structs with plain `Decimal` fields (msgspec's own decimal parsing, which also takes JSON
numbers). A mix of limit places (two decimals), market places, modifies, cancels and
cancel-alls. No bus, no I/O.

Measured on the shared 2-vCPU box (2026-12, three runs of --rounds 400000): mix ratio
0.77-0.91, limit place 0.63-0.78: about +1 us per decimal field (a Python call, a regular
expression, Decimal()) on a 5-6 us decode. A command is decoded by risk, the connector and
the order manager, so an order pays a few us more, against the few hundred us of CPU the
fleet spends per order at its sustained 2,000 orders/s (bench/orders.py).
"""

from __future__ import annotations

import argparse
import json
import time
from decimal import Decimal
from typing import Union

import msgspec

from tradebus.schemas.codecs import decoder, encode
from tradebus.schemas.commands import CancelAllOrders, CancelOrder, ModifyOrder, PlaceOrder
from tradebus.schemas.subjects import Family
from tradebus.schemas.values import OrderType, Side


class PlainPlace(PlaceOrder, frozen=True, kw_only=True, tag="place"):
    quantity: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None


class PlainModify(ModifyOrder, frozen=True, kw_only=True, tag="modify"):
    quantity: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None


PLAIN = msgspec.json.Decoder(Union[PlainPlace, PlainModify, CancelOrder, CancelAllOrders])
COMMON = {"venue": "paper", "account": "demo", "ts_created": 1_700_000_000_000_000_000}
PAYLOADS = [encode(command) for command in (
    PlaceOrder(client_order_id="c-1", symbol="BTC/USDT", side=Side.BUY, order_type=OrderType.LIMIT,
               quantity=Decimal("0.015"), price=Decimal("60123.45"), **COMMON),
    PlaceOrder(client_order_id="c-2", symbol="BTC/USDT", side=Side.SELL, order_type=OrderType.MARKET,
               quantity=Decimal("0.5"), **COMMON),
    ModifyOrder(client_order_id="c-1", modify_id="m-1", quantity=Decimal("0.02"), **COMMON),
    CancelOrder(client_order_id="c-1", **COMMON),
    CancelAllOrders(request_id="r-1", **COMMON),
)]


def rate(decode: msgspec.json.Decoder, payloads: list[bytes], rounds: int) -> float:
    """Decodes per second, best of three."""
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(rounds // len(payloads)):
            for payload in payloads:
                decode.decode(payload)
        best = max(best, rounds // len(payloads) * len(payloads) / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200_000)
    rounds = parser.parse_args().rounds
    fleet = decoder(Family.COMMAND)
    same = [msgspec.structs.asdict(fleet.decode(p)) == msgspec.structs.asdict(PLAIN.decode(p)) for p in PAYLOADS]
    assert all(same), "both decoders must read the same commands"
    value, baseline = rate(fleet, PAYLOADS, rounds), rate(PLAIN, PAYLOADS, rounds)
    limit_value, limit_baseline = rate(fleet, PAYLOADS[:1], rounds), rate(PLAIN, PAYLOADS[:1], rounds)
    print(f"{'':<26}{'fleet':>12}{'plain Decimal':>16}{'ratio':>8}")
    print(f"{'command mix (decodes/s)':<26}{value:>12,.0f}{baseline:>16,.0f}{value / baseline:>8.2f}")
    print(f"{'limit place (decodes/s)':<26}{limit_value:>12,.0f}{limit_baseline:>16,.0f}{limit_value / limit_baseline:>8.2f}")
    print(json.dumps({"bench": "command_decode", "value": round(value), "baseline": round(baseline), "unit": "msg/s",
                      "ratio": round(value / baseline, 3), "limit_place_ratio": round(limit_value / limit_baseline, 3)}))


if __name__ == "__main__":
    main()
