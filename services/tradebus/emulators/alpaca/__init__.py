"""Alpaca trading API v2, emulated: see app.py for what is and is not served."""

from .app import AlpacaEmulator

__all__ = ["AlpacaEmulator"]
