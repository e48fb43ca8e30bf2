"""Rankings and lists: the robust ranking (now or as of a past moment), one strategy × ticker, favourites."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Response
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter

from btledger.api.http.errors import errors
from btledger.api.http.routes import get
from btledger.api.http.schemas import BacktestRow, RobustRow
from btledger.api.http.services import Services
from btledger.projections import queries

Name = Annotated[str, PathParameter(min_length=1, max_length=200)]


@get("/rankings/robust", responses=errors(), summary="Robust ranking")
async def robust(
    services: NamedDependency[Services],
    strategy: Annotated[str | None, QueryParameter(min_length=1, max_length=200)] = None,
    as_of: Annotated[
        datetime | None, QueryParameter(description="ISO-8601 timestamp with a timezone: the ranking as it was then.")
    ] = None,
) -> Response[list[RobustRow]]:  # type: ignore[valid-type]
    """The best run of every strategy × ticker pair whose average return/drawdown over the selected
    timeframes is > 1 (the rule is in `btledger.projections.queries`)."""

    def rows() -> list[dict[str, Any]]:
        return services.read(lambda cur: queries.robust_ranking(cur, strategy, as_of))

    return await services.cached_json(("robust", strategy, as_of), rows)


@get(
    "/strategies/{name:str}/tickers/{ticker:str}/backtests",
    responses=errors(),
    summary="Runs of a strategy on a ticker",
)
async def strategy_ticker(services: NamedDependency[Services], name: Name, ticker: Name) -> Response[list[BacktestRow]]:  # type: ignore[valid-type]
    """Every live result of the strategy on the ticker (exact names), best stability-weighted RAR first."""

    def rows() -> list[dict[str, Any]]:
        return services.read(lambda cur: queries.by_strategy_ticker(cur, name, ticker))

    return await services.cached_json(("strategy_ticker", name, ticker), rows)


@get("/favorites", responses=errors(), summary="Favourite results")
async def favorites(services: NamedDependency[Services]) -> Response[list[BacktestRow]]:  # type: ignore[valid-type]
    return await services.cached_json(("favorites",), lambda: services.read(queries.favorites))


ROUTES = [robust, strategy_ticker, favorites]
