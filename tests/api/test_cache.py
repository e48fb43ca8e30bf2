"""The query cache: hits until the position moves, one query for concurrent misses, errors not kept."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from btledger.api.http.cache import QueryCache
from btledger.domain.errors import NotFound


class Counter:
    def __init__(self, pause: float = 0.0) -> None:
        self.calls, self.pause = 0, pause
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        with self._lock:
            self.calls += 1
            calls = self.calls
        time.sleep(self.pause)
        return f"answer {calls}".encode()


def test_hits_until_the_position_moves() -> None:
    async def scenario() -> None:
        position = [7]
        cache, compute = QueryCache(lambda: position[0]), Counter()
        assert await cache.get("k", compute) == b"answer 1"
        assert await cache.get("k", compute) == b"answer 1"
        assert await cache.get("other", compute) == b"answer 2"
        position[0] = 8
        assert await cache.get("k", compute) == b"answer 3"
        assert compute.calls == 3

    asyncio.run(scenario())


def test_concurrent_misses_share_one_query_and_a_disconnect_does_not_cancel_it() -> None:
    async def scenario() -> None:
        cache, compute = QueryCache(lambda: 1), Counter(pause=0.05)
        gone = asyncio.ensure_future(cache.get("k", compute))
        waiting = [asyncio.ensure_future(cache.get("k", compute)) for _ in range(9)]
        await asyncio.sleep(0.01)
        gone.cancel()
        assert await asyncio.gather(*waiting) == [b"answer 1"] * 9
        assert compute.calls == 1
        assert await cache.get("k", compute) == b"answer 1"

    asyncio.run(scenario())


def test_an_error_reaches_every_waiter_and_is_not_kept() -> None:
    calls = []

    def missing() -> bytes:
        calls.append(1)
        time.sleep(0.02)
        raise NotFound("no backtest with id x")

    async def scenario() -> None:
        cache = QueryCache(lambda: 1)
        results = await asyncio.gather(*(cache.get("k", missing) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, NotFound) for r in results) and len(calls) == 1
        with pytest.raises(NotFound):
            await cache.get("k", missing)
        assert len(calls) == 2

    asyncio.run(scenario())


def test_the_oldest_entry_goes_first() -> None:
    async def scenario() -> None:
        cache, compute = QueryCache(lambda: 1, max_entries=2), Counter()
        for key in ("a", "b", "a", "c"):  # "a" used again, so "b" is the oldest when "c" arrives
            await cache.get(key, compute)
        assert await cache.get("a", compute) == b"answer 1"
        assert await cache.get("b", compute) == b"answer 4"

    asyncio.run(scenario())
