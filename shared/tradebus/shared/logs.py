"""Structured logs: one JSON object per line on stderr, with secrets masked.

Masking happens twice, because either alone can miss: fields whose *name* says they are
secret (`api_key`, `password`, ...) are replaced before rendering, and the rendered line
is scrubbed of every *value* registered with `redact` (config Secrets register
themselves), which also catches a secret copied into a message or an exception.
"""

from __future__ import annotations

import enum
import logging
import re
import sys
import threading
import time
from typing import IO, Any

import msgspec

MASK = "***"
MIN_SECRET_LENGTH = 4
"""Shorter values are not redacted: masking every "abc" in every line would garble logs."""

_SECRET_NAME = re.compile(
    r"secret|password|passwd|token|api_key|apikey|private_key|passphrase|authorization", re.IGNORECASE
)
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
NOISY_LOGGERS = ("nats", "urllib3", "websockets", "aiohttp", "httpx", "httpcore")
"""Third-party loggers that chatter at INFO; setup_logging raises them to at least WARNING."""


class LogLevel(enum.StrEnum):
    """The levels a service logs at; `debug` is read as `DEBUG`."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"

    @classmethod
    def _missing_(cls, value: object) -> LogLevel | None:
        return cls.__members__.get(value.upper()) if isinstance(value, str) else None


class Redactor:
    """Replaces registered secret values in text with "***"."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        """Mask `value` from now on, both as-is and as it appears inside a JSON string."""
        if len(value) < MIN_SECRET_LENGTH:
            return
        try:
            escaped = msgspec.json.encode(value).decode()[1:-1]
        except UnicodeEncodeError:  # lone surrogates (undecodable bytes in os.environ): no JSON form
            escaped = value
        with self._lock:
            self._values.update((value, escaped))
            # Longest first, so a secret containing another is masked whole.
            alternatives = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, alternatives)))

    def redact(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)


redact = Redactor()


class StructuredFormatter(logging.Formatter):
    """Renders a record as a JSON object (or key=value pairs) on one line, redacted."""

    def __init__(self, service: str, *, json: bool = True) -> None:
        super().__init__()
        self.service = service
        self.json = json

    def format(self, record: logging.LogRecord) -> str:
        fields = self.fields(record)
        line = _render_json(fields) if self.json else _render_text(fields)
        return redact.redact(line)

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """The record as ordered fields; `extra` fields never override the fixed ones."""
        fields: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES:
                fields.setdefault(key, _mask_secret_names(key, value))
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            fields["exc"] = record.exc_text
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return fields


def setup_logging(service: str, *, level: str = "INFO", json: bool = True, stream: IO[str] | None = None) -> None:
    """Send the root logger's records to `stream` (default stderr) as structured lines.

    Calling again replaces the handler installed by the previous call (other handlers, such
    as pytest's, are left alone), so it is safe to call from every entry point.
    """
    numeric_level = _parse_level(level)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _TradebusHandler)]:
        root.removeHandler(handler)
        handler.close()
    handler = _TradebusHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(StructuredFormatter(service, json=json))
    root.addHandler(handler)
    root.setLevel(numeric_level)
    # Never *lower* their threshold below the root's: records propagate to the root's
    # handlers without the root's level being checked again.
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric_level, logging.WARNING))


class _TradebusHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler setup_logging owns (its class lets a second call find and replace it)."""

    def handleError(self, record: logging.LogRecord) -> None:
        """Report a record that failed to format without echoing it.

        The stdlib version prints the record's message and arguments unredacted, so a
        mistake like `log.info("%d", api_key)` would leak the key to stderr.
        """
        if logging.raiseExceptions:
            error = type(sys.exc_info()[1]).__name__
            where = f"{record.name} at {record.pathname}:{record.lineno}"
            sys.stderr.write(f"--- logging error ({error}) in a record of {where}\n")


def _parse_level(level: str) -> int:
    try:
        return logging.getLevelNamesMapping()[level.upper()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}") from None


def _timestamp(record: logging.LogRecord) -> str:
    """ISO-8601 UTC with milliseconds, e.g. 2024-05-01T12:00:00.123Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _mask_secret_names(key: str, value: Any) -> Any:
    """Mask `value` if `key` names a secret; look inside dicts (e.g. HTTP headers) too."""
    if _SECRET_NAME.search(key):
        return MASK
    if isinstance(value, dict):
        return {k: _mask_secret_names(str(k), v) for k, v in value.items()}
    return value


def _render_json(fields: dict[str, Any]) -> str:
    # str() for anything msgspec cannot encode: a Secret renders as "***" that way.
    return msgspec.json.encode(fields, enc_hook=str).decode()


def _render_text(fields: dict[str, Any]) -> str:
    return " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())


def _text_value(value: Any) -> str:
    """Strings bare when unambiguous, else JSON-quoted (one line, splittable); others as JSON."""
    if not isinstance(value, str):
        return _render_json(value)
    if value and not re.search(r'[\s"=\\]', value):
        return value
    return msgspec.json.encode(value).decode()
