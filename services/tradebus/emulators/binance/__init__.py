"""Binance spot, emulated: see app.py for what is and is not served."""

from .app import BinanceEmulator

__all__ = ["BinanceEmulator"]
