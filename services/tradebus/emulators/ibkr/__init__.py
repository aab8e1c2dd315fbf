"""TWS / IB Gateway (Interactive Brokers), emulated: the TWS API socket protocol, see app.py."""

from .app import IbkrEmulator

__all__ = ["IbkrEmulator"]
