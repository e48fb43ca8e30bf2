"""Ending a worker pool's `run` at once, from another thread (a cancelled job, a stopping server).

Kept apart from `btledger.engine.pool`, which imports backtesting.py: the batch code names these without
importing the engine.
"""

from __future__ import annotations

import multiprocessing
import threading
from types import TracebackType


class Interrupted(Exception):
    """A pool's `run` stopped because its `Interrupt` was set."""


class Interrupt:
    """Set from any thread to end a `WorkerPool.run` now rather than at its next outcome, which one long
    backtest can hold back for its whole run time: the run waits on this pipe beside its workers' pipes,
    so setting it wakes the run, which raises `Interrupted` and kills the jobs still running.

    One per run, used as a context manager (it holds a pipe); setting it once closed does nothing.
    """

    def __init__(self) -> None:
        self._reader, self._writer = multiprocessing.Pipe(duplex=False)
        self._lock = threading.Lock()  # set() and close() from two threads: never write to a closed (reused) fd
        self._set = False

    def set(self) -> None:
        with self._lock:
            if self._set or self._writer.closed:
                return
            self._set = True
            self._writer.send_bytes(b"")  # never read: the pipe stays readable, so every later wait wakes too

    def is_set(self) -> bool:
        return self._set

    def fileno(self) -> int:
        """What `multiprocessing.connection.wait` waits on: readable once set."""
        return self._reader.fileno()

    def close(self) -> None:
        with self._lock:
            self._writer.close()
            self._reader.close()

    def __enter__(self) -> Interrupt:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
