"""Health (positions and lag, optionally waiting for a position) and read-only analyst SQL."""

from __future__ import annotations

from typing import Annotated

from litestar import post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from btledger.api.http.errors import CHANGE_SECURITY, errors
from btledger.api.http.routes import get
from btledger.api.http.schemas import Health, SqlRequest, SqlResponse
from btledger.api.http.services import SETTLE_TIMEOUT_S, Services
from btledger.domain.errors import InvalidInput
from btledger.projections import queries


@get("/health", responses=errors(503), summary="Event store and read model positions", sync_to_thread=True)
def health(
    services: NamedDependency[Services],
    wait_for: Annotated[
        int | None,
        QueryParameter(
            ge=0,
            le=2**62,
            description="Answer once the read model includes this ledger position "
            f"(up to {SETTLE_TIMEOUT_S:g} s; 503 after): read-your-writes for processes appending "
            "to the ledger themselves, such as the CLI.",
        ),
    ] = None,
) -> Health:
    head = services.ledger.head()
    if wait_for is not None:
        if wait_for > head:
            raise InvalidInput("wait_for", f"position {wait_for} is past the ledger's newest event ({head})")
        services.settle(wait_for)
    projected = services.readmodel.position()
    lag = max(head - projected, 0)
    return Health(
        status="ok" if lag == 0 else "catching_up",
        ledger_position=head,
        projection_position=projected,
        lag=lag,
        jobs_running=services.jobs.running(),
    )


@post(
    "/sql",
    responses=errors(401),
    security=CHANGE_SECURITY,
    summary="Run one read-only SQL statement on the read model",
    status_code=200,
    sync_to_thread=True,
)
def sql(services: NamedDependency[Services], data: JSONBody[SqlRequest]) -> SqlResponse:
    """SELECT (WITH …, FROM …) only: any other statement is refused with 400, and the statement runs in a
    transaction that is rolled back."""
    result = services.read(lambda cur: queries.run_sql(cur, data.sql, max_rows=data.max_rows + 1))
    return SqlResponse(
        columns=result.columns, rows=result.rows[: data.max_rows], truncated=len(result.rows) > data.max_rows
    )


ROUTES = [health, sql]
