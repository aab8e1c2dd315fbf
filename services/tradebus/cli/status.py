"""`tradebus status`: ask every service on the bus for its status."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import nats

from tradebus.schemas import subjects
from tradebus.schemas.codecs import DecodeError, reply_decoder
from tradebus.schemas.control import ServiceStatus
from tradebus.schemas.subjects import Family

from .main import connect_client

_status_decoder = reply_decoder(Family.PING)


def status_table(statuses: list[ServiceStatus], *, rates: dict[str, float] | None = None) -> str:
    """A fixed-width table of services; `rates` (messages/s) by service key when known."""
    now = time.time_ns()
    lines = [f"{'SERVICE':<22} {'STATE':<9} {'PID':>7} {'HEARTBEAT':>10} {'MSG/S':>9}  DETAIL"]
    for status in sorted(statuses, key=lambda s: (s.service, s.instance)):
        key = f"{status.service}.{status.instance}"
        age = (now - status.ts_event) / 1e9
        rate = f"{rates[key]:,.0f}" if rates and key in rates else "-"
        lines.append(f"{key:<22} {status.state.value:<9} {status.pid:>7} {age:>9.1f}s {rate:>9}  {status.detail}")
    return "\n".join(lines)


async def collect_statuses(nc: nats.NATS, wait: float) -> list[ServiceStatus]:
    """Ping the fleet and gather every answer that arrives within `wait` seconds."""
    inbox = nc.new_inbox()
    answers: dict[str, ServiceStatus] = {}

    async def on_answer(msg: nats.aio.msg.Msg) -> None:
        try:
            status = _status_decoder.decode(msg.data)
        except DecodeError:
            return
        answers[f"{status.service}.{status.instance}"] = status

    subscription = await nc.subscribe(inbox, cb=on_answer)
    await nc.publish(subjects.PING, b"", reply=inbox)
    await asyncio.sleep(wait)
    await subscription.unsubscribe()
    return list(answers.values())


async def status(args: argparse.Namespace) -> int:
    nc = await connect_client(args, "tradebus-status")
    try:
        statuses = await collect_statuses(nc, args.wait)
    finally:
        await nc.close()
    if not statuses:
        print("no service answered", file=sys.stderr)
        return 1
    print(status_table(statuses))
    return 0

