"""Encoded query results, valid while the read model's position is unchanged.

The read model changes only when the projector applies events, and every such change moves its
position; so a response computed at position P is exact for every request until the position moves.
A hit costs a dict lookup and returns the JSON bytes as they were encoded, with no DuckDB query and
no serialisation (measured in benchmarks/api.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

import anyio.to_thread


class QueryCache:
    """An LRU of encoded responses, emptied whenever `position()` moves. Used on the event loop only."""

    def __init__(self, position: Callable[[], int], max_entries: int = 512) -> None:
        self._position, self._max_entries = position, max_entries
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._at = -1

    async def get(self, key: Hashable, compute: Callable[[], bytes]) -> bytes:
        """The cached bytes for `key`, or `compute()` run on a worker thread (it queries DuckDB)."""
        position = self._position()
        if position != self._at:
            self._entries.clear()
            self._at = position
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            return hit
        # Computed after reading `position`, so it reflects at least that position: a reader at
        # position P never gets an answer older than P.
        value = await anyio.to_thread.run_sync(compute)
        if position == self._at:
            self._entries[key] = value
            if len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return value
