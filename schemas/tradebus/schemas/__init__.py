"""The tradebus wire contract: message types, the subject registry and codecs. No I/O."""

CONTRACT_VERSION = 1
