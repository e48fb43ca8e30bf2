"""Wiring: open the event store, the read model and the worker pool for one process.

Entrypoints (CLI, HTTP app, benchmarks) get their parts here, so configuration lives in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from btledger.config import home as default_home
from btledger.config import load_settings
from btledger.domain.ledger import Ledger, store_env

if TYPE_CHECKING:
    from btledger.domain.batch import Progress
    from btledger.engine.pool import WorkerPool

log = logging.getLogger(__name__)


def open_ledger(home: Path | None = None) -> Ledger:
    """The ledger over `home`'s event store (SQLite file, or PostgreSQL when the environment says so)."""
    return Ledger(env=store_env(home or default_home()))


def open_pool(workers: int | None = None, *, lazy: bool = False) -> WorkerPool:
    """Worker processes for batches: `workers`, else settings.workers, else one per core; started now, or
    with `lazy` as a batch's jobs need them (see `WorkerPool`)."""
    from btledger.engine.pool import WorkerPool

    settings = load_settings()
    return WorkerPool(workers or settings.workers or None, settings=settings, lazy=lazy)


def catch_up(ledger: Ledger, home: Path | None = None) -> None:
    """Bring the read model up to the ledger's head (read-your-writes for a command just run).

    In this process when it can own the DuckDB file; when `btledger serve` owns it, wait until the
    server's projector has applied the head instead.
    """
    from btledger.api.client import Client
    from btledger.projections.readmodel import ReadModel

    home = home or default_home()
    with _behind_when_unreachable():
        client = Client.for_home(home)
        if client is not None:
            with client:
                client.wait_for(ledger.head())
            return
        with ReadModel.open(home / "readmodel.duckdb") as readmodel:
            readmodel.catch_up(ledger)


@contextmanager
def _behind_when_unreachable() -> Iterator[None]:
    """A change is in the ledger once appended: a read model that another process holds (or a server that
    does not answer) only shows it later, at its next catch-up. Said on stderr; the command succeeded."""
    from btledger.api.client import ServerUnavailable
    from btledger.projections.readmodel import ReadModelLocked

    try:
        yield
    except ReadModelLocked as error:
        holder = f"process {error.pid}" if error.pid else "another process"
        log.warning("recorded; the read model, in use by %s, shows it at its next catch-up", holder)
    except ServerUnavailable as error:
        log.warning("recorded; the read model shows it once the server catches up (%s)", error)


@contextmanager
def projecting(ledger: Ledger, home: Path | None = None) -> Iterator[Callable[[Progress], None]]:
    """Bring the read model up to the events that batches run in the block append.

    Yields the callback for the batches' progress. In this process a `BatchProjection` applies them in
    each batch's tail; when `btledger serve` owns the read model, its projector follows the store and
    the exit waits for it.
    """
    from btledger.api.client import Client
    from btledger.projections.batch import BatchProjection

    home = home or default_home()
    if Client.for_home(home) is not None:
        yield lambda _: None
        catch_up(ledger, home)
        return
    with _behind_when_unreachable(), BatchProjection(ledger, home / "readmodel.duckdb") as projection:
        yield projection.observe
