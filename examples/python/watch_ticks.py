"""Print ten quotes of BRK.B from the paper venue, counting any message lost on the way.

    python examples/python/watch_ticks.py        # against `tradebus up` (TRADEBUS_NATS_URL)
"""

import asyncio
import os
import sys

from tradebus.client import Client
from tradebus.schemas.values import MarketDataKind
from tradebus.shared.sequence import SequenceTracker


async def main() -> int:
    url = os.environ.get("TRADEBUS_NATS_URL", "nats://127.0.0.1:4222")
    tracker = SequenceTracker()
    received = 0
    async with await Client.connect(url) as client:
        stream = client.market_data(venue="paper", kind=MarketDataKind.QUOTE, symbol="BRK.B", tracker=tracker)
        async for quote in stream:
            print(f"{quote.symbol} #{quote.seq}: {quote.bid} / {quote.ask}")
            received += 1
            if received == 10:
                break
    print(f"lost on the way: {tracker.lost}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
