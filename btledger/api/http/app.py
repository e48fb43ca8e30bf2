"""The Litestar app and `serve()`.

The serving process owns the read model: DuckDB lets one process hold the file, so the app's
lifespan opens it, runs the projector thread beside the handlers, and starts the worker pool that
batches compute in. Other processes (the CLI) append to the ledger themselves and read through this
server, which they find in `<home>/server.json` while it runs (see `btledger.api.client`).
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from types import FrameType

import uvicorn
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from btledger import bootstrap
from btledger.api import client
from btledger.api.client import TOKEN_ENV
from btledger.api.http.auth import require_token
from btledger.api.http.cache import QueryCache
from btledger.api.http.errors import EXCEPTION_HANDLERS
from btledger.api.http.jobs import Jobs
from btledger.api.http.query import check_parameters
from btledger.api.http.routes import backtests, jobs, rankings, strategies, system
from btledger.api.http.services import Services, provide_services
from btledger.config import check_workers
from btledger.config import home as default_home
from btledger.domain.batch import run_batches
from btledger.domain.errors import LedgerError
from btledger.projections.projector import Projector
from btledger.projections.readmodel import ReadModel

#: uvicorn's own logger: the one its log configuration shows, beside its startup lines.
_UVICORN_LOG = logging.getLogger("uvicorn.error")

ROUTES = [*backtests.ROUTES, *jobs.ROUTES, *rankings.ROUTES, *strategies.ROUTES, *system.ROUTES]


def create_app(
    home: Path | None = None,
    *,
    workers: int | None = None,
    token: str | None = None,
    announce: tuple[str, int] | None = None,
) -> Litestar:
    """The API over the ledger and read model in `home` (default: BTLEDGER_HOME or ./var).

    `workers`: worker processes for batches (default: settings). `token`: require it on mutations
    (default: $BTLEDGER_API_TOKEN; empty means none). `announce`: the (host, port) to publish in
    `<home>/server.json` while the app runs.
    """
    home = (home or default_home()).resolve()
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        with ExitStack() as stack:
            # The pool forks its workers: first, while this process runs no other thread (DuckDB's
            # and the projector's would be copied in whatever state they are).
            pool = stack.enter_context(bootstrap.open_pool(workers))
            ledger = bootstrap.open_ledger(home)
            stack.callback(ledger.close)
            readmodel = stack.enter_context(ReadModel.open(home / "readmodel.duckdb"))
            # Catches up in its thread: the server answers at once, /health shows the lag meanwhile.
            projector = stack.enter_context(Projector(readmodel, ledger))
            batch_jobs = Jobs(
                run=lambda commands, on_progress, interrupt: run_batches(
                    ledger, commands, pool, home, on_progress, interrupt
                ),
                settle=lambda position: services.settle(position),
            )
            stack.callback(batch_jobs.close)
            services = Services(
                home=home,
                ledger=ledger,
                readmodel=readmodel,
                projector=projector,
                jobs=batch_jobs,
                cache=QueryCache(readmodel.position, concurrency=os.cpu_count() or 2),
            )
            app.state.services = services
            if announce is not None:
                client.write_server_file(home, *announce)
                stack.callback(client.remove_server_file, home)
                # uvicorn names no address when given a bound socket, and `--port 0` picks one at random.
                url = client.ServerInfo(os.getpid(), *announce).url
                _UVICORN_LOG.info("btledger serves %s at %s (API docs at %s/schema)", home, url, url)
            yield

    return Litestar(
        route_handlers=ROUTES,
        lifespan=[lifespan],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        guards=[require_token(token)] if token else [],
        before_request=check_parameters,
        openapi_config=_openapi(secured=token is not None),
    )


def _openapi(*, secured: bool) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="btledger",
        version="0.1.0",
        description=(
            "An event-sourced ledger of trading-strategy backtests. Every error is JSON "
            "{status, error, detail, field}. Mutations answer once the read model includes them."
            + (" This server requires `Authorization: Bearer <token>` on changes." if secured else "")
        ),
        path="/schema",
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin()],
        components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
    )


def _freeze_heap() -> None:
    """Keep what startup left alive (pandas, bokeh, backtesting, DuckDB: ~180k objects) out of the garbage
    collector's full passes, which otherwise take ~100 ms each and showed as 100 ms p99 spikes under load."""
    gc.collect()
    gc.freeze()


def _listen(host: str, port: int) -> socket.socket:
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise LedgerError(
                f"port {port} on {host} is already in use: stop what listens there, or pick another port"
            ) from None
        raise LedgerError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


class ServerAlreadyRunning(LedgerError):
    """A server already owns this data directory."""


class _Server(uvicorn.Server):
    """uvicorn that cancels the batch jobs as it starts to stop (on SIGINT or SIGTERM), before it waits for
    open connections: otherwise a client following a job's events keeps the connection open, the batch
    goes on recording for the whole graceful-shutdown timeout, and uvicorn then cuts the stream without
    its final event. Cancelled, each job's stream ends with its `cancelled` event and closes."""

    def __init__(self, config: uvicorn.Config, app: Litestar) -> None:
        super().__init__(config)
        self._app = app
        #: Stopped by SIGINT: uvicorn re-raises it once stopped, for the exit status a shell expects (130).
        self.interrupted = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.interrupted = self.interrupted or sig == signal.SIGINT
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._app.state.services.jobs.stop()
        await super().shutdown(sockets)


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    home: Path | None = None,
    *,
    workers: int | None = None,
    log_level: str = "info",
) -> None:
    """Run the API with uvicorn (one process: it owns the read model) until interrupted. SIGINT or SIGTERM
    cancels the batch jobs first, then lets open requests finish (up to 5 s).

    Port 0 picks a free port. Raises, with a message for a person and before anything starts:
    `ValueError` for a bad `workers`, `ServerAlreadyRunning` or `ReadModelLocked` when another process
    holds the data directory, and `LedgerError` when the address cannot be listened on.
    """
    check_workers(workers)  # the pool checks it too, but in the app's startup, as a traceback in the log
    home = (home or default_home()).resolve()
    running = client.running_server(home)
    if running is not None:
        raise ServerAlreadyRunning(f"a server (pid {running.pid}) already serves {home} at {running.url}")
    listener = _listen(host, port)  # before anything is written to the data directory
    with listener:
        ReadModel.open(home / "readmodel.duckdb").close()  # fail here, readably, if another process holds it
        app = create_app(home, workers=workers, announce=(host, listener.getsockname()[1]))
        app.on_startup.append(_freeze_heap)
        config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=5)
        server = _Server(config, app)
        server.run(sockets=[listener])
    if server.interrupted:
        # Still here: the re-raised SIGINT was ignored, as a background job of a script inherits it.
        raise KeyboardInterrupt
    if not server.started:
        raise LedgerError("the server did not start; its log above says why")
