"""A pool of long-lived worker processes that run backtests and stream their outcomes.

Each worker holds one pipe to the parent and runs one job at a time, with the next one already sent;
the parent waits on all pipes and process sentinels at once, so outcomes arrive in completion order
and the parent always knows which jobs each worker holds. Jobs and replies are small:
a `RunSpec` key (the worker loads and caches the data itself) and a plain-JSON `BacktestOutcome`.

A job that raises is reported as an error string (with the errors that caused it); a worker that dies
(segfault, killed) is reported as an error for its job and replaced; either way the other jobs go on.

On Linux workers are forked, so they start at once with the parent's imports and caches: all of them
when the pool is made (a server, before its threads start), or, in a lazy pool (a CLI run), as the jobs
of a `run` need them and no more than that, so a run with nothing to do forks nothing. Each worker
asks numerical libraries for one thread (the pool already uses every core) and ignores Ctrl-C, which
the parent handles by closing the pool.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType

from btledger.config import Settings, check_workers, load_instruments, load_settings
from btledger.engine.data import preload
from btledger.engine.errors import describe
from btledger.engine.interrupt import Interrupt, Interrupted
from btledger.engine.registry import registry
from btledger.engine.result import BacktestOutcome, RunSpec
from btledger.engine.runner import run_backtest

Job = tuple[RunSpec, Path | None]
Completion = tuple[RunSpec, BacktestOutcome | None, str | None]

_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def _serve(connection: Connection, settings: Settings, parent_end: Connection | None = None) -> None:
    """A worker's life: run each job received, reply (outcome, None) or (None, error), stop on None or
    when the parent is gone."""
    if parent_end is not None:
        # A forked worker inherits the parent's end of its own pipe. Closed here, the parent's death (even
        # by SIGKILL) closes the pipe, so recv() ends instead of waiting forever in an orphaned worker.
        parent_end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(dict.fromkeys(_THREAD_VARIABLES, "1"))
    while True:
        try:
            job = connection.recv()
        except EOFError:  # the parent died without saying goodbye
            return
        if job is None:
            return
        spec, plot_path = job
        try:
            reply: tuple[BacktestOutcome | None, str | None] = (
                run_backtest(spec, settings=settings, plot_path=plot_path),
                None,
            )
        except Exception as exc:  # one failing combination must not end the worker
            reply = (None, describe(exc))
        try:
            connection.send(reply)
        except BrokenPipeError:  # the parent died while this job ran
            return


def _preload(settings: Settings) -> None:
    """Read the instruments, import the strategies and the sample datasets once, in the parent, for
    every forked worker to inherit (each worker's first job spent ≈ 150 ms on them, every batch). What
    fails to load here fails again in the worker, as the error of the job that needs it."""
    with contextlib.suppress(Exception):
        load_instruments()
        registry()
        preload(settings)


@dataclass
class _Worker:
    process: BaseProcess
    connection: Connection
    #: Sent and not yet answered, oldest first: the one it runs, then the one it takes next.
    jobs: deque[Job] = field(default_factory=deque)


class WorkerPool:
    """Long-lived worker processes running `run_backtest`.

    `workers` defaults to `settings.workers`, and 0 there means one per core; more than `MAX_WORKERS` is
    refused. The workers start now, or with `lazy` on the first `run` that has jobs, one per job up to
    `workers`. Use as a context manager, or call `close()`.

        >>> with WorkerPool(2) as pool:
        ...     for spec, outcome, error in pool.run([(spec_a, None), (spec_b, None)]):
        ...         ...
    """

    def __init__(self, workers: int | None = None, *, settings: Settings | None = None, lazy: bool = False) -> None:
        self._settings = settings or load_settings()
        check_workers(workers)
        self.size = workers or self._settings.workers or os.cpu_count() or 1
        self._context = (
            multiprocessing.get_context("fork") if sys.platform == "linux" else multiprocessing.get_context("spawn")
        )
        self._workers: list[_Worker] = []
        if not lazy:
            self._grow(self.size)

    def _grow(self, count: int) -> None:
        """Start workers until `count` run; before the first, load what each would otherwise load itself."""
        if not self._workers and count and self._context.get_start_method() == "fork":
            _preload(self._settings)
        self._workers.extend(self._start() for _ in range(count - len(self._workers)))

    def _start(self) -> _Worker:
        parent, child = self._context.Pipe()
        forked = self._context.get_start_method() == "fork"
        process = self._context.Process(
            target=_serve, args=(child, self._settings, parent if forked else None), daemon=True
        )
        if forked:
            # The child inherits the parent's heap (pandas, bokeh, backtesting.py): without this, each of
            # its full collections walks and touches all of it (copy-on-write faults). Measured on the
            # 40-run ledger benchmark: 1 worker 5.1 s -> 4.4 s. The parent unfreezes its own copy at once:
            # frozen, its objects would never be collected (a server replaces workers all its life).
            gc.freeze()
        try:
            process.start()
        finally:
            if forked:
                gc.unfreeze()
        child.close()
        return _Worker(process, parent)

    def _replace(self, worker: _Worker) -> None:
        worker.connection.close()
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        self._workers[self._workers.index(worker)] = self._start()

    def run(
        self,
        jobs: Iterable[Job],
        on_start: Callable[[RunSpec], None] | None = None,
        interrupt: Interrupt | None = None,
    ) -> Iterator[Completion]:
        """Run `(spec, plot_path)` jobs; yield `(spec, outcome, None)` or `(spec, None, error)` for each,
        in completion order. `on_start(spec)` is called as a worker starts a job. Once `interrupt` is set
        (from another thread), the run raises `Interrupted` at once, stopping the jobs still running.

        While a worker runs a job it already holds the next one (as long as one job per worker is left
        to hand out, so the last ones go to whichever worker frees up first): it goes on at once instead
        of waiting for the parent to read its reply and answer. A worker that dies gives its unstarted
        job back. One `run` at a time per pool; leaving the loop early stops the jobs still running
        (their workers are replaced).
        """
        unsent = deque(jobs)
        self._grow(min(self.size, len(unsent)))

        def send(worker: _Worker) -> None:
            job = unsent.popleft()
            worker.jobs.append(job)
            with contextlib.suppress(OSError):  # it just died: its sentinel says so, and its jobs are handled then
                worker.connection.send(job)
            if len(worker.jobs) == 1 and on_start is not None:
                on_start(job[0])

        def dispatch() -> None:
            for worker in self._workers:
                if not worker.jobs and unsent:
                    send(worker)
            for worker in self._workers:
                if len(worker.jobs) == 1 and len(unsent) >= len(self._workers):
                    send(worker)

        wake = [] if interrupt is None else [interrupt]
        try:
            dispatch()
            while busy := [w for w in self._workers if w.jobs]:
                waitables = [*(w.connection for w in busy), *(w.process.sentinel for w in busy), *wake]
                # typeshed takes connections, sockets and ints only; wait() takes any object with a fileno().
                ready = set(wait(waitables))  # type: ignore[arg-type]
                if interrupt is not None and interrupt.is_set():
                    raise Interrupted
                finished: list[Completion] = []
                for worker in busy:
                    if worker.connection in ready:
                        try:
                            outcome, error = worker.connection.recv()
                            died = False
                        except (EOFError, OSError):  # died mid-reply (a reset when a sent job was still unread)
                            outcome, error, died = None, self._death(worker), True
                    elif worker.process.sentinel in ready:
                        outcome, error, died = None, self._death(worker), True
                    else:
                        continue
                    job = worker.jobs.popleft()
                    finished.append((job[0], outcome, error))
                    if died:
                        unsent.extendleft(reversed(worker.jobs))
                        self._replace(worker)
                    elif worker.jobs and on_start is not None:
                        on_start(worker.jobs[0][0])
                # Hand out the next jobs before the caller records these: the workers compute meanwhile.
                dispatch()
                yield from finished
        finally:
            for worker in self._workers:
                if worker.jobs:
                    self._replace(worker)

    @staticmethod
    def _death(worker: _Worker) -> str:
        worker.process.join()
        return f"worker process died (exit code {worker.process.exitcode})"

    def close(self) -> None:
        """Stop every worker (those still running a job are killed)."""
        for worker in self._workers:
            with contextlib.suppress(OSError):  # a dead worker's pipe is broken: nothing to tell it
                worker.connection.send(None)
        for worker in self._workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()
        self._workers = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
