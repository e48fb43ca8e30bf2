"""What the handlers use: the ledger, the read model and its projector, batch jobs and the query cache.

One instance per app, opened by the lifespan in `app.py` and handed to handlers by dependency injection.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import msgspec
from litestar import MediaType, Response
from litestar.datastructures import State

from btledger.api.http.cache import QueryCache
from btledger.api.http.jobs import Jobs
from btledger.domain.ledger import Ledger
from btledger.projections.projector import Projector
from btledger.projections.readmodel import ReadModel

T = TypeVar("T")

#: How long a mutation waits for the read model to include its events before answering 503.
SETTLE_TIMEOUT_S = 10.0


@dataclass
class Services:
    home: Path
    ledger: Ledger
    readmodel: ReadModel
    projector: Projector
    jobs: Jobs
    cache: QueryCache

    def settle(self, position: int) -> None:
        """Read-your-writes: return once the read model includes ledger position `position`."""
        self.projector.notify()
        self.readmodel.wait_for(position, timeout=SETTLE_TIMEOUT_S)

    def read(self, query: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run `query` on a cursor of its own (one per call: cursors are not shared across threads)."""
        cursor = self.readmodel.cursor()
        try:
            return query(cursor)
        finally:
            cursor.close()

    async def cached_json(self, key: Hashable, compute: Callable[[], Any]) -> Response[Any]:
        """`compute()` as JSON, cached until the read model's position moves (compute runs off the loop)."""
        body = await self.cache.get(key, lambda: msgspec.json.encode(compute()))
        return Response(body, media_type=MediaType.JSON)


def provide_services(state: State) -> Services:
    return state.services
