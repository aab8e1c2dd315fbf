"""Place a market order on the paper venue and follow it until it is filled.

    python examples/python/place_order.py        # against `tradebus up` (TRADEBUS_NATS_URL)
"""

import asyncio
import os
import sys
from decimal import Decimal

from tradebus.client import Client
from tradebus.client.client import new_id
from tradebus.schemas.commands import PlaceOrder
from tradebus.schemas.events import OrderFilled, OrderRejected
from tradebus.schemas.values import OrderType, Side


async def main() -> int:
    url = os.environ.get("TRADEBUS_NATS_URL", "nats://127.0.0.1:4222")
    async with await Client.connect(url) as client:
        order = PlaceOrder(client_order_id=new_id(), venue="paper", account="demo", symbol="ETH/USDT",
                           side=Side.BUY, order_type=OrderType.MARKET, quantity=Decimal("0.1"))
        ticket = await client.place(order)
        async for event in ticket.events(timeout=20):
            print(type(event).__name__, event.client_order_id, getattr(event, "cum_quantity", ""))
            if isinstance(event, OrderRejected):
                print("rejected:", event.reason.value, event.message)
                return 1
        # The order manager follows the event stream a few milliseconds behind.
        record = await ticket.record()
        for _ in range(100):
            if record is not None and record.status.value == "filled":
                break
            await asyncio.sleep(0.05)
            record = await ticket.record()
        print("order manager:", record.status.value if record else "no record")
        positions = await client.positions(account="demo")
        print("positions:", {p.symbol: str(p.quantity) for p in positions})
        return 0 if isinstance(event, OrderFilled) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
