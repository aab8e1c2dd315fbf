"""The simulated exchange shared by the paper venue and every venue emulator.

exchange.py: `SimulatedExchange`, the matching engine and account ledger (its parts:
book.py, matching.py, ledger.py, commands.py, events.py, journal.py, state.py); rules.py:
instrument specs, fees and order checks; market.py: the simulated market (random walk,
recorded replay) that feeds it. Pure Python, no I/O: the paper connector and the emulators
(tradebus.emulators) bring it commands and market data, and publish or render what it returns.
"""
