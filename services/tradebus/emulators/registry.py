"""The venues that can be emulated: one line per emulator. Import paths, not imports, so
running one emulator loads only its own code."""

from __future__ import annotations

from importlib import import_module

from .server import Emulator

EMULATORS: dict[str, str] = {
    "binance": "tradebus.emulators.binance:BinanceEmulator",
    "bybit": "tradebus.emulators.bybit:BybitEmulator",
    "alpaca": "tradebus.emulators.alpaca:AlpacaEmulator",
}


def emulator_class(venue: str) -> type[Emulator]:
    try:
        module_name, class_name = EMULATORS[venue].split(":")
    except KeyError:
        raise ValueError(f"no emulator for venue {venue!r}; emulated venues: {', '.join(sorted(EMULATORS))}") from None
    return getattr(import_module(module_name), class_name)
