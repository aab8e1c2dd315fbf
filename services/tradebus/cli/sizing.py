"""`tradebus size`: ask the sizing service how much to trade, and print the quantity with
the steps that led to it (`--json`: the wire reply)."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation

import msgspec

from tradebus.client import Client, QueryError
from tradebus.schemas.codecs import convert, encode
from tradebus.schemas.sizing import SizePosition, SizingMethod
from tradebus.schemas.values import Side

from .busclient import connect_client
from .numbers import plain

# flag -> SizePosition field, for the method parameters (each optional: the method says which it needs)
PARAMETERS = {
    "risk": "risk_fraction", "entry": "entry_price", "stop": "stop_price", "win_probability": "win_probability",
    "win_loss_ratio": "win_loss_ratio", "kelly_fraction": "kelly_fraction", "max_fraction": "max_fraction",
    "atr": "atr", "atr_multiplier": "atr_multiplier",
}


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal: {text!r}") from None


def add_size_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    parser = commands.add_parser("size", parents=[common], help="how much to trade: position sizing with its reasoning")
    parser.add_argument("--venue", required=True, help="venue whose instrument rules apply (paper, binance, ...)")
    parser.add_argument("--account", required=True, help="venue account whose equity is sized from")
    parser.add_argument("--symbol", required=True, help="the instrument")
    parser.add_argument("--side", required=True, choices=[side.value for side in Side], help="%(choices)s")
    parser.add_argument("--method", required=True, choices=[method.value for method in SizingMethod],
                        help="%(choices)s")
    parser.add_argument("--entry", type=_decimal, required=True, help="entry price")
    parser.add_argument("--risk", type=_decimal, help="fraction of equity risked (fixed_fractional, atr): 0.01 = 1 %%")
    parser.add_argument("--stop", type=_decimal, help="stop price (fixed_fractional)")
    parser.add_argument("--win-probability", type=_decimal, help="probability of a win (kelly)")
    parser.add_argument("--win-loss-ratio", type=_decimal, help="average win / average loss (kelly)")
    parser.add_argument("--kelly-fraction", type=_decimal, help="share of full Kelly (kelly; default 0.5)")
    parser.add_argument("--max-fraction", type=_decimal, help="most of equity to allocate (kelly; default 0.25)")
    parser.add_argument("--atr", type=_decimal, help="average true range in price units (atr)")
    parser.add_argument("--atr-multiplier", type=_decimal, help="stop distance in ATRs (atr; default 2)")
    parser.add_argument("--json", action="store_true", help="the reply exactly as the sizing service sent it")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer (default 5)")


async def size(args: argparse.Namespace) -> int:
    given = {field: getattr(args, flag) for flag, field in PARAMETERS.items() if getattr(args, flag) is not None}
    try:
        request = convert({"venue": args.venue, "account": args.account, "symbol": args.symbol, "side": args.side,
                           "method": args.method, **given}, SizePosition)
    except msgspec.ValidationError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 2
    client = Client(await connect_client(args, "tradebus-size"))
    try:
        reply = await client.size(request, timeout=args.timeout)
    except QueryError as exc:
        print(f"tradebus: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    if args.json:
        print(encode(reply).decode())
    elif not reply.ok:
        print(f"tradebus: sizing refused ({reply.refusal.value if reply.refusal else 'unknown'}): {reply.error}",
              file=sys.stderr)
    else:
        print(f"quantity {plain(reply.quantity)} {args.symbol}" + (f"  ({reply.zero_reason})" if reply.zero_reason else ""))
        print("\n".join(f"  {step}" for step in reply.reasoning))
    return 0 if reply.ok else 1
