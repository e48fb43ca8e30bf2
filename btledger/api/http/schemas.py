"""Request and response models of the HTTP API (the OpenAPI schema at /schema is generated from them).

Row models are derived from the read model's table definitions, so the API documents exactly the
column contract analysts query. The request body of POST /backtests is the domain's `RunBatch`
command itself: one model, one set of rules.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from btledger.api.http.jobs import JobStatus
from btledger.domain.batch import Status
from btledger.projections import schema as s
from btledger.projections.queries import SORTABLE
from btledger.projections.sql_values import MAX_SQL_ROWS

_PYTHON_TYPES: dict[str, Any] = {
    "VARCHAR": str,
    "DOUBLE": float,
    "BIGINT": int,
    "BOOLEAN": bool,
    "DATE": date,
    "TIMESTAMPTZ": datetime,
    "JSON": Any,
}
_REQUIRED = frozenset((*s.KEY_NAMES, "favorite", "backtest_id", "trade_no", "position", "event_type"))


def _row_model(name: str, table: s.Table, doc: str, **extra: Any) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for column, duck_type in table.columns:
        python = _PYTHON_TYPES[duck_type.split()[0]]
        fields[column] = (python, ...) if column in _REQUIRED else (python | None, None)
    return create_model(name, __doc__=doc, **fields, **extra)


BacktestRow = _row_model("BacktestRow", s.BACKTESTS, "A live result: the `backtests` table's columns.")
RobustRow = _row_model(
    "RobustRow",
    s.BACKTESTS,
    "The best run of a robust strategy × ticker pair, with the pair's average return/drawdown.",
    pair_avg_return_dd=(float, ...),
)
TradeRow = _row_model("TradeRow", s.TRADES, "One trade: the `trades` table's columns.")
TradePerformance = _row_model("TradePerformance", s.TRADE_PERFORMANCE, "The `trade_performance` row of a result.")

if TYPE_CHECKING:  # a checker cannot read a Literal built at run time; it is a column name, a text
    SortColumn = str
else:  # its values for Litestar to check a query's `sort` against and list in the OpenAPI schema
    SortColumn = Literal[tuple(sorted(SORTABLE))]


class SearchPage(BaseModel):
    """One page of a filtered search."""

    total: int = Field(description="Rows matching the filters, over all pages.")
    limit: int
    offset: int
    items: list[BacktestRow]  # type: ignore[valid-type]


class BacktestDetail(BaseModel):
    """A live result, its trade-performance summary and where to find the rest."""

    backtest: BacktestRow  # type: ignore[valid-type]
    trade_performance: TradePerformance | None  # type: ignore[valid-type]
    links: dict[str, str]


class HistoryEntry(BaseModel):
    """One event of a result's history."""

    position: int
    event_type: str
    recorded_at: datetime | None = Field(
        description="Null only for an event the projector parked because its state could not be read (dead_letters)."
    )
    payload: dict[str, Any] | None = Field(description="Null as `recorded_at` is.")


class RobustnessTest(BaseModel):
    test_id: str
    backtest_id: str
    kind: str
    seed: int
    parameters: dict[str, Any]
    summary: dict[str, Any]
    recorded_at: datetime
    metrics: dict[str, float | None]


class FavoriteResult(BaseModel):
    id: str
    favorite: bool
    position: int = Field(description="Ledger position of the event; the read model includes it.")


class DeletionResult(BaseModel):
    id: str
    deleted: bool
    position: int


class StrategyDeletion(BaseModel):
    strategy: str
    deleted: list[str] = Field(
        description="Ids of the results deleted, and of the keys whose runs all failed (empty when there was none)."
    )
    position: int


class StrategyInfo(BaseModel):
    name: str
    fingerprint: str = Field(description="SHA-256 of the strategy module's source.")
    origin: str
    params: dict[str, str | int | float | bool | None] = Field(description="Each parameter's default.")
    bounds: dict[str, str] = Field(
        description="The valid values of each parameter that declares them, e.g. `n_fast >= 1`, `0 <= oversold <= 100`."
    )
    rules: list[str] = Field(description="Rules across parameters, e.g. `n_fast < n_slow`.")


class Health(BaseModel):
    status: Literal["ok", "catching_up"]
    ledger_position: int
    projection_position: int
    lag: int = Field(description="Events in the ledger not yet in the read model.")
    jobs_running: int


class JobAccepted(BaseModel):
    job_id: str
    status: str
    total: int = Field(description="Combinations in the batch.")
    links: dict[str, str]


class JobView(BaseModel):
    id: str
    status: JobStatus
    total: int
    counts: dict[Status, int]
    summary: dict[str, int] | None = Field(
        description="Combinations recorded, skipped and failed: once done, or what ended before a cancellation."
    )
    error: str | None
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: dict[str, str]


class SqlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=100_000, description="One read-only statement (SELECT, WITH, …).")
    max_rows: int = Field(1000, ge=1, le=MAX_SQL_ROWS)


class SqlResponse(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = Field(description="Whether more rows existed than max_rows.")
