"""What a CLI command imports before it runs: the commands that only read or mark results must not pay
for backtesting.py and bokeh (≈ 1.2 s of imports, which `btledger history` used to spend on every call),
nor for pandas (≈ 0.3 s, which pyarrow imported when the catch-up after `btledger favorite` built its rows),
nor for httpx (≈ 35 ms) when no server runs; and the commands that never open the read model must not pay
for DuckDB (≈ 80 ms) nor for the read model's projector and pyarrow (≈ 160 ms), which the CLI's error
mapping imported for every command; and the commands that read the ledger alone must not pay for numpy
(≈ 50 ms), which the robustness tests' module imported for every command."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb

from btledger import bootstrap
from btledger.api import operations
from btledger.engine import run_backtest
from btledger.engine.result import RunSpec

HEAVY = ("backtesting", "bokeh", "pandas", "httpx")
READ_MODEL = ("duckdb", "pyarrow", "btledger.projections.readmodel")
#: What a command that reads the ledger alone needs none of.
LIBRARIES = ("numpy", *HEAVY, *READ_MODEL)


def _imported_after(statement: str, modules: tuple[str, ...] = HEAVY) -> list[str]:
    """The `modules` a fresh interpreter holds after running `statement`."""
    probe = f"import json, sys; {statement}; print(json.dumps([m for m in {modules!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def _imported_by_commands(commands: list[list[str]], modules: tuple[str, ...] = HEAVY) -> list[str]:
    """The `modules` a fresh interpreter holds after running `commands`, each of which must exit 0."""
    statement = "from btledger.api.cli import app; " + "; ".join(
        f"assert not app({command!r}, standalone_mode=False), {command!r}" for command in commands
    )
    return _imported_after(statement, modules)


def _recorded_result() -> tuple[str, int]:
    """A result recorded in the ledger with no read model made: its id and its number of trades."""
    spec = RunSpec("SmaCross", "GOOG", "D1", 1.0, date(2008, 1, 1), date(2012, 1, 1), 100_000.0)
    outcome = run_backtest(spec)
    recorded = bootstrap.open_ledger().record_outcome(spec, outcome, new=True)
    assert recorded is not None
    return str(recorded[0]), len(outcome.trades["size"])


def test_the_cli_and_its_operations_import_no_library() -> None:
    assert _imported_after("import btledger.api.cli, btledger.api.operations", LIBRARIES) == []


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
    identity, trade_count = _recorded_result()

    assert _imported_by_commands([["favorite", identity], ["delete", identity], ["restore", identity]]) == []

    # The catch-ups did write: the vacuous pass (nothing projected) would leave these empty.
    with duckdb.connect(str(btledger_home / "readmodel.duckdb"), read_only=True) as con:
        count = "SELECT count(*) FROM backtests WHERE id = ? AND favorite"
        assert con.execute(count, [identity]).fetchone() == (1,)
        trades = con.execute("SELECT count(*) FROM trades WHERE backtest_id = ?", [identity]).fetchone()
        assert trades == (trade_count,)
        versions = "SELECT count(*), count(valid_to) FROM backtest_versions WHERE id = ?"
        assert con.execute(versions, [identity]).fetchone() == (4, 3)  # recorded, favourite, deleted, restored
        events = con.execute("SELECT list(event_type ORDER BY position) FROM ledger_events").fetchone()
        assert events == (["Registered", "ResultRecorded", "FavoriteToggled", "Deleted", "Restored"],)


def test_commands_that_read_the_ledger_alone_import_no_library(btledger_home: Path) -> None:
    identity, _ = _recorded_result()
    # Rendered here, so that `plot` below finds the file: it re-runs the backtest only to render one.
    operations.plot(identity)

    for command in (["history", identity, "--json"], ["history", identity], ["plot", identity, "--json"], ["--help"]):
        assert _imported_by_commands([command], LIBRARIES) == [], command
    # The read model was never made: `history` and `plot` read the ledger alone.
    assert not (btledger_home / "readmodel.duckdb").exists()


def test_engine_commands_that_never_open_the_read_model_import_no_duckdb(btledger_home: Path) -> None:
    # They import backtesting.py, whose pandas imports pyarrow: DuckDB and the read model are theirs to skip.
    identity, _ = _recorded_result()
    for command in (["strategies", "--json"], ["verify", identity, "--json"], ["plot", identity, "--json"]):
        assert _imported_by_commands([command], ("duckdb", "btledger.projections.readmodel")) == [], command
    assert not (btledger_home / "readmodel.duckdb").exists()
