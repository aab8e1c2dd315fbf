"""Rules of the markets venues trade on (sessions, holidays, order limits, charges), as data
with named sources, shared by the connectors of those markets and the paper venue."""
