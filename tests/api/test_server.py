"""`btledger serve` for real: uvicorn on 127.0.0.1 in a subprocess, a batch over HTTP with its SSE stream read
to the end by httpx, another process (this one) appending to the ledger and reading through the server, and
a stop while a client follows a batch."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from typer.testing import CliRunner

from btledger.api.cli import app
from btledger.api.client import Client, ServerInfo, running_server, server_file
from btledger.api.http.app import ServerAlreadyRunning, serve
from btledger.bootstrap import open_ledger
from btledger.domain.errors import InvalidInput, NotFound
from btledger.projections.readmodel import ReadModel, ReadModelLocked
from tests.api import sse
from tests.api.conftest import BATCH, LONG_BATCH
from tests.postgres import on_each_store

# The data directory comes from BTLEDGER_HOME, which the btledger_home fixture sets.
SERVE = [sys.executable, "-m", "btledger", "serve", "--port", "0", "--workers", "1"]


@contextmanager
def serving(home: Path, **popen: Any) -> Iterator[tuple[subprocess.Popen[bytes], ServerInfo]]:
    """`btledger serve` on a free port, once it answers; stopped (SIGTERM) on leaving if still running."""
    process = subprocess.Popen(SERVE, **popen)
    try:
        deadline = time.monotonic() + 60
        while (info := running_server(home)) is None or not _answers(info.url):
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield process, info
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


@pytest.fixture
def server(event_store: str, btledger_home: Path) -> Iterator[tuple[subprocess.Popen[bytes], ServerInfo]]:
    """Serving the event store the test runs on (SQLite unless marked `on_each_store`)."""
    with serving(btledger_home) as started:
        yield started


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_logs_the_address_it_serves(btledger_home: Path) -> None:
    # `--port 0` (or a busy default) leaves a person no other way to learn the address but server.json.
    with serving(btledger_home, stderr=subprocess.PIPE) as (process, info):
        pass
    assert process.stderr is not None
    log = process.stderr.read().decode()
    assert f"btledger serves {btledger_home.resolve()} at {info.url} (API docs at {info.url}/schema)" in log


@on_each_store
def test_serve_runs_a_batch_over_http_and_streams_it_to_the_end(
    server: tuple[subprocess.Popen[bytes], ServerInfo], btledger_home: Path, event_store: str
) -> None:
    process, info = server
    assert info.host == "127.0.0.1" and info.pid == process.pid
    assert json.loads(server_file(btledger_home).read_text())["url"] == info.url

    with httpx.Client(base_url=info.url, timeout=60) as http:
        accepted = http.post("/backtests", json={**BATCH, "risks": [1, 2]})
        assert accepted.status_code == 202
        job = accepted.json()
        lines, answered_meanwhile = [], []
        with http.stream("GET", job["links"]["events"]) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                lines.append(line)
                if len(lines) == 1:  # the batch is under way: the server still answers
                    started = time.perf_counter()
                    answered_meanwhile.append(httpx.get(f"{info.url}/health", timeout=5).status_code)
                    assert time.perf_counter() - started < 2
        events = sse.parse(lines)
        assert answered_meanwhile == [200]
        # uvicorn sends a HEAD the GET's status and headers, without the body.
        health, head = http.get("/health"), http.head("/health")
        assert (head.status_code, head.headers["content-length"]) == (200, health.headers["content-length"])
        assert head.content == b""
        assert events[-1].event == "summary"
        assert events[-1].data["summary"] == {"recorded": 4, "skipped": 0, "failed": 0}
        assert [e.data["status"] for e in events[:-1]].count("recorded") == 4
        assert http.get(job["links"]["self"]).json()["status"] == "done"

    # Another process reads through the server (the read model is the server's) ...
    with pytest.raises(ReadModelLocked, match=f"process {process.pid}"):
        ReadModel.open(btledger_home / "readmodel.duckdb")
    client = Client.for_home(btledger_home)
    assert client is not None
    with client:
        page = client.search(sort="return_pct", limit=10)
        assert page["total"] == 4
        target = page["items"][0]["id"]
        assert client.backtest(target[:8])["id"] == target
        assert len(client.trades(target)) == page["items"][0]["trades"]
        assert client.sql("SELECT count(*) FROM ledger_events")["rows"] == [[8]]
        # ... and appends to the ledger itself, then waits for the server's projector (read-your-writes).
        favorite, position = open_ledger(btledger_home).toggle_favorite(UUID(target))
        assert favorite is True
        assert client.wait_for(position)["projection_position"] >= position
        assert [row["id"] for row in client.favorites()] == [target]
        # A decision over HTTP, the server appending it.
        other = page["items"][1]["id"]
        favorite_other = httpx.put(f"{info.url}/backtests/{other}/favorite", timeout=30)
        assert favorite_other.status_code == 200 and favorite_other.json()["favorite"] is True
        health = httpx.get(f"{info.url}/health", params={"wait_for": favorite_other.json()["position"]}).json()
        assert (health["status"], health["ledger_position"]) == ("ok", 8 + 2)
        assert {row["id"] for row in client.favorites()} == {target, other}
        # Its errors are the domain's, as if the call were local.
        with pytest.raises(NotFound):
            client.backtest("0000")
        with pytest.raises(InvalidInput) as bad:
            client.search(sort="bogus")
        assert bad.value.field == "sort"

    assert (btledger_home / "events.sqlite").exists() == (event_store == "sqlite")

    # One server per data directory.
    with pytest.raises(ServerAlreadyRunning, match=str(process.pid)):
        serve(port=0, home=btledger_home)

    # A graceful stop: uvicorn shuts the app down, then re-raises the signal it caught.
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) in (0, -signal.SIGTERM)
    assert not server_file(btledger_home).exists()
    assert running_server(btledger_home) is None


def test_a_stop_cancels_the_running_batch_and_ends_its_stream_at_once(
    server: tuple[subprocess.Popen[bytes], ServerInfo], btledger_home: Path
) -> None:
    process, info = server
    with httpx.Client(base_url=info.url, timeout=30) as http:
        job = http.post("/backtests", json=LONG_BATCH).json()
        lines: list[str] = []
        stopped: float | None = None
        with http.stream("GET", job["links"]["events"]) as stream:
            for line in stream.iter_lines():
                lines.append(line)
                if stopped is None and sum('"status":"recorded"' in seen for seen in lines) == 2:
                    process.send_signal(signal.SIGINT)  # as Ctrl-C does
                    stopped = time.perf_counter()
        assert stopped is not None
        ended = time.perf_counter() - stopped
    events = sse.parse(lines)
    final = events[-1]
    assert final.event == "cancelled" and final.data["status"] == "cancelled", final
    assert final.data["detail"].startswith("the server is stopping; the combinations recorded so far are kept")
    # Well before uvicorn's graceful-shutdown timeout (5 s), after which it used to cut the stream instead.
    assert ended < 2
    recorded = {UUID(e.data["id"]) for e in events[:-1] if e.data["status"] == "recorded"}
    assert final.data["summary"]["recorded"] == len(recorded) < job["total"]
    assert process.wait(30) == 130  # the shell's code for an interrupted command
    # The batch recorded nothing after its final event.
    assert set(open_ledger(btledger_home).backtest_ids()) == recorded


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_sigint_ends_serve_with_130_even_when_it_was_started_ignoring_sigint(btledger_home: Path) -> None:
    # A script's background job starts with SIGINT ignored. uvicorn still stops on it, then re-raises it
    # for the exit status, which the inherited disposition swallowed: the server exited 0.
    with serving(btledger_home, preexec_fn=_ignore_sigint) as (process, _):
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 130


def test_serve_on_a_port_in_use_fails_naming_it_and_writes_nothing(btledger_home: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "btledger", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert (
        result.stderr
        == f"error: port {port} on 127.0.0.1 is already in use: stop what listens there, or pick another port\n"
    )
    assert list(btledger_home.iterdir()) == []


def test_a_stale_server_file_is_ignored(btledger_home: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    server_file(btledger_home).write_text(json.dumps({"pid": dead.pid, "host": "127.0.0.1", "port": 1}))
    assert running_server(btledger_home) is None
    assert Client.for_home(btledger_home) is None


#: A literal of each kind of DuckDB value, and the JSON `btledger sql --json` gives for it on either path.
LITERALS: dict[str, tuple[str, object]] = {
    "blob": (r"'\xAA\xFF\x00'::BLOB", "qv8A"),  # base64
    "text_blob": ("'ab'::BLOB", "YWI="),
    "interval": ("INTERVAL '1 month 2 days 3 hours 4.5 seconds'", "P32DT3H4.5S"),  # ISO 8601; a month is 30 days
    "negative_interval": ("INTERVAL '-90 minutes'", "-PT1H30M"),
    "uuid": ("'550e8400-e29b-41d4-a716-446655440000'::UUID", "550e8400-e29b-41d4-a716-446655440000"),
    "decimal": ("123.450::DECIMAL(10, 3)", 123.45),
    "hugeint": ("170141183460469231731687303715884105727::HUGEINT", 170141183460469231731687303715884105727),
    "uhugeint": ("340282366920938463463374607431768211455::UHUGEINT", 340282366920938463463374607431768211455),
    "list": ("[1, NULL]", [1, None]),
    "fixed_array": ("[1, 2]::INTEGER[2]", [1, 2]),
    "struct": ("{'a': 1, 'b': [1.5], 'c': '\\xAA'::BLOB}", {"a": 1, "b": [1.5], "c": "qg=="}),
    "map": ("MAP {1: 'x', 2: 'y'}", {"1": "x", "2": "y"}),
    "boolean_map": ("MAP {true: INTERVAL 1 DAY}", {"true": "P1D"}),
    "time": ("TIME '12:34:56.5'", "12:34:56.500000"),
    "time_tz": ("'12:34:56+02:00'::TIMETZ", "12:34:56+02:00"),
    "date": ("DATE '2020-01-02'", "2020-01-02"),
    "timestamp": ("TIMESTAMP '2020-01-02 03:04:05.123'", "2020-01-02T03:04:05.123000"),
    "timestamp_tz": ("TIMESTAMPTZ '2020-01-02 03:04:05+02'", "2020-01-02T01:04:05+00:00"),
    "nan": ("'nan'::DOUBLE", None),
    "infinity": ("'inf'::DOUBLE", None),
    "minus_infinity": ("'-inf'::FLOAT", None),
    "nan_in_a_list": ("[1.0, 'nan'::DOUBLE]", [1.0, None]),
    "json": ("'{\"a\": 1}'::JSON", '{"a": 1}'),
    "enum": ("'a'::ENUM('a', 'b')", "a"),
    "null": ("NULL", None),
}


def test_sql_gives_the_same_json_for_every_type_locally_and_through_the_server(
    server: tuple[subprocess.Popen[bytes], ServerInfo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    statement = "SELECT " + ", ".join(f"{literal} AS {name}" for name, (literal, _) in LITERALS.items())
    # The server owns this home's read model: the CLI can only read through it.
    remote = CliRunner().invoke(app, ["sql", statement, "--json"])
    monkeypatch.setenv("BTLEDGER_HOME", str(tmp_path / "local"))  # no server: the CLI opens a read model itself
    local = CliRunner().invoke(app, ["sql", statement, "--json"])

    assert remote.exit_code == 0, remote.output
    assert local.exit_code == 0, local.output
    assert json.loads(local.stdout) == [{name: value for name, (_, value) in LITERALS.items()}]
    assert remote.stdout == local.stdout
