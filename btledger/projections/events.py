"""Decoding notifications from the ledger's log into plain event records for the projector.

The library's mapper builds a domain-event object through the stdlib JSON decoder with an object hook
on every dict; for trade-heavy results that decoding dominates a rebuild. When the store neither
encrypts nor compresses, we read `notification.state` with msgspec instead and reproduce the mapper's
two other steps: the `{"_type_", "_data_"}` transcodings of top-level fields (our events only put
dates and datetimes there) and upcasting by `class_version` (an event that needs upcasting takes the
mapper's path). Anything msgspec cannot read (e.g. NaN written by the stdlib encoder) does too.

The fast path splits the state into raw top-level fields first: the readable `payload` for
`ledger_events` is stitched from those raw bytes (never re-encoded), and `trades` stays raw JSON:
the projector hands it to DuckDB as text (`trades_json`), so Python never decodes a trade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import msgspec
from eventsourcing.application import Application
from eventsourcing.persistence import Notification
from eventsourcing.utils import resolve_topic

_ENVELOPE = ("originator_id", "originator_version", "timestamp", "originator_topic", "class_version")
#: Fields left undecoded by the fast path (large, and only some of them are ever needed).
_LAZY = frozenset({"trades"})
_RAW_SPLIT_BYTES = 8192
_raw_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
_plain = msgspec.json.Decoder(dict[str, Any])
_json = msgspec.json.Encoder(enc_hook=str)
_NO_TRADES = (msgspec.Raw(b"{}"), msgspec.Raw(b"null"))


def to_json(value: Any) -> str:
    """Readable JSON (dates as ISO strings; raw fragments as they are; anything unknown as its str())."""
    return _json.encode(value).decode()


def _load(item: Any) -> Any:
    return msgspec.json.decode(item) if isinstance(item, msgspec.Raw) else item


@dataclass(frozen=True)
class LedgerEvent:
    """One notification, decoded: position, type name, aggregate, state (fields only) and its JSON (UTF-8)."""

    position: int
    topic: str
    event_type: str
    backtest_id: str
    version: int
    recorded_at: datetime
    state: dict[str, Any]
    payload: bytes

    def trades_json(self) -> bytes | msgspec.Raw | None:
        """The `trades` field as JSON text, or None when the result has no trades (`{}` or null).

        Raw text passes through as stored. That text came from the stdlib encoder, which writes a
        non-finite float as `NaN`/`Infinity`; msgspec rejects those, so such an event took the mapper's
        path, and its decoded trades (NaN nulled) are encoded here.
        """
        trades = self.state["trades"]
        if isinstance(trades, msgspec.Raw):
            return None if trades in _NO_TRADES else trades
        return _json.encode(trades) if trades else None


def _finite(value: Any) -> Any:
    """`value` with NaN and ±inf replaced by None, at any depth.

    Only the mapper's path needs this: the stdlib encoder writes NaN, JSON proper (msgspec) cannot.
    So no number without a defined value reaches a ranking (seed bug 7).
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


@cache
def _event_class(topic: str) -> type | None:
    try:
        return resolve_topic(topic)
    except Exception:  # an event class that no longer exists: still recorded in ledger_events
        return None


def event_type_of(topic: str) -> str:
    """`btledger.domain.backtest:Backtest.ResultRecorded` → `ResultRecorded`."""
    return topic.rsplit(":", 1)[-1].rsplit(".", 1)[-1]


class Decoder:
    """Decodes notifications of one application's log, fast when its state is plain JSON."""

    def __init__(self, app: Application[Any]) -> None:
        self._mapper = app.mapper
        self._fast = app.mapper.cipher is None and app.mapper.compressor is None
        self._transcodings = app.mapper.transcoder.names  # type: ignore[attr-defined]

    def decode(self, notification: Notification) -> LedgerEvent:
        decoded = self._fast_path(notification) if self._fast else None
        if decoded is None:
            state = _finite(dict(self._mapper.to_domain_event(notification).__dict__))
            recorded_at = state["timestamp"]
            for key in _ENVELOPE:
                state.pop(key, None)
            decoded = recorded_at, state, _json.encode(state)
        recorded_at, state, payload = decoded
        return LedgerEvent(
            position=notification.id,
            topic=notification.topic,
            event_type=event_type_of(notification.topic),
            backtest_id=str(notification.originator_id),
            version=notification.originator_version,
            recorded_at=recorded_at,
            state=state,
            payload=payload,
        )

    def _fast_path(self, notification: Notification) -> tuple[datetime, dict[str, Any], bytes] | None:
        """(recorded_at, state, payload), or None when the mapper must decode this one."""
        # Small states decode in one call; large ones split into raw fields (see the module docstring).
        large = len(notification.state) > _RAW_SPLIT_BYTES
        try:
            fields = (_raw_fields if large else _plain).decode(notification.state)
            stored_version = _load(fields["class_version"]) if "class_version" in fields else 1
            cls = _event_class(notification.topic)
            if cls is not None and stored_version < getattr(cls, "class_version", 1):
                return None  # needs upcasting
            recorded_at = self._value(_load(fields["timestamp"]))
            state: dict[str, Any] = {}
            shown: dict[str, Any] = {}
            for key, item in fields.items():
                if key in _ENVELOPE:
                    continue
                if key in _LAZY and large:
                    state[key] = shown[key] = item
                    continue
                value = _load(item)
                state[key] = self._value(value)
                shown[key] = item if state[key] is value else state[key]
        except (msgspec.DecodeError, KeyError):
            return None
        return recorded_at, state, _json.encode(shown)

    def _value(self, value: Any) -> Any:
        """A top-level field's value, with the store's `{"_type_", "_data_"}` transcoding undone."""
        if isinstance(value, dict) and len(value) == 2 and "_type_" in value and "_data_" in value:
            return self._transcodings[value["_type_"]].decode(value["_data_"])
        return value
