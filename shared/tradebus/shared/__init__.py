"""Runtime used by every tradebus service."""
