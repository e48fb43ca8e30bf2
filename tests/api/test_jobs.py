"""Batch jobs without the engine: streaming to early and late subscribers, failures, and stopping."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from uuid import uuid4

import pytest

from btledger.api.http.jobs import JobEvent, Jobs
from btledger.domain.batch import BatchReport, Progress
from btledger.domain.commands import RunBatch, parse
from btledger.domain.errors import Conflict
from btledger.engine.interrupt import Interrupt
from tests.api.conftest import BATCH
from tests.domain.factories import spec

COMMAND = parse(RunBatch, BATCH)


def steps(count: int, pause: float, started: threading.Event | None = None) -> Callable[..., BatchReport]:
    """A stand-in for run_batches: `count` progress events, `pause` seconds apart."""

    def run(_: list[RunBatch], on_progress: Callable[[Progress], None], _interrupt: Interrupt) -> BatchReport:
        for index in range(count):
            on_progress(Progress(index, count, spec(), uuid4(), "queued"))
            if started is not None:
                started.set()
            time.sleep(pause)
        return BatchReport(last_position=count)

    return run


async def collect(stream: AsyncIterator[JobEvent]) -> list[JobEvent]:
    return [event async for event in stream]


def test_early_and_late_subscribers_see_the_same_events_in_order() -> None:
    async def scenario() -> None:
        settled: list[int] = []
        jobs = Jobs(steps(5, 0.01), settle=settled.append)
        job = jobs.submit([COMMAND])
        early = await collect(job.stream())
        late = await collect(job.stream())
        resumed = await collect(job.stream(after=3))
        jobs.close()
        assert [e.id for e in early] == [1, 2, 3, 4, 5, 6]
        assert early == late and resumed == early[3:]
        assert early[-1].kind == "summary" and early[-1].data["position"] == 5 and settled == [5]
        assert job.status == "done" and job.counts()["queued"] == 5

    asyncio.run(scenario())


def test_a_crashing_batch_ends_its_stream_with_an_error() -> None:
    def crash(_: list[RunBatch], on_progress: Callable[[Progress], None], _interrupt: Interrupt) -> BatchReport:
        on_progress(Progress(0, 1, spec(), uuid4(), "queued"))
        raise RuntimeError("disk full")

    async def scenario() -> None:
        jobs = Jobs(crash, settle=lambda _: None)
        job = jobs.submit([COMMAND])
        events = await collect(job.stream())
        jobs.close()
        assert [e.kind for e in events] == ["progress", "error"]
        assert events[-1].data["detail"] == "RuntimeError: disk full" and job.status == "failed"
        assert jobs.running() == 0

    asyncio.run(scenario())


def test_close_stops_the_running_batch_at_its_next_state_change() -> None:
    async def scenario() -> None:
        started = threading.Event()
        jobs = Jobs(steps(1000, 0.005, started), settle=lambda _: None)
        job = jobs.submit([COMMAND])
        queued = jobs.submit([COMMAND])
        await asyncio.to_thread(started.wait)
        await asyncio.to_thread(jobs.close)
        events = await collect(job.stream())
        assert events[-1].kind == "cancelled" and events[-1].data["detail"].startswith("the server is stopping")
        assert len(events) < 1000 and job.status == "cancelled"
        # Dropped, never started: its stream has only the final event.
        assert queued.status == "cancelled" and [e.kind for e in queued.events] == ["cancelled"]
        assert queued.started_at is None and jobs.running() == 0

    asyncio.run(scenario())


def test_a_job_that_ends_before_its_next_state_change_is_not_cancelled() -> None:
    started = threading.Event()

    def last_step(_: list[RunBatch], on_progress: Callable[[Progress], None], _interrupt: Interrupt) -> BatchReport:
        on_progress(Progress(0, 1, spec(), uuid4(), "recorded", position=1))
        started.set()
        time.sleep(0.2)  # e.g. waiting for the read model: no state change left to stop at
        return BatchReport(last_position=1)

    async def scenario() -> None:
        jobs = Jobs(last_step, settle=lambda _: None)
        job = jobs.submit([COMMAND])
        await asyncio.to_thread(started.wait)
        with pytest.raises(Conflict, match="finished \\(done\\) before it could stop"):
            await jobs.cancel(job.id)
        jobs.close()
        assert job.status == "done" and [e.kind for e in job.events] == ["progress", "summary"]

    asyncio.run(scenario())
