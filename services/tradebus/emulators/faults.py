"""Faults an emulator injects on request, so a connector's failure paths can be exercised
on demand (by the conformance suite, or by a user's CI through the control API).

A fault is armed for the next `count` requests of one operation (`place`, `cancel`,
`lookup`, ... as each emulator names them, or `*` for any):

- `timeout`: the request is carried out, but the response is held for `delay` seconds and
  the connection then dropped, so the client cannot know the outcome (the hard case);
- `lost`: the request is dropped unprocessed after `delay` seconds, no response;
- `rate_limit`: refused with the venue's rate-limit response (HTTP 429 + its code) and a
  `retry_after` hint, nothing carried out;
- `server_error`: refused with HTTP 5xx, nothing carried out;
- `auth`: refused with the venue's authentication error.

`drop_streams` is not a request fault: the control API closes every websocket at once.
"""

from __future__ import annotations

import enum

import msgspec


class FaultKind(enum.Enum):
    TIMEOUT = "timeout"
    LOST = "lost"
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    AUTH = "auth"


class Fault(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: FaultKind
    operation: str = "*"
    count: int = 1
    delay: float = 2.0  # timeout / lost: seconds before the connection is dropped
    retry_after: float = 1.0  # rate_limit: seconds the venue asks the client to wait


class FaultPlan:
    def __init__(self) -> None:
        self._armed: list[list[Fault | int]] = []  # [fault, remaining]

    def arm(self, fault: Fault) -> None:
        self._armed.append([fault, fault.count])

    def clear(self) -> None:
        self._armed.clear()

    def take(self, operation: str) -> Fault | None:
        """The fault to inject into this request of `operation`, if one is armed."""
        for entry in self._armed:
            fault, remaining = entry
            assert isinstance(fault, Fault) and isinstance(remaining, int)
            if fault.operation in ("*", operation) and remaining > 0:
                entry[1] = remaining - 1
                if remaining == 1:
                    self._armed.remove(entry)
                return fault
        return None
