"""The CLI's read side: the DuckDB read model in this process, or the running server's API.

DuckDB lets one process own the file. When `btledger serve` runs, it owns it, so the CLI reads
through its HTTP API (`Client`); otherwise the CLI opens the file itself, catches it up with the
ledger and queries it (`LocalReader`). Both answer the same calls with the same JSON shapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol

from btledger import bootstrap
from btledger.api.client import Client
from btledger.config import home
from btledger.domain.errors import NotFound
from btledger.domain.ledger import Ledger
from btledger.projections import queries
from btledger.projections.readmodel import ReadModel


class Reader(Protocol):
    def search(self, **filters: Any) -> dict[str, Any]: ...
    def rank(self, strategy: str | None = None, as_of: datetime | None = None) -> list[dict[str, Any]]: ...
    def backtest(self, id_or_prefix: str) -> dict[str, Any]: ...
    def trades(self, id_or_prefix: str) -> list[dict[str, Any]]: ...
    def favorites(self) -> list[dict[str, Any]]: ...
    def strategy_ticker(self, strategy: str, ticker: str) -> list[dict[str, Any]]: ...
    def robustness_tests(self, id_or_prefix: str) -> list[dict[str, Any]]: ...
    def sql(self, statement: str, max_rows: int = 10_000) -> dict[str, Any]: ...


class LocalReader:
    """Queries on a read model this process owns, caught up with the ledger on open."""

    def __init__(self, readmodel: ReadModel, ledger: Ledger) -> None:
        self.readmodel, self.ledger = readmodel, ledger

    def _id(self, id_or_prefix: str) -> str:
        return str(self.ledger.resolve(id_or_prefix))

    def search(self, **filters: Any) -> dict[str, Any]:
        limit, offset = filters.get("limit", 100), filters.get("offset", 0)
        page = queries.filtered_search(self.readmodel.cursor(), **filters)
        return {"total": page.total, "limit": limit, "offset": offset, "items": page.items}

    def rank(self, strategy: str | None = None, as_of: datetime | None = None) -> list[dict[str, Any]]:
        return queries.robust_ranking(self.readmodel.cursor(), strategy=strategy, as_of=as_of)

    def backtest(self, id_or_prefix: str) -> dict[str, Any]:
        identity = self._id(id_or_prefix)
        row = queries.backtest_by_id(self.readmodel.cursor(), identity)
        if row is None:
            raise NotFound(f"backtest {identity} has no live result (deleted or failed)")
        return row

    def trades(self, id_or_prefix: str) -> list[dict[str, Any]]:
        return queries.trades_of(self.readmodel.cursor(), self.backtest(id_or_prefix)["id"])

    def favorites(self) -> list[dict[str, Any]]:
        return queries.favorites(self.readmodel.cursor())

    def strategy_ticker(self, strategy: str, ticker: str) -> list[dict[str, Any]]:
        return queries.by_strategy_ticker(self.readmodel.cursor(), strategy, ticker)

    def robustness_tests(self, id_or_prefix: str) -> list[dict[str, Any]]:
        return queries.robustness_tests_of(self.readmodel.cursor(), self._id(id_or_prefix))

    def sql(self, statement: str, max_rows: int = 10_000) -> dict[str, Any]:
        result = queries.run_sql(self.readmodel.cursor(), statement, max_rows=max_rows + 1)
        return {"columns": result.columns, "rows": result.rows[:max_rows], "truncated": len(result.rows) > max_rows}


@contextmanager
def open_reader() -> Iterator[Reader]:
    """The running server's API if there is one, else the local read model, caught up."""
    client = Client.for_home(home())
    if client is not None:
        with client:
            yield client
        return
    ledger = bootstrap.open_ledger()
    with ReadModel.open() as readmodel:
        readmodel.catch_up(ledger)
        yield LocalReader(readmodel, ledger)
