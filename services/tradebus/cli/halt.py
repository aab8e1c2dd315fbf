"""`tradebus halt` and `tradebus resume`: the kill switch.

The state is written straight to the risk bucket (and the change to the event stream), so
the switch works even while the risk service is down; risk applies it as soon as it sees it.
"""

from __future__ import annotations

import argparse
import getpass
import socket
import sys

from tradebus.schemas.values import TradingState
from tradebus.services.risk.tradingstate import set_trading_state
from tradebus.shared.config import StartRefused
from tradebus.shared.topology import RISK_BUCKET, StreamSettings, ensure_bucket

from .busclient import connect_client


def add_halt_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    halt = commands.add_parser("halt", parents=[common], help="stop new orders (cancels still pass)")
    halt.add_argument("--account", help="only this account (default: the whole fleet)")
    halt.add_argument("--reducing-only", action="store_true", help="let orders that reduce positions through")
    halt.add_argument("--reason", default="", help="why: recorded in the audit trail")
    resume = commands.add_parser("resume", parents=[common], help="lift a halt")
    resume.add_argument("--account", help="only this account (default: the whole fleet)")
    resume.add_argument("--reason", default="", help="why: recorded in the audit trail")


async def set_state(args: argparse.Namespace) -> int:
    if args.command == "resume":
        state = TradingState.ACTIVE
    else:
        state = TradingState.REDUCING_ONLY if args.reducing_only else TradingState.HALTED
    nc = await connect_client(args, f"tradebus-{args.command}")
    try:
        js = nc.jetstream()
        bucket = await ensure_bucket(js, RISK_BUCKET, StreamSettings())
        change = await set_trading_state(js, bucket, account=args.account, state=state, reason=args.reason,
                                         changed_by=f"{getpass.getuser()}@{socket.gethostname()}")
    except StartRefused as exc:  # the bucket is missing and this identity may not create it
        print(f"tradebus: {exc}", file=sys.stderr)
        return 1
    finally:
        await nc.close()
    print(f"{'fleet' if change.account is None else 'account ' + change.account}: {change.state.value}")
    return 0
