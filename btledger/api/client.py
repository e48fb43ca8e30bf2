"""Finding and reading through a running `btledger serve`.

While a server runs it owns the read model (DuckDB lets no other process open the file), and it
announces itself in `<home>/server.json` (pid, host, port). Other processes keep appending to the
ledger directly; they read through the server with `Client`, whose errors are the domain's own
(`InvalidInput`, `NotFound`, `Conflict`), so callers handle a remote answer like a local one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from btledger.domain.errors import Conflict, InvalidInput, LedgerError, NotFound

if TYPE_CHECKING:
    import httpx

SERVER_FILE = "server.json"
TOKEN_ENV = "BTLEDGER_API_TOKEN"


class ServerUnavailable(LedgerError):
    """The server announced in server.json does not answer, or answered with a server error."""


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def server_file(home: Path) -> Path:
    return home / SERVER_FILE


def write_server_file(home: Path, host: str, port: int) -> None:
    """Announce this process as the server of `home` (written atomically)."""
    info = {"pid": os.getpid(), "host": host, "port": port, "url": ServerInfo(os.getpid(), host, port).url}
    temporary = server_file(home).with_suffix(".json.tmp")
    temporary.write_text(json.dumps(info) + "\n", encoding="utf-8")
    temporary.replace(server_file(home))


def remove_server_file(home: Path) -> None:
    """Withdraw the announcement, if it is this process's."""
    info = _read(server_file(home))
    if info is not None and info.pid == os.getpid():
        server_file(home).unlink(missing_ok=True)


def running_server(home: Path) -> ServerInfo | None:
    """The server announced for `home`, unless there is none or its process is gone (a stale file)."""
    info = _read(server_file(home))
    if info is None or not _alive(info.pid):
        return None
    return info


def _read(path: Path) -> ServerInfo | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ServerInfo(int(data["pid"]), str(data["host"]), int(data["port"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


class Client:
    """The read side of the HTTP API (plus `wait_for`), returning the same JSON shapes as the CLI's --json."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        token = token if token is not None else os.environ.get(TOKEN_ENV)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Imported here: every command that catches up or reads asks for a client, most find no server,
        # and httpx took ≈ 35 ms of each one's start.
        import httpx

        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, trust_env=False)

    @classmethod
    def for_home(cls, home: Path, **options: Any) -> Client | None:
        """A client of the server running for `home`, or None when no server runs."""
        info = running_server(home)
        return cls(info.url, **options) if info is not None else None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- reads -----------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def wait_for(self, position: int) -> dict[str, Any]:
        """Block until the server's read model includes ledger `position` (after appending events)."""
        return self._call("GET", "/health", params={"wait_for": position})

    def search(self, **filters: Any) -> dict[str, Any]:
        """`{"total", "limit", "offset", "items"}`; filters as GET /backtests takes them (None is left out)."""
        return self._call("GET", "/backtests", params=filters)

    def rank(self, strategy: str | None = None, as_of: datetime | None = None) -> list[dict[str, Any]]:
        params = {"strategy": strategy, "as_of": as_of.isoformat() if as_of else None}
        return self._call("GET", "/rankings/robust", params=params)

    def backtest(self, id_or_prefix: str) -> dict[str, Any]:
        """The `backtests` row of a live result."""
        return self._call("GET", f"/backtests/{_segment(id_or_prefix)}")["backtest"]

    def trades(self, id_or_prefix: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/backtests/{_segment(id_or_prefix)}/trades")

    def history(self, id_or_prefix: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/backtests/{_segment(id_or_prefix)}/history")

    def favorites(self) -> list[dict[str, Any]]:
        return self._call("GET", "/favorites")

    def strategy_ticker(self, strategy: str, ticker: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/strategies/{_segment(strategy)}/tickers/{_segment(ticker)}/backtests")

    def strategies(self) -> list[dict[str, Any]]:
        return self._call("GET", "/strategies")

    def robustness_tests(self, id_or_prefix: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/backtests/{_segment(id_or_prefix)}/tests")

    def sql(self, statement: str, max_rows: int = 10_000) -> dict[str, Any]:
        """`{"columns", "rows", "truncated"}` of one read-only statement."""
        return self._call("POST", "/sql", json={"sql": statement, "max_rows": max_rows})

    # --- plumbing --------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if "params" in kwargs:
            kwargs["params"] = {k: _param(v) for k, v in kwargs["params"].items() if v is not None}
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ServerUnavailable(f"the server at {self.base_url} does not answer ({error})") from None
        if response.is_success:
            return response.json()
        raise _error(response)


def _segment(text: str) -> str:
    return quote(text, safe="")


def _param(value: Any) -> Any:
    return str(value).lower() if isinstance(value, bool) else value


def _error(response: httpx.Response) -> LedgerError:
    try:
        body = response.json()
        detail, field = str(body["detail"]), body.get("field")
    except (ValueError, KeyError, TypeError):
        detail, field = response.text[:500] or response.reason_phrase, None
    status = response.status_code
    if status == 404:
        return NotFound(detail, field or "id")
    if status == 409:
        return Conflict(detail, field)
    if status == 401:
        return LedgerError(f"{detail} (set {TOKEN_ENV})")
    if 400 <= status < 500:
        return InvalidInput(field or "request", detail)
    return ServerUnavailable(f"the server answered {status}: {detail}")
