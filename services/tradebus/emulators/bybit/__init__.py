"""Bybit v5 (spot, unified trading account), emulated: see app.py for what is and is not served."""

from .app import BybitEmulator

__all__ = ["BybitEmulator"]
