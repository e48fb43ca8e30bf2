"""What a CLI command imports before it runs: the commands that only read or mark results must not pay
for backtesting.py and bokeh (≈ 1.2 s of imports, which `btledger history` used to spend on every call),
nor for pandas (≈ 0.3 s, which pyarrow imported when the catch-up after `btledger favorite` built its rows),
nor for httpx (≈ 35 ms) when no server runs."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb

from btledger import bootstrap
from btledger.engine import run_backtest
from btledger.engine.result import RunSpec

HEAVY = ("backtesting", "bokeh", "pandas", "httpx")


def _imported_after(statement: str) -> list[str]:
    """The HEAVY modules a fresh interpreter holds after running `statement`."""
    probe = f"import json, sys; {statement}; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_the_cli_and_its_operations_import_no_engine() -> None:
    assert _imported_after("import btledger.api.cli, btledger.api.operations") == []


def test_validating_a_batch_loads_the_strategies() -> None:
    # The registry imports them on first use: the probe above would pass vacuously if nothing ever did.
    statement = (
        "from btledger.domain.commands import RunBatch, parse; "
        "parse(RunBatch, {'strategies': ['SmaCross'], 'tickers': ['GOOG'], 'timeframes': ['D1'], 'risks': [1.0], "
        "'date_from': '2010-01-01', 'date_to': '2011-01-01'})"
    )
    assert _imported_after(statement) == ["backtesting", "bokeh", "pandas"]


def test_decisions_and_their_catch_ups_import_no_pandas(btledger_home: Path) -> None:
    # A result recorded by another process: the first decision's catch-up projects it with its trades (a new
    # read model, its timeframes too), the next ones close its current version. pyarrow imports pandas the
    # first time `pa.array` converts a list; the projector builds its Arrow tables without it. No server
    # runs, so no HTTP client is made.
    spec = RunSpec("SmaCross", "GOOG", "D1", 1.0, date(2008, 1, 1), date(2012, 1, 1), 100_000.0)
    outcome = run_backtest(spec)
    recorded = bootstrap.open_ledger().record_outcome(spec, outcome, new=True)
    assert recorded is not None
    identity = str(recorded[0])
    commands = [["favorite", identity], ["delete", identity], ["restore", identity]]
    statement = "from btledger.api.cli import app; " + "; ".join(
        f"app({command!r}, standalone_mode=False)" for command in commands
    )

    assert _imported_after(statement) == []

    # The catch-ups did write: the vacuous pass (nothing projected) would leave these empty.
    with duckdb.connect(str(btledger_home / "readmodel.duckdb"), read_only=True) as con:
        count = "SELECT count(*) FROM backtests WHERE id = ? AND favorite"
        assert con.execute(count, [identity]).fetchone() == (1,)
        trades = con.execute("SELECT count(*) FROM trades WHERE backtest_id = ?", [identity]).fetchone()
        assert trades == (len(outcome.trades["size"]),)
        versions = "SELECT count(*), count(valid_to) FROM backtest_versions WHERE id = ?"
        assert con.execute(versions, [identity]).fetchone() == (4, 3)  # recorded, favourite, deleted, restored
        events = con.execute("SELECT list(event_type ORDER BY position) FROM ledger_events").fetchone()
        assert events == (["Registered", "ResultRecorded", "FavoriteToggled", "Deleted", "Restored"],)
