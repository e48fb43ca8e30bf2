"""Exactly-once: SIGKILL the projecting process mid-catch-up, twice, and resume."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from btledger.domain.backtest import Backtest
from btledger.domain.ledger import Ledger, store_env
from btledger.projections.readmodel import ReadModel
from tests.projections.factories import TIMEFRAMES, outcome, spec
from tests.projections.test_projection import REPO, table_rows

RESULTS = 400
TRADES = 200
BATCH = 20


def _trade_heavy_ledger(home: Path) -> Ledger:
    """RESULTS results of TRADES trades, every 7th toggled three times, every 11th deleted."""
    ledger = Ledger(env=store_env(home))
    heavy = outcome(n_trades=TRADES)
    backtests = []
    for i in range(RESULTS):
        backtest = Backtest.register(spec(ticker=f"T{i % 40}", risk=1 + i // 40))
        backtest.record_result(heavy)
        if i % 7 == 0:
            for _ in range(3):
                backtest.toggle_favorite()
        if i % 11 == 0:
            backtest.delete(reason="test")
        backtests.append(backtest)
    for start in range(0, RESULTS, 100):  # many aggregates per save: builds the store fast
        ledger.save(*backtests[start : start + 100])
    return ledger


def _project_until(home: Path, kill_at: int | None) -> list[int]:
    """Run the child; SIGKILL it as soon as it reports a position >= kill_at. Returns reported positions."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.projections.project_child", str(home), str(BATCH)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    positions = []
    for line in child.stdout:
        if line.strip() == "done":
            break
        positions.append(int(line))
        if kill_at is not None and positions[-1] >= kill_at:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=60)
    if kill_at is not None:
        assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    return positions


def test_killed_projection_resumes_and_applies_every_event_exactly_once(tmp_path: Path) -> None:
    ledger = _trade_heavy_ledger(tmp_path)
    head = ledger.head()

    first = _project_until(tmp_path, kill_at=BATCH * 4)
    second = _project_until(tmp_path, kill_at=first[-1] + BATCH * 12)
    last = _project_until(tmp_path, kill_at=None)

    assert second[0] > first[-1] and last[0] > second[-1], "a restart re-applied a committed batch"
    assert last[-1] == head
    with ReadModel.open(tmp_path / "readmodel.duckdb", timeframes=TIMEFRAMES) as resumed:
        cur = resumed.cursor()
        deleted = len(range(0, RESULTS, 11))
        per_backtest = cur.execute("SELECT DISTINCT count(*) FROM trades GROUP BY backtest_id").fetchall()
        assert per_backtest == [(TRADES,)]
        assert cur.execute("SELECT count(*), count(DISTINCT id) FROM backtests").fetchone() == (
            RESULTS - deleted,
            RESULTS - deleted,
        )
        assert cur.execute("SELECT count(*) FROM deleted_trades").fetchone() == (deleted * TRADES,)
        assert cur.execute("SELECT count(*) FILTER (favorite) FROM backtest_keys").fetchone() == (
            len(range(0, RESULTS, 7)),
        )
        assert cur.execute("SELECT count(*), count(DISTINCT position) FROM ledger_events").fetchone() == (head, head)

        clean = ReadModel.open(tmp_path / "clean.duckdb", timeframes=TIMEFRAMES)
        clean.rebuild(ledger)
        assert table_rows(resumed) == table_rows(clean)
