"""/backtests: the filtered search, one result and its trades, history and plot, and the decisions
about a result (favourite, delete, restore).

Reads are cached on the read model's position; a mutation appends its event, then answers once the
read model includes it.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import MediaType, Response, delete, post, put
from litestar.di import NamedDependency
from litestar.params import Body, FromQuery, PathParameter, QueryParameter
from litestar.response import File

from btledger.api.http.errors import CHANGE_SECURITY, errors
from btledger.api.http.routes import get
from btledger.api.http.schemas import (
    BacktestDetail,
    DeletionResult,
    FavoriteResult,
    HistoryEntry,
    RobustnessTest,
    SearchPage,
    SortColumn,
    TradeRow,
)
from btledger.api.http.services import Services
from btledger.domain.backtest import MAX_REASON_LENGTH
from btledger.domain.errors import NotFound
from btledger.domain.plots import live_plot
from btledger.domain.robustness import KINDS, run_robustness_test
from btledger.projections import queries

#: A finite threshold: NaN and ±inf fail the bounds and are rejected as bad input.
Threshold = Annotated[float | None, QueryParameter(ge=-1e18, le=1e18)]
IdPath = Annotated[str, PathParameter(description="A backtest id or a unique prefix of it (at least 4 hex digits).")]


def live_backtest(services: Services, id_or_prefix: str) -> tuple[UUID, dict[str, Any]]:
    """The id and `backtests` row of a live result; NotFound saying why there is none."""
    identity = services.ledger.resolve(id_or_prefix)
    row = services.read(lambda cur: queries.backtest_by_id(cur, str(identity)))
    if row is not None:
        return identity, row
    aggregate = services.ledger.get(identity)
    restore = f"POST /backtests/{identity}/restore"
    why = {
        "deleted": f"is deleted ({restore} brings it back)"
        if aggregate.outcome is not None
        else f"is deleted and has no result: its runs all failed ({restore} makes batches retry it)",
        "failed": "has no result: its last run failed (see its history)",
        "recorded": "is recorded but not in the read model yet (GET /health shows the lag)",
    }.get(aggregate.status, "has no result yet")
    raise NotFound(f"backtest {identity} {why}")


@get("/backtests", responses=errors(), summary="Filtered search")
async def search(
    services: NamedDependency[Services],
    min_return: Threshold = None,
    max_drawdown: Threshold = None,
    min_stability_ratio: Threshold = None,
    min_sharpe: Threshold = None,
    min_trades: Annotated[int | None, QueryParameter(ge=0, le=10**12, description="A whole number of trades.")] = None,
    min_return_dd: Threshold = None,
    min_stability_weighted_rar: Threshold = None,
    min_win_rate: Threshold = None,
    strategy: Annotated[str | None, QueryParameter(max_length=200, description="Substring, case-insensitive.")] = None,
    ticker: Annotated[str | None, QueryParameter(max_length=200, description="Substring, case-insensitive.")] = None,
    favorite_only: FromQuery[bool] = False,
    sort: FromQuery[SortColumn] = "return_dd",
    order: FromQuery[Literal["asc", "desc"]] = "desc",
    limit: Annotated[int, QueryParameter(ge=0, le=1000)] = 100,
    offset: Annotated[int, QueryParameter(ge=0, le=10**12)] = 0,
) -> Response[SearchPage]:
    """Live results passing every given threshold (a NULL metric fails it), sorted (NULLs last, then by id)
    and paged; `total` counts every match."""
    search = functools.partial(
        queries.filtered_search,
        min_return=min_return,
        max_drawdown=max_drawdown,
        min_stability_ratio=min_stability_ratio,
        min_sharpe=min_sharpe,
        min_trades=min_trades,
        min_return_dd=min_return_dd,
        min_stability_weighted_rar=min_stability_weighted_rar,
        min_win_rate=min_win_rate,
        strategy=strategy,
        ticker=ticker,
        favorite_only=favorite_only,
        sort=sort,
        order=order,
        limit=limit,
        offset=offset,
    )

    def page() -> dict[str, Any]:
        total, items = services.read(search)
        return {"total": total, "limit": limit, "offset": offset, "items": items}

    return await services.cached_json(("search", *search.keywords.values()), page)


@get("/backtests/{backtest_id:str}", responses=errors(404), summary="One result")
async def backtest(services: NamedDependency[Services], backtest_id: IdPath) -> Response[BacktestDetail]:
    def detail() -> dict[str, Any]:
        identity, row = live_backtest(services, backtest_id)
        base = f"/backtests/{identity}"
        return {
            "backtest": row,
            "trade_performance": services.read(lambda cur: queries.trade_performance_of(cur, str(identity))),
            "links": {name: f"{base}/{name}" for name in ("trades", "history", "plot", "tests", "favorite", "restore")},
        }

    return await services.cached_json(("backtest", backtest_id), detail)


@get("/backtests/{backtest_id:str}/trades", responses=errors(404), summary="Trades of a result")
async def trades(services: NamedDependency[Services], backtest_id: IdPath) -> Response[list[TradeRow]]:  # type: ignore[valid-type]
    def rows() -> list[dict[str, Any]]:
        identity, _ = live_backtest(services, backtest_id)
        return services.read(lambda cur: queries.trades_of(cur, str(identity)))

    return await services.cached_json(("trades", backtest_id), rows)


@get("/backtests/{backtest_id:str}/history", responses=errors(404), summary="Every event of a result")
async def history(services: NamedDependency[Services], backtest_id: IdPath) -> Response[list[HistoryEntry]]:
    """Deleted results too: the history is never removed."""

    def rows() -> list[dict[str, Any]]:
        identity = services.ledger.resolve(backtest_id)
        return services.read(lambda cur: queries.history(cur, str(identity)))

    return await services.cached_json(("history", backtest_id), rows)


@get(
    "/backtests/{backtest_id:str}/plot",
    responses=errors(404, 409),
    summary="The HTML plot of a result",
    media_type=MediaType.HTML,
    sync_to_thread=True,
)
def plot(services: NamedDependency[Services], backtest_id: IdPath) -> File:
    """The plot its current result made, else one rendered from its recorded key (once; 409 when its data,
    strategy code or costs changed since it ran). A deleted result shows none (its file stays for a restore)."""
    path = live_plot(services.ledger, services.home, services.ledger.resolve(backtest_id))
    return File(path, media_type="text/html", content_disposition_type="inline")


@put(
    "/backtests/{backtest_id:str}/favorite",
    responses=errors(401, 404, 409, 503),
    security=CHANGE_SECURITY,
    summary="Toggle the favourite flag",
    sync_to_thread=True,
)
def toggle_favorite(services: NamedDependency[Services], backtest_id: IdPath) -> FavoriteResult:
    identity = services.ledger.resolve(backtest_id)
    value, position = services.ledger.toggle_favorite(identity)
    services.settle(position)
    return FavoriteResult(id=str(identity), favorite=value, position=position)


@delete(
    "/backtests/{backtest_id:str}",
    responses=errors(401, 404, 409, 503),
    security=CHANGE_SECURITY,
    summary="Delete a result, or a key whose runs all failed",
    status_code=200,
    sync_to_thread=True,
)
def delete_backtest(
    services: NamedDependency[Services],
    backtest_id: IdPath,
    reason: Annotated[str, QueryParameter(min_length=1, max_length=MAX_REASON_LENGTH)] = "deleted by user",
) -> DeletionResult:
    """A tombstone: the history stays and a restore brings the result back, its plot too. A key whose runs
    all failed can be deleted too: batches then skip it unless rerun, and a restore has them retry it."""
    identity = services.ledger.resolve(backtest_id)
    position = services.ledger.delete(identity, reason)
    services.settle(position)
    return DeletionResult(id=str(identity), deleted=True, position=position)


@post(
    "/backtests/{backtest_id:str}/restore",
    responses=errors(401, 404, 409, 503),
    security=CHANGE_SECURITY,
    summary="Undo a deletion",
    status_code=200,
    sync_to_thread=True,
)
def restore(services: NamedDependency[Services], backtest_id: IdPath) -> DeletionResult:
    identity = services.ledger.resolve(backtest_id)
    position = services.ledger.restore(identity)
    services.settle(position)
    return DeletionResult(id=str(identity), deleted=False, position=position)


@post(
    "/backtests/{backtest_id:str}/tests/{kind:str}",
    responses=errors(401, 404, 409, 503),
    security=CHANGE_SECURITY,
    summary="Run and record a robustness test",
    status_code=201,
    sync_to_thread=True,
)
def run_test(
    services: NamedDependency[Services],
    backtest_id: IdPath,
    kind: Annotated[str, PathParameter(description=f"One of: {', '.join(KINDS)}.", max_length=32)],
    data: Annotated[
        dict[str, Any] | None,
        Body(
            description="The test's options (all optional). montecarlo: seed, paths, trades_per_path, "
            "ruin_threshold_pct, method; luck: percent; random: seed, runs, iterations."
        ),
    ] = None,
) -> RobustnessTest:
    """Computes in the server (the random test runs its random traders here too), records the test on
    the result's history, and answers once the read model includes it. The same seed reproduces it."""
    identity = services.ledger.resolve(backtest_id)
    test_id, _, position = run_robustness_test(services.ledger, identity, kind, data or {})
    services.settle(position)
    tests = services.read(lambda cur: queries.robustness_tests_of(cur, str(identity)))
    return RobustnessTest(**next(test for test in tests if test["test_id"] == test_id))


@get("/backtests/{backtest_id:str}/tests", responses=errors(404), summary="Robustness tests of a result")
async def tests(services: NamedDependency[Services], backtest_id: IdPath) -> Response[list[RobustnessTest]]:
    def rows() -> list[dict[str, Any]]:
        identity, _ = live_backtest(services, backtest_id)
        return services.read(lambda cur: queries.robustness_tests_of(cur, str(identity)))

    return await services.cached_json(("tests", backtest_id), rows)


ROUTES = [search, backtest, trades, history, plot, toggle_favorite, delete_backtest, restore, run_test, tests]
