"""The risk gate: the only service allowed to route commands to connectors."""
