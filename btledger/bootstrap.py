"""Wiring: open the event store, the read model and the worker pool for one process.

Entrypoints (CLI, HTTP app, benchmarks) get their parts here, so configuration lives in one place.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from btledger.config import home as default_home
from btledger.config import load_settings
from btledger.domain.ledger import Ledger, store_env

if TYPE_CHECKING:
    from btledger.engine.pool import WorkerPool


def open_ledger(home: Path | None = None) -> Ledger:
    """The ledger over `home`'s event store (SQLite file, or PostgreSQL when the environment says so)."""
    return Ledger(env=store_env(home or default_home()))


def open_pool(workers: int | None = None) -> WorkerPool:
    """Worker processes for batches: `workers`, else settings.workers, else one per core."""
    from btledger.engine.pool import WorkerPool

    settings = load_settings()
    return WorkerPool(workers or settings.workers or None, settings=settings)


def catch_up(ledger: Ledger, home: Path | None = None) -> int:
    """Bring the read model up to the ledger's head (read-your-writes for a command just run).

    In this process when it can own the DuckDB file; when `btledger serve` owns it, wait until the
    server's projector has applied the head instead.
    """
    from btledger.api.client import Client
    from btledger.projections.readmodel import ReadModel

    home = home or default_home()
    head = ledger.head()
    client = Client.for_home(home)
    if client is not None:
        with client:
            client.wait_for(head)
        return head
    with ReadModel.open(home / "readmodel.duckdb") as readmodel:
        return readmodel.catch_up(ledger)


#: How often a batch's projection catches up: each catch-up has a fixed cost of tens of milliseconds
#: (a DuckDB transaction, a dozen statements), so results are applied ten or so at a time.
BATCH_PROJECTION_INTERVAL = 1.0


@contextmanager
def projecting(ledger: Ledger, home: Path | None = None) -> Iterator[None]:
    """Keep the read model following `ledger` while the block appends events (a batch).

    In this process a thread opens the read model (a new file takes ~0.1 s to create) and applies the
    events as they come, on the core the parent would otherwise leave idle while workers compute,
    instead of all of them after the batch. On exit the read model holds the head (read-your-writes),
    or the thread's error (e.g. `ReadModelLocked`) is raised; what the batch recorded stays recorded.
    When `btledger serve` owns the read model, its projector follows the store and the exit waits for it.
    """
    from btledger.api.client import Client
    from btledger.projections.readmodel import ReadModel

    home = home or default_home()
    if Client.for_home(home) is not None:
        yield
        catch_up(ledger, home)
        return

    def follow(done: threading.Event) -> None:
        with ReadModel.open(home / "readmodel.duckdb") as readmodel:
            while not done.is_set():
                readmodel.catch_up(ledger)
                done.wait(BATCH_PROJECTION_INTERVAL)
            readmodel.catch_up(ledger)  # what the block appended last

    done = threading.Event()
    with ThreadPoolExecutor(1, thread_name_prefix="btledger-projection") as thread:
        following = thread.submit(follow, done)
        try:
            yield
        finally:
            done.set()
        following.result()
