"""/strategies: the registry (names, parameters and their bounds, fingerprints) and deleting a strategy's results."""

from __future__ import annotations

from typing import Annotated

from litestar import delete
from litestar.di import NamedDependency
from litestar.params import PathParameter

from btledger.api.http.errors import CHANGE_SECURITY, errors
from btledger.api.http.routes import get
from btledger.api.http.schemas import StrategyDeletion, StrategyInfo
from btledger.api.http.services import Services
from btledger.domain.errors import NotFound
from btledger.engine.registry import registry, strategy_listings


@get("/strategies", responses=errors(), summary="Registered strategies")
async def strategies() -> list[StrategyInfo]:
    return [StrategyInfo(**listing) for listing in strategy_listings()]


@delete(
    "/strategies/{name:str}",
    responses=errors(401, 404, 503),
    security=CHANGE_SECURITY,
    summary="Delete every live result of a strategy, and its keys whose runs all failed",
    status_code=200,
    sync_to_thread=True,
)
def delete_strategy(
    services: NamedDependency[Services], name: Annotated[str, PathParameter(min_length=1, max_length=200)]
) -> StrategyDeletion:
    """All at once, atomically; each result's history shows the strategy deletion. Keys of the strategy
    whose runs all failed are deleted too, so its batches stop retrying them."""
    ids, position = services.ledger.delete_strategy(name)
    if not ids and name not in registry():
        raise NotFound(f"no strategy named {name!r} is registered or has results", field="name")
    services.settle(position)
    return StrategyDeletion(strategy=name, deleted=[str(i) for i in ids], position=position)


ROUTES = [strategies, delete_strategy]
