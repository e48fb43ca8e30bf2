"""HTTP API fixtures: an app over a fresh data directory, with hand-made results recorded in its ledger.

Hand-made outcomes keep these tests independent of the engine's numbers; the batch tests run the
real engine on the sample data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from btledger.api.client import TOKEN_ENV
from btledger.api.http import create_app
from btledger.bootstrap import open_ledger
from btledger.domain.ledger import Ledger
from btledger.engine.result import METRIC_COLUMNS, RunSpec
from tests.domain.factories import outcome

#: A short range of the EURUSD sample (hourly bars), for real batches.
BATCH = {
    "strategies": ["SmaCross"],
    "tickers": ["EURUSD"],
    "timeframes": ["H1", "H4"],
    "risks": [1],
    "date_from": "2017-05-01",
    "date_to": "2017-08-01",
}
#: 120 combinations over the whole EURUSD sample: seconds of work, to stop half-way.
LONG_BATCH = {
    **BATCH,
    "strategies": ["SmaCross", "DonchianBreakout", "RsiMeanReversion"],
    "timeframes": ["H1"],
    "risks": [round(0.1 * step, 1) for step in range(1, 41)],
    "date_from": "2017-04-19",
    "date_to": "2018-02-08",
}


@dataclass(frozen=True)
class Seeded:
    """One recorded result: its key, id and headline metrics."""

    name: str
    id: str
    strategy: str
    ticker: str
    timeframe: str
    metrics: dict[str, Any]


#: name: (strategy, ticker, timeframe, risk, return_pct, drawdown_pct, stability_weighted_rar, trades)
ROWS: dict[str, tuple[str, str, str, float, float, float, float, int]] = {
    "sma_eur_h1": ("SmaCross", "EURUSD", "H1", 1.0, 20.0, 10.0, 1.5, 30),
    "sma_eur_h4": ("SmaCross", "EURUSD", "H4", 1.0, 10.0, 10.0, 0.5, 12),
    "sma_goog_d1": ("SmaCross", "GOOG", "D1", 1.0, 5.0, 10.0, 0.2, 8),
    "rsi_eur_h1": ("RsiMeanReversion", "EURUSD", "H1", 2.0, 40.0, 8.0, 3.0, 50),
    "rsi_goog_h1": ("RsiMeanReversion", "GOOG", "H1", 1.0, -5.0, 20.0, -1.0, 40),
    # W1 is not a selected timeframe: never part of a robust ranking.
    "donchian_gbp_w1": ("DonchianBreakout", "GBPUSD", "W1", 1.0, 100.0, 10.0, 9.0, 5),
}


def record_rows(ledger: Ledger) -> dict[str, Seeded]:
    seeded = {}
    for name, (strategy, ticker, timeframe, risk, ret, dd, swrar, trades) in ROWS.items():
        spec = RunSpec(strategy, ticker, timeframe, risk, date(2017, 5, 1), date(2018, 2, 1), 100_000.0)
        metrics: dict[str, Any] = dict.fromkeys(METRIC_COLUMNS, 1.0)
        metrics.update(
            return_pct=ret,
            drawdown_pct=dd,
            return_dd=ret / dd,
            stability_weighted_rar=swrar,
            trades=trades,
            sharpe_ratio=ret / 20,
            win_rate=50 + ret / 4,
        )
        identity, _ = ledger.record_outcome(spec, replace(outcome(trades=3), metrics=metrics))
        seeded[name] = Seeded(name, str(identity), strategy, ticker, timeframe, metrics)
    return seeded


@pytest.fixture(autouse=True)
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)


@pytest.fixture
def ledger(btledger_home: Path) -> Ledger:
    return open_ledger(btledger_home)


@pytest.fixture
def seeded(ledger: Ledger) -> dict[str, Seeded]:
    return record_rows(ledger)


def app_client(home: Path, token: str = "") -> TestClient[Any]:
    """A test client of an app over `home` (no token unless given), one worker process for batches."""
    return TestClient(create_app(home, workers=1, token=token), raise_server_exceptions=False)


@contextmanager
def caught_up(home: Path, token: str = "") -> Iterator[TestClient[Any]]:
    """A test client once the app's read model has applied every event of the ledger."""
    with app_client(home, token) as client:
        head = open_ledger(home).head()
        assert client.get("/health", params={"wait_for": head}).status_code == 200
        yield client


@pytest.fixture
def api(btledger_home: Path, seeded: dict[str, Seeded]) -> Iterator[TestClient[Any]]:
    """A client of its own app over the seeded ledger, for tests that change it."""
    with caught_up(btledger_home) as client:
        yield client


@dataclass(frozen=True)
class Shared:
    client: TestClient[Any]
    seeded: dict[str, Seeded]
    ledger: Ledger
    home: Path


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """One app over a seeded ledger for a whole module: for tests that only read (or are refused)."""
    home = tmp_path_factory.mktemp("shared-home")
    ledger = open_ledger(home)
    seeded = record_rows(ledger)
    with caught_up(home) as client:
        yield Shared(client, seeded, ledger, home)
