"""Fyers API v3, emulated: see app.py for what is and is not served."""

from .app import FyersEmulator

__all__ = ["FyersEmulator"]
