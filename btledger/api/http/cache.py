"""Encoded query results, valid while the read model's position is unchanged.

The read model changes only when the projector applies events, and every such change moves its
position; so a response computed at position P is exact for every request until the position moves.
A hit costs a dict lookup and returns the JSON bytes as they were encoded, with no DuckDB query and
no serialisation (measured in benchmarks/api.py). Concurrent misses of one key share one query.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Hashable

import anyio
import anyio.to_thread


class QueryCache:
    """An LRU of encoded responses, emptied whenever `position()` moves. Used on the event loop only."""

    def __init__(self, position: Callable[[], int], *, max_entries: int = 512, concurrency: int = 2) -> None:
        self._position, self._max_entries = position, max_entries
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._at = -1
        self._inflight: dict[tuple[int, Hashable], asyncio.Future[bytes]] = {}
        # Queries beyond the cores only contend for the GIL and DuckDB's own threads (measured with 16
        # clients missing the cache: 55 -> 74 req/s, p99 486 -> 362 ms with 2 at a time instead of 40).
        self._limiter = anyio.CapacityLimiter(concurrency)

    async def get(self, key: Hashable, compute: Callable[[], bytes]) -> bytes:
        """The cached bytes for `key`, or `compute()` run on a worker thread (it queries DuckDB), at most
        `concurrency` at a time. An exception of `compute` reaches every request waiting for it."""
        position = self._position()
        if position != self._at:
            self._entries.clear()
            self._at = position
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            return hit
        flight = (position, key)
        task = self._inflight.get(flight)
        if task is None:
            # Computed after reading `position`, so it reflects at least that position: a reader at
            # position P never gets an answer older than P.
            task = asyncio.ensure_future(anyio.to_thread.run_sync(compute, limiter=self._limiter))
            self._inflight[flight] = task
            task.add_done_callback(lambda done: self._landed(flight, done))
        # Shielded: a client that disconnects does not cancel the query others wait for.
        return await asyncio.shield(task)

    def _landed(self, flight: tuple[int, Hashable], task: asyncio.Future[bytes]) -> None:
        del self._inflight[flight]
        if task.cancelled() or task.exception() is not None:
            return
        position, key = flight
        if position == self._at:
            self._entries[key] = task.result()
            if len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
