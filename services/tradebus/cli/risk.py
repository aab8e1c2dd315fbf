"""`tradebus risk limits`: the limits the running risk service applies, asked over its
control subject and printed as a limits file (`--json`: the wire reply)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

from tradebus.schemas import subjects
from tradebus.schemas.codecs import encode, reply_decoder
from tradebus.schemas.control import GetRiskLimits, RiskLimitsReply
from tradebus.schemas.subjects import Family

from . import tomlfile
from .busclient import connect_client

_reply = reply_decoder(Family.RISK_CONTROL)


def add_risk_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    risk = commands.add_parser("risk", help="the risk gate")
    risk_commands = risk.add_subparsers(dest="subcommand", required=True)
    limits = risk_commands.add_parser("limits", parents=[common], help="the limits risk applies now (built-ins included)")
    limits.add_argument("--json", action="store_true", help="the reply exactly as risk sent it")
    limits.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for risk (default %(default)s)")


async def show_limits(args: argparse.Namespace) -> int:
    import nats

    nc = await connect_client(args, "tradebus-risk")
    try:
        answer = await nc.request(subjects.RISK_CONTROL, encode(GetRiskLimits()), timeout=args.timeout)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
        print(f"tradebus: risk did not answer on {subjects.RISK_CONTROL} within {args.timeout:g} s (is it running?)",
              file=sys.stderr)
        return 1
    finally:
        await nc.close()
    reply = _reply.decode(answer.data)
    if not isinstance(reply, RiskLimitsReply) or not reply.ok:
        print(f"tradebus: risk refused the request: {getattr(reply, 'error', '') or reply}", file=sys.stderr)
        return 1
    if args.json:
        print(answer.data.decode())
        return 0
    print(f"# Risk limits in force, from {reply.source}; [defaults] include the built-in defaults.")
    print(tomlfile.dumps(_as_limits_file(reply)), end="")
    return 0


def _as_limits_file(reply: RiskLimitsReply) -> dict[str, Any]:
    """The reply in the limits file's shape: no message tags, no unset (inherited) fields."""
    document: dict[str, Any] = msgspec.to_builtins(reply)  # a Struct: a dict
    for key in ("type", "ok", "source", "error"):
        document.pop(key, None)
    return _without_tags_and_nulls(document)


def _without_tags_and_nulls(node: dict[str, Any]) -> dict[str, Any]:
    return {key: _without_tags_and_nulls(value) if isinstance(value, dict) else value for key, value in node.items()
            if key != "type" and value is not None and value != {}}
