"""Projecting a batch in its tail: while its last jobs run, on the cores its workers leave idle.

A batch appends a result every few hundred milliseconds. Catching the read model up after each one
would pay a catch-up's fixed cost (a DuckDB transaction, a dozen statements) per result and take CPU
from the workers; catching up after the batch leaves all of it to wait at the end. Once every job of
a batch has started, workers fall idle one by one: that is when the results recorded so far are
applied. Until then the read model's file stays free for other commands to read.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from btledger.domain.batch import Progress
from btledger.domain.ledger import Ledger
from btledger.projections.readmodel import ReadModel


class BatchProjection:
    """Brings the read model at `path` up to `ledger` as batches run; pass every `Progress` to `observe`.

    On leaving the `with` block the read model holds every event of the ledger and is closed, or the
    error of opening or projecting it (e.g. `ReadModelLocked`) is raised; what the batches recorded
    stays recorded either way.

        >>> with BatchProjection(ledger, home / "readmodel.duckdb") as projection:
        ...     run_batch(ledger, command, pool, home, projection.observe)
    """

    def __init__(self, ledger: Ledger, path: Path) -> None:
        self.ledger, self.path = ledger, path
        self._queued = self._started = 0
        self._lock = threading.Lock()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="btledger-batch-projection")
        self._catching_up: Future[None] | None = None
        self._readmodel: ReadModel | None = None

    def observe(self, progress: Progress) -> None:
        """Note a batch's progress; the moment its last queued job starts, catch up on a thread."""
        with self._lock:
            if progress.status == "queued":
                self._queued += 1
            elif progress.status == "running":
                self._started += 1
                if self._started == self._queued and (self._catching_up is None or self._catching_up.done()):
                    # Up to the results recorded so far only: chasing the next batch's results as they
                    # came, a transaction per one or two, took 0.8 s of CPU from its busy workers.
                    self._catching_up = self._thread.submit(self._catch_up, self.ledger.head())

    def _catch_up(self, last: int | None = None) -> None:
        if self._readmodel is None:
            self._readmodel = ReadModel.open(self.path)
        self._readmodel.catch_up(self.ledger, last=last)

    def __enter__(self) -> BatchProjection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc is None:
                if self._catching_up is not None:
                    self._catching_up.result()  # raises its error, if any
                self._catch_up()  # the results recorded since
        finally:
            self._thread.shutdown(wait=True)
            if self._readmodel is not None:
                self._readmodel.close()
