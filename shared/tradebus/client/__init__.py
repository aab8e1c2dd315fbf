"""The Python client of a tradebus fleet (asyncio): place, modify and cancel orders and
follow their lifecycle, stream typed market data (holding subscription leases), query
orders, positions and instrument definitions.

    async with await Client.connect("nats://127.0.0.1:4222") as client:
        ticket = await client.place(PlaceOrder(...))
        async for event in ticket.events():
            print(event)

On a secured bus: `Client.connect(url, credentials="client.creds", tls=TlsFiles(ca="ca.pem"))`.
"""

from tradebus.shared.busaccess import BusRefused, PermissionRefused
from tradebus.shared.bustls import TlsFiles

from .client import Client, OrderTicket, QueryError, Unanswered
from .leases import StreamLease

__all__ = ["BusRefused", "Client", "OrderTicket", "PermissionRefused", "QueryError", "StreamLease", "TlsFiles",
           "Unanswered"]
