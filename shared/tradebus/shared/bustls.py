"""TLS to the bus: the files a process is given (CA, client certificate, client key) and the
SSL context made of them.

The CA is what the bus's certificate is checked against (without one, the system's CAs);
a client certificate and key are presented to a bus that asks for them (mutual TLS). A file
that is missing or not what it should be refuses start-up with a ConfigError naming the
setting, never a handshake error later.
"""

from __future__ import annotations

import ssl

import msgspec

from .config import ConfigError


class TlsFiles(msgspec.Struct, frozen=True, kw_only=True):
    """Paths of PEM files; "" = not given."""

    ca: str = ""
    cert: str = ""
    key: str = ""

    @property
    def given(self) -> bool:
        return bool(self.ca or self.cert or self.key)


_LABELS = {"ca": "CA", "cert": "client certificate", "key": "client key"}
_SETTINGS = {which: f"setting nats_tls_{which}, --tls-{which} or TRADEBUS_NATS_TLS_{which.upper()}"
             for which in _LABELS}


def tls_context(files: TlsFiles) -> ssl.SSLContext | None:
    """The context to connect with, or None when no file is given (a `tls://` URL then uses
    the system's CAs). ConfigError for a file that cannot be used."""
    if not files.given:
        return None
    if bool(files.cert) != bool(files.key):
        given, missing = ("certificate", "key") if files.cert else ("key", "certificate")
        raise ConfigError(f"a TLS client {given} needs its {missing} ({_SETTINGS['key' if files.cert else 'cert']})")
    for which, path in (("ca", files.ca), ("cert", files.cert), ("key", files.key)):
        if path:
            _check_readable(which, path)
    try:
        context = ssl.create_default_context(cafile=files.ca or None)
    except ssl.SSLError as exc:
        raise ConfigError(f"cannot use the TLS CA file {files.ca} ({_SETTINGS['ca']}): {_reason(exc)}") from None
    if files.cert:
        try:
            context.load_cert_chain(files.cert, files.key)
        except ssl.SSLError as exc:  # never the key's contents: only what is wrong with the pair
            raise ConfigError(f"cannot use the TLS client certificate {files.cert} with the key {files.key}: "
                              f"{_reason(exc)}") from None
    return context


def _check_readable(which: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot read the TLS {_LABELS[which]} file {path} ({_SETTINGS[which]}): "
                          f"{exc.strerror}") from None


def _reason(exc: ssl.SSLError) -> str:
    return (exc.reason or str(exc)).replace("_", " ").lower()
