"""A durable consumer on the Kafka transport as a process of its own, for a test that SIGKILLs
it: `python kafkatransportmember.py BOOTSTRAP GROUP SUBJECT_FILTER HANG_AT`.

It prints one JSON line per record handed to it (`{"offset": ..., "value": ...}`) and
acknowledges it, except the record whose value is HANG_AT: that one it prints and then works
on for ever (a handler in the middle of its work when the process dies).
"""

from __future__ import annotations

import asyncio
import json
import sys

from tradebus.shared.kafkatransport import GroupTimings, KafkaTransport
from tradebus.shared.transport import Delivery

FAST_GROUP = GroupTimings(session_timeout_ms=1000, heartbeat_interval_ms=200, rebalance_timeout_ms=1000)


async def member(bootstrap: str, group: str, subject_filter: str, hang_at: str) -> None:
    transport = await KafkaTransport.connect(bootstrap, client_id="member", timings=FAST_GROUP)

    async def handle(batch: list[Delivery]) -> None:
        for delivery in batch:
            print(json.dumps({"offset": delivery.position.offset, "value": delivery.data.decode()}), flush=True)
            if delivery.data.decode() == hang_at:
                await asyncio.Event().wait()
            await delivery.ack()

    await transport.consume(group, [subject_filter], handle, batch=10, stopping=asyncio.Event())


if __name__ == "__main__":
    asyncio.run(member(*sys.argv[1:5]))
