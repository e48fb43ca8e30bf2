"""`btledger demo`, the README's first command, as a new user runs it: a process on a fresh data directory."""

from __future__ import annotations

import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from btledger.api.cli import app
from tests.api.conftest import app_client

DEMO_COMBINATIONS = 3 * 3 * 2 * 2  # strategies × tickers × timeframes × risks, as the README says


def demo() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "btledger", "demo", "--workers", "2"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_demo_records_its_batch_shows_the_ranking_and_skips_it_when_run_again(btledger_home: Path) -> None:
    first = demo()
    assert f"recorded {DEMO_COMBINATIONS}, skipped 0 (already in the ledger), failed 0" in first
    assert "robust ranking" in first and f"top 10 of {DEMO_COMBINATIONS} by stability-weighted RAR" in first
    events = sqlite3.connect(btledger_home / "events.sqlite").execute("SELECT count(*) FROM stored_events").fetchone()
    assert events[0] >= DEMO_COMBINATIONS
    [plot] = re.findall(r"plot of the best result: (\S+)", first)
    assert Path(plot).is_file() and Path(plot).parent == btledger_home / "plots"

    again = demo()
    assert f"recorded 0, skipped {DEMO_COMBINATIONS} (already in the ledger), failed 0" in again
    assert re.findall(r"plot of the best result: (\S+)", again) == [plot]
    assert (
        sqlite3.connect(btledger_home / "events.sqlite").execute("SELECT count(*) FROM stored_events").fetchone()
        == events
    )

    # Every next step it suggests works (`serve` runs until stopped: tests/api/test_server.py covers it).
    next_steps = first.split("\nnext\n")[1].splitlines()
    steps = [
        shlex.split(line.split("uv run btledger", 1)[1], comments=True) for line in next_steps if "btledger" in line
    ]
    assert [step[0] for step in steps] == ["history", "trades", "test", "strategies", "sql", "serve"]
    for step in steps[:-1]:
        result = CliRunner().invoke(app, step)
        assert result.exit_code == 0, (step, result.output[-1000:])

    # The plot it printed is the one the API serves for that result.
    best = steps[0][1]
    with app_client(btledger_home) as client:
        served = client.get(f"/backtests/{best}/plot")
    assert served.status_code == 200 and served.text == Path(plot).read_text()

    # With its plot gone and the stocks' commission changed since it ran, none can be made: the demo says so.
    Path(plot).unlink()
    shipped = (Path(__file__).parents[2] / "btledger" / "configs" / "instruments.yaml").read_text()
    assert "  Stocks: {commission: 0.05}\n" in shipped  # every demo ticker is a stock
    (btledger_home / "configs").mkdir()
    (btledger_home / "configs" / "instruments.yaml").write_text(
        shipped.replace("  Stocks: {commission: 0.05}\n", "  Stocks: {commission: 0.1}\n")
    )
    third = demo()
    [refused] = re.findall(r"no plot of the best result: (.*)", third)
    assert refused.startswith(f"backtest {best}") and "its costs (the instruments config) changed" in refused
    assert "\nnext\n" in third and not Path(plot).exists()
