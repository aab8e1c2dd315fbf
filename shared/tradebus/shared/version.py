"""The installed tradebus version, as services announce it and `tradebus --version` prints it."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("tradebus")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0+unknown"
