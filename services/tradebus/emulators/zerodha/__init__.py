"""Kite Connect v3 (Zerodha), emulated: see app.py for what is and is not served."""

from .app import ZerodhaEmulator

__all__ = ["ZerodhaEmulator"]
