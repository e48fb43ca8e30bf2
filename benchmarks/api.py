"""GET /backtests (a 100-row page of 10k results) under a bounded local load, against a bare endpoint.

Setup: a fresh data directory gets N synthetic results, saved through the ledger in batches of 500
aggregates per save, then projected into the read model. `btledger serve` (uvicorn, one worker)
runs in a subprocess; a bare Litestar app returning the same page from memory runs in another. The
load comes from wrk (`apt-get install -y wrk`) on 127.0.0.1, one thread, a fixed number of
connections for a fixed time; without wrk the script says so and falls back to a bounded Python
client (asyncio + httpx), which saturates near 1k req/s: both sides then meet that ceiling, and the
ratio says little.

Rows: requests/s of GET /backtests (cached on the read model's position) with the bare endpoint as
baseline (target >= 0.5 of it), its p50/p99 latency, and the uncached path (every request a
different page, so every one queries DuckDB) for scale.

    uv run python benchmarks/api.py [--json] [--results 10000] [--duration 5] [--connections 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from report import emit

TARGET_RATIO = 0.5
PAGE = "/backtests?limit=100"
SAVE_BATCH = 500


# --- data ------------------------------------------------------------------------------------------


def build_ledger(home: Path, results: int, seed: int = 7) -> None:
    """`results` recorded backtests with varied metrics (5 trades each), then projected."""
    from btledger.bootstrap import open_ledger
    from btledger.domain.backtest import Backtest
    from btledger.engine.result import METRIC_COLUMNS, RunSpec
    from btledger.projections.readmodel import ReadModel
    from btledger.synthetic import synthetic_outcome

    rng = random.Random(seed)
    template = synthetic_outcome(n_trades=5)
    strategies = ["SmaCross", "RsiMeanReversion", "DonchianBreakout", "RandomTrader"]
    tickers = ["EURUSD", "GBPUSD", "GOOG", "AAPL", "BTCUSD", "XAUUSD", "US500", "MSFT"]
    ledger = open_ledger(home)
    pending: list[Backtest] = []
    for index in range(results):
        spec = RunSpec(
            strategy=strategies[index % len(strategies)],
            ticker=tickers[(index // len(strategies)) % len(tickers)],
            timeframe=("H1", "H4", "D1")[index % 3],
            risk=1.0 + index // (len(strategies) * len(tickers)),
            date_from=date(2020, 1, 1),
            date_to=date(2021, 1, 1),
            initial_cash=100_000.0,
        )
        returns, drawdown = rng.uniform(-50, 150), rng.uniform(1, 60)
        metrics = {name: rng.uniform(-2, 5) for name in METRIC_COLUMNS}
        metrics.update(trades=5, return_pct=returns, drawdown_pct=drawdown, return_dd=returns / drawdown)
        backtest = Backtest.register(spec)
        backtest.record_result(replace(template, metrics=metrics))
        pending.append(backtest)
        if len(pending) == SAVE_BATCH:
            ledger.save(*pending)
            pending.clear()
    if pending:
        ledger.save(*pending)
    with ReadModel.open(home / "readmodel.duckdb") as readmodel:
        readmodel.catch_up(ledger)


# --- servers ---------------------------------------------------------------------------------------


@contextmanager
def btledger_server(home: Path) -> Iterator[str]:
    """`serve()` in a subprocess; yields its URL once server.json announces it and /health answers."""
    code = (
        "import sys; from pathlib import Path; from btledger.api.http import serve; "
        "serve(port=0, home=Path(sys.argv[1]), workers=1, log_level='warning')"
    )
    env = {**os.environ, "BTLEDGER_HOME": str(home)}
    env.pop("BTLEDGER_API_TOKEN", None)
    with _process([sys.executable, "-c", code, str(home)], env):
        yield _wait_for_url(lambda: json.loads((home / "server.json").read_text())["url"], "/health")


@contextmanager
def bare_server(page: bytes, workdir: Path) -> Iterator[str]:
    """A Litestar app answering GET /backtests with the same page, decoded once and held in memory."""
    (workdir / "page.json").write_bytes(page)
    port_file = workdir / "bare.port"
    with _process([sys.executable, __file__, "--serve-bare", str(workdir / "page.json"), str(port_file)], None):
        yield _wait_for_url(lambda: f"http://127.0.0.1:{int(port_file.read_text())}", PAGE)


def serve_bare(page_path: Path, port_file: Path) -> None:
    import uvicorn
    from litestar import Litestar, get

    page = json.loads(page_path.read_text())

    @get("/backtests", sync_to_thread=False)
    def backtests() -> dict[str, Any]:
        return page  # type: ignore[no-any-return]

    listener = socket.create_server(("127.0.0.1", 0))
    port_file.write_text(str(listener.getsockname()[1]))
    config = uvicorn.Config(Litestar([backtests]), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[listener])


@contextmanager
def _process(command: list[str], env: dict[str, str] | None) -> Iterator[None]:
    process = subprocess.Popen(command, env=env)
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_url(url_of: Any, probe: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            url = str(url_of())
            if httpx.get(url + probe, timeout=2).status_code == 200:
                return url
        except (OSError, ValueError, KeyError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no server answered {probe} within {timeout} s")


# --- load ------------------------------------------------------------------------------------------

#: Every request a different page (offsets 0..9900 at random): each one misses the cache.
_UNCACHED_LUA = """
math.randomseed(7)
request = function()
  return wrk.format("GET", "/backtests?limit=100&offset=" .. math.random(0, 9900))
end
"""


def load(url: str, path: str, duration: float, connections: int, *, uncached: bool = False) -> dict[str, float]:
    """requests/s, p50 and p99 in ms of `path` for `duration` seconds over `connections` connections."""
    if shutil.which("wrk"):
        return _wrk(url, path, duration, connections, uncached)
    return asyncio.run(_python_load(url, path, duration, connections, uncached))


def _wrk(url: str, path: str, duration: float, connections: int, uncached: bool) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", url + path]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if uncached:
            script.write(_UNCACHED_LUA)
            script.flush()
            command[1:1] = ["-s", script.name]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        raise RuntimeError(f"wrk saw error responses from {url + path}:\n{output}")
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50_ms": _wrk_ms(output, "50%"),
        "p99_ms": _wrk_ms(output, "99%"),
    }


def _wrk_ms(output: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


async def _python_load(url: str, path: str, duration: float, connections: int, uncached: bool) -> dict[str, float]:
    latencies: list[float] = []
    rng = random.Random(7)
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, trust_env=False) as client:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                target = f"/backtests?limit=100&offset={rng.randint(0, 9900)}" if uncached else path
                started = time.perf_counter()
                response = await client.get(target)
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)] * 1e3,
    }


# --- measurement -----------------------------------------------------------------------------------


def measure(
    results: int = 10_000, duration: float = 5.0, connections: int = 16, rounds: int = 3
) -> list[dict[str, Any]]:
    """Build the data, start both servers, load them in alternating rounds; the rows of the report.

    Alternating rounds (ours, bare, ours, bare, ...) and taking each side's median round keeps a
    change of background load on the machine from favouring either side.
    """
    if not shutil.which("wrk"):
        print(
            "wrk not found (apt-get install -y wrk): using the Python client instead; it saturates near 1k req/s, "
            "so both sides may meet its ceiling and the ratio to the bare endpoint says little",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="btledger-bench-api-") as workdir:
        home = Path(workdir) / "home"
        build_ledger(home, results)
        with btledger_server(home) as url:
            page = httpx.get(url + PAGE).content
            assert json.loads(page)["total"] == results and len(json.loads(page)["items"]) == 100
            with bare_server(page, Path(workdir)) as bare_url:
                load(url, PAGE, 1.0, connections)  # warm-up (and the page cached)
                load(bare_url, PAGE, 1.0, connections)
                ours, theirs = [], []
                for _ in range(rounds):
                    ours.append(load(url, PAGE, duration, connections))
                    theirs.append(load(bare_url, PAGE, duration, connections))
            uncached = load(url, PAGE, duration, connections, uncached=True)
    cached, bare = _median_round(ours), _median_round(theirs)
    label = f"GET /backtests (100 rows of {results:,}, c={connections})"
    ratio = cached["rps"] / bare["rps"]
    return [
        _row(f"{label} throughput", cached["rps"], bare["rps"], "req/s", TARGET_RATIO, ratio >= TARGET_RATIO),
        _row(f"{label} p50 latency", cached["p50_ms"], bare["p50_ms"], "ms"),
        _row(f"{label} p99 latency", cached["p99_ms"], bare["p99_ms"], "ms"),
        _row(f"{label} uncached throughput", uncached["rps"], bare["rps"], "req/s"),
        _row(f"{label} uncached p99 latency", uncached["p99_ms"], bare["p99_ms"], "ms"),
    ]


def _median_round(measured: list[dict[str, float]]) -> dict[str, float]:
    return sorted(measured, key=lambda m: m["rps"])[len(measured) // 2]


def _row(
    name: str, value: float, baseline: float, unit: str, target: float | None = None, met: bool | None = None
) -> dict[str, Any]:
    """A report row; `ratio` is value / baseline (for latencies lower is better, and no target is set)."""
    return {
        "name": name,
        "value": round(value, 3),
        "unit": unit,
        "baseline": round(baseline, 3),
        "ratio": round(value / baseline, 3),
        "target": target,
        "met": met,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per measurement")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side (median reported)")
    parser.add_argument("--serve-bare", nargs=2, metavar=("PAGE_JSON", "PORT_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(Path(args.serve_bare[0]), Path(args.serve_bare[1]))
        return
    emit(measure(args.results, args.duration, args.connections, args.rounds), args.json)


if __name__ == "__main__":
    main()
