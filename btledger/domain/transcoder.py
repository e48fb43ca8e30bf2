"""The event store's transcoder: the library's JSON format, written and read by msgspec.

`eventsourcing.persistence.JSONTranscoder` encodes with the stdlib `json` module, which spends most
of a result's save turning its trades' floats into text (≈2 ms for 200 trades). This transcoder
writes and reads the very same bytes format — registered types as `{"_type_": name, "_data_": …}`,
compact separators, UTF-8 — so stores written by either are read by both.

msgspec would write a datetime, date, UUID or Decimal as a bare string (the stdlib encoder tags
them), so values of registered types are tagged before encoding. Whatever is not exactly a plain
JSON type or a registered one (a numpy scalar, a set, a dataclass) takes the library's stdlib path,
so its errors stay the library's; so does reading what msgspec cannot (the stdlib's `NaN`). One
difference: a non-finite float is written as `null`, JSON having no NaN. The engine writes none, and
the read model turned them into NULL already.
"""

from __future__ import annotations

from typing import Any

import msgspec
from eventsourcing.persistence import JSONTranscoder

_SCALARS = frozenset({str, int, float, bool, type(None)})


class _NotPlain(Exception):
    """A value the stdlib path must handle."""


class MsgspecJSONTranscoder(JSONTranscoder):
    """`JSONTranscoder`'s format, encoded and decoded by msgspec where the value allows it."""

    def __init__(self) -> None:
        super().__init__()
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()

    def encode(self, obj: Any) -> bytes:
        try:
            return self._encoder.encode(self._tagged(obj))
        except _NotPlain:
            return super().encode(obj)

    def decode(self, data: bytes) -> Any:
        try:
            decoded = self._decoder.decode(data)
        except msgspec.DecodeError:
            return super().decode(data)
        return self._untagged(decoded)

    def _tagged(self, value: Any) -> Any:
        """`value` with each value of a registered type replaced by its `{"_type_", "_data_"}` form."""
        kind = type(value)
        if kind in _SCALARS:
            return value
        if kind is dict:
            if not all(type(key) is str for key in value):
                raise _NotPlain
            return {key: item if type(item) in _SCALARS else self._tagged(item) for key, item in value.items()}
        if kind is list or kind is tuple:
            if _SCALARS.issuperset(map(type, value)):  # a column of trades: no walk in Python
                return value
            return [self._tagged(item) for item in value]
        transcoding = self.types.get(kind)
        if transcoding is None:
            raise _NotPlain
        return {"_type_": transcoding.name, "_data_": self._tagged(transcoding.encode(value))}

    def _untagged(self, value: Any) -> Any:
        """`value` with every `{"_type_", "_data_"}` object decoded, innermost first (as the stdlib's hook)."""
        kind = type(value)
        if kind is dict:
            value = {key: self._untagged(item) for key, item in value.items()}
            return self._decode_obj(value)
        if kind is list:
            if _SCALARS.issuperset(map(type, value)):
                return value
            return [self._untagged(item) for item in value]
        return value
