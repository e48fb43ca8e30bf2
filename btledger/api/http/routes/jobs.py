"""Batches: POST /backtests starts one as a job, POST /plans several as one; /jobs/{id} reports it,
/jobs/{id}/events streams it and DELETE /jobs/{id} cancels it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import HttpMethod, Request, Response, delete, post
from litestar.di import NamedDependency
from litestar.params import Body, HeaderParameter, JSONBody, PathParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from btledger.api.http.errors import CHANGE_SECURITY, errors
from btledger.api.http.jobs import Job
from btledger.api.http.routes import get
from btledger.api.http.schemas import JobAccepted, JobView
from btledger.api.http.services import Services
from btledger.domain.commands import MAX_PLAN_BATCHES, RunBatch, parse_plan

JobId = Annotated[str, PathParameter(max_length=64)]


def _links(job_id: str) -> dict[str, str]:
    return {"self": f"/jobs/{job_id}", "events": f"/jobs/{job_id}/events"}


@post("/backtests", responses=errors(401), security=CHANGE_SECURITY, summary="Run a batch", status_code=202)
async def run_batch(services: NamedDependency[Services], data: JSONBody[RunBatch]) -> Response[JobAccepted]:
    """Queue strategies × tickers × timeframes × risks over one date range. The body is validated in full
    (names against the registry and the configs) before anything runs; progress streams at the events link."""
    return _accepted(services.jobs.submit([data]))


@post(
    "/plans", responses=errors(401), security=CHANGE_SECURITY, summary="Run a plan of batches as one", status_code=202
)
async def run_plan(
    services: NamedDependency[Services],
    data: Annotated[
        dict[str, Any],
        Body(
            title="Plan",
            description='`{"batches": [batch, ...]}`, each batch a POST /backtests body (1 to '
            f"{MAX_PLAN_BATCHES}). A combination in two batches, or a bad field, is refused naming the batch "
            "(`batches[1].date_from`).",
        ),
    ],
) -> Response[JobAccepted]:
    """Queue several batches (e.g. each ticker over its own date range) as one job: one pool, one
    numbering, no worker waiting for a batch's last combination. Validated in full before anything runs."""
    # Off the event loop: a plan of many combinations takes a while to check.
    return _accepted(services.jobs.submit(await asyncio.to_thread(parse_plan, data)))


def _accepted(job: Job) -> Response[JobAccepted]:
    accepted = JobAccepted(job_id=job.id, status=job.status, total=job.total, links=_links(job.id))
    return Response(accepted, status_code=202, headers={"Location": f"/jobs/{job.id}"})


@get("/jobs/{job_id:str}", responses=errors(404), summary="A batch job's status and counts")
async def job_status(services: NamedDependency[Services], job_id: JobId) -> JobView:
    return _view(services.jobs.get(job_id))


@delete(
    "/jobs/{job_id:str}",
    responses=errors(401, 404, 409),
    security=CHANGE_SECURITY,
    summary="Cancel a batch job",
    status_code=200,
)
async def cancel_job(services: NamedDependency[Services], job_id: JobId) -> JobView:
    """A queued job is dropped without running; a running one stops at once (the combinations still
    running are killed). What it recorded stays in the ledger, and its summary counts
    it: the same batch submitted again runs only the combinations that are missing. Answers once the job
    has stopped and the read model includes what it recorded; its event stream ends with a `cancelled`
    event. 409 when the job has already finished."""
    return _view(await services.jobs.cancel(job_id))


def _view(job: Job) -> JobView:
    return JobView(
        id=job.id,
        status=job.status,
        total=job.total,
        counts=job.counts(),
        summary=job.summary,
        error=job.error,
        submitted_at=job.submitted_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        links=_links(job.id),
    )


@get(
    "/jobs/{job_id:str}/events",
    responses=errors(404),
    summary="A batch job's progress as server-sent events",
    media_type="text/event-stream",
)
async def job_events(
    services: NamedDependency[Services],
    request: Request[Any, Any, Any],
    job_id: JobId,
    last_event_id: Annotated[int | None, HeaderParameter(name="Last-Event-ID", ge=0)] = None,
) -> ServerSentEvent:
    """`progress` events (one per combination state change: queued, running, recorded, skipped, failed),
    then one final event, after which the stream ends: `summary`, `error` (the batch failed), or
    `cancelled` (by DELETE /jobs/{id} or the server stopping; `{job_id, status, detail, summary,
    position}`, `summary` counting what ended before the stop). A client connecting late gets every
    earlier event first; one that reconnects with Last-Event-ID gets those after it."""
    job = services.jobs.get(job_id)
    if request.method == HttpMethod.HEAD:  # the stream's headers only: a running job's events would hold it open
        return ServerSentEvent(iter(()))
    return ServerSentEvent(_messages(job, last_event_id or 0))


async def _messages(job: Job, after: int) -> AsyncIterator[ServerSentEventMessage]:
    async for event in job.stream(after):
        yield ServerSentEventMessage(data=msgspec.json.encode(event.data).decode(), event=event.kind, id=event.id)


ROUTES = [run_batch, run_plan, job_status, cancel_job, job_events]
