"""Batch jobs: a RunBatch (or a plan of them) submitted over HTTP runs on a background thread, its progress
kept for streaming.

Batches run one at a time on one thread (the worker pool is the machine's capacity; two batches at
once would only interleave). The thread only orchestrates: backtests compute in the pool's worker
processes, so the event loop keeps answering while a batch runs. Each job keeps every state change
it published, so a client that connects late replays them from the start (or from Last-Event-ID).

A job is cancelled by DELETE /jobs/{id} or by the server stopping: a queued one at once, without running;
a running one at once too: its `Interrupt` wakes the pool, which kills the combinations still running (while
it plans, before the pool runs, it stops at its next state change). What it recorded stays in the ledger, so
the same batch submitted again runs only what is missing.

Jobs live in memory: a restarted server forgets them, while their recorded results stay in the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from btledger.domain.batch import BatchReport, Progress, Status
from btledger.domain.commands import RunBatch
from btledger.domain.errors import Conflict, NotFound
from btledger.engine.errors import describe
from btledger.engine.interrupt import Interrupt, Interrupted

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
EventKind = Literal["progress", "summary", "error", "cancelled"]

#: Runs batches as one, calling back on every state change, until interrupted (the domain's `run_batches`
#: bound to a ledger and pool).
RunBatchesFn = Callable[[list[RunBatch], Callable[[Progress], None], Interrupt], BatchReport]
#: Blocks until the read model includes a ledger position (read-your-writes before the final summary).
SettleFn = Callable[[int], None]

#: Finished jobs kept for GET /jobs/{id} (oldest forgotten first).
KEEP_FINISHED = 200

KEPT = "the combinations recorded so far are kept; the same batch submitted again runs only the others"


@dataclass(frozen=True)
class JobEvent:
    """One server-sent event: `progress` (a combination's state), then one `summary`, `error` or `cancelled`."""

    id: int
    kind: EventKind
    data: dict[str, Any]


@dataclass
class Job:
    id: str
    total: int
    loop: asyncio.AbstractEventLoop
    status: JobStatus = "queued"
    submitted_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    finished_at: datetime | None = None
    summary: dict[str, int] | None = None
    error: str | None = None
    events: list[JobEvent] = field(default_factory=list)
    #: The latest state of each combination, by index.
    states: dict[int, Status] = field(default_factory=dict)
    #: Why it is being cancelled, once it is.
    stop_reason: str | None = None
    #: Set to stop the batch's pool run at once; there while the job runs.
    interrupt: Interrupt | None = field(default=None, repr=False)
    future: Future[None] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Whether the final event (summary, error or cancelled) is published."""
        return bool(self.events) and self.events[-1].kind != "progress"

    def counts(self) -> dict[Status, int]:
        counts: dict[Status, int] = dict.fromkeys(get_args(Status), 0)
        for state in self.states.values():
            counts[state] += 1
        return counts

    def outcomes(self) -> dict[str, int]:
        """How many combinations ended recorded, skipped or failed (a job's summary)."""
        counts = self.counts()
        return {state: counts[state] for state in ("recorded", "skipped", "failed")}

    # --- called from the batch thread ----------------------------------------------------------

    def publish(self, kind: EventKind, data: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(JobEvent(len(self.events) + 1, kind, data))
        self.loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # --- called on the event loop ----------------------------------------------------------------

    async def stream(self, after: int = 0) -> AsyncIterator[JobEvent]:
        """Every event with id > `after`, then each new one as it comes, up to the final one."""
        seen = after
        while True:
            # Safe without a lock: the list only grows, and _wake runs on this loop, so a publish
            # between this check and the await below still resolves the waiter registered here.
            while seen < len(self.events):
                event = self.events[seen]
                seen += 1
                yield event
                if event.kind != "progress":
                    return
            if self.finished:  # the client had seen the final event already
                return
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            await waiter


class JobCancelled(Exception):
    """Raised from a batch's progress callback to stop it while it plans (before its pool run, which its
    `Interrupt` stops)."""


class Jobs:
    """Submits batches to one background thread, finds them by id and cancels them."""

    def __init__(self, run: RunBatchesFn, settle: SettleFn) -> None:
        self._run, self._settle = run, settle
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="btledger-batch")
        self._jobs: OrderedDict[str, Job] = OrderedDict()

    def submit(self, commands: list[RunBatch]) -> Job:
        """Queue one batch, or a plan's batches to run as one."""
        job = Job(id=uuid.uuid4().hex, total=sum(c.combinations for c in commands), loop=asyncio.get_running_loop())
        self._jobs[job.id] = job
        self._forget_old()
        job.future = self._executor.submit(self._execute, job, commands)
        return job

    def get(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFound(
                f"no job with id {job_id!r} (jobs are kept in memory until the server stops)", "id"
            ) from None

    def running(self) -> int:
        """Jobs queued or running."""
        return sum(1 for job in self._jobs.values() if not job.finished)

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job and return it once it has stopped. Raises `NotFound`, or `Conflict` when it had
        finished (or finishes before its next state change)."""
        job = self.get(job_id)
        if job.finished:
            raise Conflict(f"job {job_id} has already finished ({job.status}); nothing to cancel", "id")
        self._stop(job, f"cancelled by a client; {KEPT}")
        async for _ in job.stream(len(job.events)):  # up to its final event
            pass
        if job.status != "cancelled":
            raise Conflict(f"job {job_id} finished ({job.status}) before it could stop; nothing to cancel", "id")
        return job

    def stop(self) -> None:
        """Cancel every job without waiting: the server is stopping. Their streams end with a `cancelled`
        event: a queued job's at once, the running one's as soon as its pool run has stopped."""
        for job in list(self._jobs.values()):
            if not job.finished:
                self._stop(job, f"the server is stopping; {KEPT}")

    def close(self) -> None:
        """Cancel every job and wait for the running one to stop."""
        self.stop()
        self._executor.shutdown(wait=True)

    def _stop(self, job: Job, reason: str) -> None:
        if job.stop_reason is not None:  # already stopping: its final event is on the way
            return
        job.stop_reason = reason
        if job.future is not None and job.future.cancel():  # still queued: it will never start
            self._cancelled(job, reason, None)
        elif job.interrupt is not None:
            job.interrupt.set()

    def _forget_old(self) -> None:
        finished = [job_id for job_id, job in self._jobs.items() if job.finished]
        for job_id in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job_id]

    def _execute(self, job: Job, commands: list[RunBatch]) -> None:
        with Interrupt() as interrupt:
            job.interrupt = interrupt
            if job.stop_reason is not None:  # stopped as it started, before _stop could see the interrupt
                interrupt.set()
            self._run_job(job, commands, interrupt)

    def _run_job(self, job: Job, commands: list[RunBatch], interrupt: Interrupt) -> None:
        job.status, job.started_at = "running", datetime.now(UTC)
        position: int | None = None  # of the last outcome recorded

        def on_progress(progress: Progress) -> None:
            nonlocal position
            job.states[progress.index] = progress.status
            if progress.position is not None:
                position = progress.position
            job.publish("progress", progress.to_json())
            if job.stop_reason is not None:
                raise JobCancelled(job.stop_reason)

        try:
            try:
                report = self._run(commands, on_progress, interrupt)
            except (JobCancelled, Interrupted):
                assert job.stop_reason is not None  # raised only once it is set
                log.warning("batch job %s stopped: %s", job.id, job.stop_reason)
                # Read-your-writes for what it recorded, as for a batch that ends.
                if position is not None:
                    self._settle(position)
                self._cancelled(job, job.stop_reason, position)
                return
            self._settle(report.last_position)
        except Exception as exc:
            log.exception("batch job %s failed", job.id)
            self._fail(job, describe(exc))
            return
        job.summary = report.summary
        job.status, job.finished_at = "done", datetime.now(UTC)
        job.publish(
            "summary",
            {"job_id": job.id, "status": job.status, "summary": job.summary, "position": report.last_position},
        )

    @staticmethod
    def _cancelled(job: Job, reason: str, position: int | None) -> None:
        # Those still queued or running are dropped, not left counted as pending in GET /jobs/{id}.
        job.states = {index: state for index, state in job.states.items() if state not in ("queued", "running")}
        job.summary = job.outcomes()
        job.status, job.finished_at = "cancelled", datetime.now(UTC)
        data = {"job_id": job.id, "status": job.status, "detail": reason, "summary": job.summary, "position": position}
        job.publish("cancelled", data)

    @staticmethod
    def _fail(job: Job, error: str) -> None:
        job.error = error
        job.status, job.finished_at = "failed", datetime.now(UTC)
        job.publish("error", {"job_id": job.id, "status": job.status, "detail": error})
