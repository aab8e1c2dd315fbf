"""Loss detection on sequenced streams, for subscribers.

Market data travels on core NATS (at most once): a slow subscriber can lose messages.
Every stream numbers its messages, so the receiver can tell how many it missed.
"""

from __future__ import annotations


class SequenceTracker:
    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self.lost = 0

    def observe(self, stream: str, seq: int) -> int:
        """Record `seq` of `stream`; return how many messages were lost just before it.

        A sequence that goes backwards means the publisher restarted: the stream starts over.
        """
        last = self._last.get(stream)
        self._last[stream] = seq
        if last is None or seq <= last:
            return 0
        missing = seq - last - 1
        self.lost += missing
        return missing
