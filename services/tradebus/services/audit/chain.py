"""The audit trail's hash chain: canonical record bytes and sha256 links, no I/O.

A record's hash covers its position (`id`), every stored field and the previous record's
hash, so changing, deleting, inserting or reordering stored records breaks the chain at
the first record concerned (or the one after a deletion). It cannot catch someone who
rewrites every later hash as well, nor a cut-off tail: the head hash that `verify` reports
is what to anchor elsewhere (a ticket, a signed log) to make those visible too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import msgspec

GENESIS = "0" * 64
"""The `prev_hash` of the first record."""

_canonical = msgspec.json.Encoder()


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One bus message as the audit logger received it (its payload already redacted)."""

    stream: str
    stream_seq: int
    subject: str
    msg_id: str | None
    ts: int  # JetStream's timestamp of the message, ns since the epoch
    msg_type: str | None  # the payload's `type`, None if undecodable
    order_key: str | None  # client_order_id (request_id for cancel-all, group_id for a group), None if none
    payload: bytes
    # The publisher scope the bus allowed on the subject (schemas/provenance.py:
    # `connector.<venue>`, `risk`, `client`, ...); None in records stored before scopes.
    scope: str | None = None


class StoredRecord(AuditRecord, frozen=True, kw_only=True):
    """A record at its place in the chain."""

    id: int
    prev_hash: str
    hash: str


class BrokenLink(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    stream: str
    stream_seq: int
    reason: str


class VerifyResult(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    count: int  # records checked and found intact
    head: str  # hash of the last intact record (GENESIS for an empty store)
    first_broken: BrokenLink | None = None


def canonical_bytes(id: int, prev_hash: str, record: AuditRecord) -> bytes:
    """The exact bytes a hash covers: a JSON array in a fixed field order (bytes as base64),
    so the encoding is unambiguous and any implementation can recompute it. The scope is the
    array's 11th element when the record has one; a record stored before scopes has 10, so
    its hash is what it was when it was stored."""
    fields = [id, prev_hash, record.stream, record.stream_seq, record.subject, record.msg_id, record.ts,
              record.msg_type, record.order_key, record.payload]
    if record.scope is not None:
        fields.append(record.scope)
    return _canonical.encode(fields)


def record_hash(id: int, prev_hash: str, record: AuditRecord) -> str:
    return hashlib.sha256(canonical_bytes(id, prev_hash, record)).hexdigest()


def link(records: Iterable[AuditRecord], *, head_id: int, head_hash: str) -> list[StoredRecord]:
    """Place `records` after the record (`head_id`, `head_hash`), in order."""
    linked: list[StoredRecord] = []
    for id, record in enumerate(records, start=head_id + 1):
        hash = record_hash(id, head_hash, record)
        linked.append(StoredRecord(  # fields spelled out: asdict() costs as much as the hash
            stream=record.stream, stream_seq=record.stream_seq, subject=record.subject, msg_id=record.msg_id,
            ts=record.ts, msg_type=record.msg_type, order_key=record.order_key, payload=record.payload,
            scope=record.scope, id=id, prev_hash=head_hash, hash=hash))
        head_hash = hash
    return linked


def new_records(records: Sequence[AuditRecord], stored: set[tuple[str, int]]) -> list[AuditRecord]:
    """The records to append: each (stream, stream_seq) once, and none already `stored`
    (a message redelivered after its commit, or twice in one batch)."""
    seen = set(stored)
    fresh = []
    for record in records:
        key = (record.stream, record.stream_seq)
        if key not in seen:
            seen.add(key)
            fresh.append(record)
    return fresh


class ChainVerifier:
    """Checks stored records fed in id order; stops at the first broken link."""

    def __init__(self) -> None:
        self.count = 0
        self.head = GENESIS
        self.broken: BrokenLink | None = None

    def add(self, row: StoredRecord) -> bool:
        """Check the next row; False once the chain is broken (feed no more)."""
        if row.prev_hash != self.head:
            # Checked first: a swap also changes the content hash, but "out of place" says more.
            reason = (f"prev_hash {row.prev_hash[:16]}… is not the previous record's hash {self.head[:16]}…: "
                      "a record before it was deleted, inserted or moved")
        elif record_hash(row.id, row.prev_hash, row) != row.hash:
            reason = f"content does not match its hash {row.hash[:16]}…: the record was modified"
        else:
            self.count += 1
            self.head = row.hash
            return True
        self.broken = BrokenLink(id=row.id, stream=row.stream, stream_seq=row.stream_seq, reason=reason)
        return False

    def result(self) -> VerifyResult:
        return VerifyResult(ok=self.broken is None, count=self.count, head=self.head, first_broken=self.broken)
