"""The `btledger` CLI contract, run in-process on real files (SQLite events, DuckDB read model)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from btledger.api.cli import app
from btledger.config import MAX_WORKERS, clear_config_cache
from btledger.engine import registry
from btledger.engine.result import METRIC_COLUMNS, TRADE_COLUMNS, TRADE_PERFORMANCE_COLUMNS
from tests.domain.factories import goog_from_csv
from tests.engine.test_margin_cancels import SMACROSS, cancels_by_backtesting
from tests.postgres import on_each_store

EURUSD = ["--strategy", "SmaCross", "--ticker", "EURUSD", "--risk", "1", "--from", "2017-06-01", "--to", "2017-12-01"]


def cli(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    return result


def cli_json(*args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def event_count(home: Path) -> int:
    path = home / "events.sqlite"
    if not path.exists():
        return 0
    return sqlite3.connect(path).execute("SELECT count(*) FROM stored_events").fetchone()[0]


def test_run_records_then_skips_then_reruns(btledger_home: Path) -> None:
    first = cli_json("run", *EURUSD, "--timeframe", "H1", "--timeframe", "H4", "--workers", "1")
    assert first["summary"] == {"recorded": 2, "skipped": 0, "failed": 0}
    result = first["results"][0]
    assert set(result) >= {"id", "status", "strategy", "ticker", "timeframe", "risk", "metrics", "error"}
    assert result["status"] == "recorded" and result["error"] is None
    assert list(result["metrics"]) == list(METRIC_COLUMNS)
    assert list(result["trade_performance"]) == list(TRADE_PERFORMANCE_COLUMNS)
    assert (
        result["trade_performance"]["long_count"] + result["trade_performance"]["short_count"]
        == (result["metrics"]["trades"])
    )
    assert result["metrics"]["trades"] > 0

    again = cli_json("run", *EURUSD, "--timeframe", "H1", "--timeframe", "H4", "--workers", "1")
    assert again["summary"] == {"recorded": 0, "skipped": 2, "failed": 0}
    assert [r["id"] for r in again["results"]] == [r["id"] for r in first["results"]]

    rerun = cli_json("run", *EURUSD, "--timeframe", "H1", "--rerun", "--workers", "1")
    assert rerun["summary"]["recorded"] == 1
    history = cli_json("history", result["id"][:8])
    assert [h["event_type"] for h in history] == ["Registered", "ResultRecorded", "ResultRecorded"]
    assert set(history[0]) == {"position", "event_type", "recorded_at", "payload"}


def test_run_forks_no_more_workers_than_it_has_combinations_to_run(
    btledger_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forked: list[int] = []
    fork = os.fork

    def counted_fork() -> int:
        pid = fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", counted_fork)  # the worker pool forks through it on Linux
    two = ["--timeframe", "H1", "--timeframe", "H4", "--workers", "8"]
    assert cli_json("run", *EURUSD, *two)["summary"]["recorded"] == 2
    assert len(forked) == 2
    forked.clear()
    assert cli_json("run", *EURUSD, *two)["summary"]["skipped"] == 2
    assert forked == []


def test_every_option_shows_its_whole_help() -> None:
    # rich reads a `[default: pa]` in a help text as markup and drops it: `run --help` showed "part of the key ."
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name, command in commands.items():
        shown = " ".join(CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "2000"}).output.split())
        for option in command.params:
            assert " ".join((getattr(option, "help", None) or "").split()) in shown, (name, option.name)
    assert "Last day (inclusive)" in cli("run", "--help").output  # `load_frame` keeps `date_to`'s bars


def test_run_refuses_more_workers_than_the_maximum(btledger_home: Path) -> None:
    refused = cli("run", *EURUSD, "--timeframe", "H1", "--workers", str(MAX_WORKERS + 1))
    assert refused.exit_code == 2
    assert refused.stderr.startswith(f"error: workers: must be at most {MAX_WORKERS}, got {MAX_WORKERS + 1}")
    assert event_count(btledger_home) == 0


@pytest.mark.parametrize("workers", ["-1", str(MAX_WORKERS + 1)])
def test_serve_refuses_a_bad_worker_count_before_it_starts(workers: str) -> None:
    refused = cli("serve", "--port", "0", "--workers", workers)
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: workers: must be at "), refused.output


@on_each_store
def test_the_read_side_reflects_each_command(event_store: str, btledger_home: Path) -> None:
    run = cli_json("run", *EURUSD, "--timeframe", "H1", "--timeframe", "H4", "--workers", "2")
    assert run["summary"] == {"recorded": 2, "skipped": 0, "failed": 0}
    backtest = run["results"][0]["id"]
    best = max(run["results"], key=lambda r: r["metrics"]["stability_weighted_rar"])
    assert [row["id"] for row in cli_json("rank")] == [best["id"]]

    trades = cli_json("trades", backtest)
    assert len(trades) == run["results"][0]["metrics"]["trades"]
    assert set(TRADE_COLUMNS) <= set(trades[0])

    assert cli_json("favorite", backtest)["favorite"] is True
    page = cli_json("search", "--favorites")
    assert page["total"] == 1 and page["items"][0]["favorite"] is True

    cli_json("delete", backtest, "--reason", "test")
    assert [item["id"] for item in cli_json("search")["items"]] == [run["results"][1]["id"]]
    cli_json("restore", backtest)
    assert cli_json("search")["total"] == 2
    assert cli_json("verify", backtest[:8])["verdict"] == "reproduced"
    again = cli_json("run", *EURUSD, "--timeframe", "H1", "--timeframe", "H4", "--workers", "2")
    assert again["summary"] == {"recorded": 0, "skipped": 2, "failed": 0}

    deleted = cli_json("delete-strategy", "SmaCross")
    assert sorted(deleted["deleted"]) == sorted(r["id"] for r in run["results"])
    assert cli_json("search")["total"] == 0
    history = cli_json("history", backtest)
    assert [h["event_type"] for h in history] == [
        "Registered",
        "ResultRecorded",
        "FavoriteToggled",
        "Deleted",
        "Restored",
        "Deleted",
    ]
    positions = [h["position"] for h in history]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    # The table's payload digest writes scalars as --json does (not Python's True/None), text unquoted.
    table = cli("history", backtest)
    assert table.exit_code == 0, table.output
    assert "favorite=true" in table.stdout and "True" not in table.stdout
    assert "reason=strategy deleted" in table.stdout
    # A rebuild from the first event gives the tables the catch-ups built.
    before = cli_json("sql", "SELECT * FROM backtest_versions ORDER BY id, valid_from")
    assert len(before) == 5 + 2  # recorded, favourite, deleted, restored, deleted; the other: recorded, deleted
    last_deleted = cli_json("history", run["results"][1]["id"])[-1]["position"]  # after `backtest`'s
    assert cli_json("rebuild")["position"] == last_deleted == positions[-1] + 1
    assert cli_json("sql", "SELECT * FROM backtest_versions ORDER BY id, valid_from") == before
    assert (btledger_home / "events.sqlite").exists() == (event_store == "sqlite")


def test_sql_reads_and_refuses_writes(btledger_home: Path) -> None:
    cli_json("run", *EURUSD, "--timeframe", "H1", "--workers", "1")
    rows = cli_json("sql", "SELECT strategy, count(*) AS n FROM backtests GROUP BY strategy")
    assert rows == [{"strategy": "SmaCross", "n": 1}]
    for statement in ("DROP TABLE backtests", "DELETE FROM backtests", "INSERT INTO timeframes VALUES ('X', 1, true)"):
        refused = cli("sql", statement)
        assert refused.exit_code == 2
        assert refused.stderr.startswith("error: sql:")
    assert cli_json("sql", "SELECT count(*) AS n FROM backtests") == [{"n": 1}]


@pytest.mark.parametrize("as_json", [["--json"], []])
def test_sql_says_on_stderr_when_it_shows_only_the_first_rows(btledger_home: Path, as_json: list[str]) -> None:
    cut = cli("sql", "SELECT * FROM range(1001)", *as_json)
    assert cut.exit_code == 0, cut.output
    assert "showing the first 1000 rows" in cut.stderr and "btledger export --parquet" in cut.stderr
    if as_json:
        assert len(json.loads(cut.stdout)) == 1000  # stdout keeps its shape: the rows only

    assert "showing the first 5 rows" in cli("sql", "SELECT * FROM range(6)", "--max-rows", "5", *as_json).stderr
    whole = cli("sql", "SELECT * FROM range(1000)", *as_json)
    assert whole.exit_code == 0 and whole.stderr == ""
    # One limit for the CLI and the server's POST /sql, which the CLI goes through while `serve` runs.
    assert cli("sql", "SELECT 1", "--max-rows", "100001", *as_json).exit_code == 2


def test_sql_shows_lists_structs_and_maps_in_its_table_as_sql_json_writes_them() -> None:
    statement = (
        "SELECT ['a', 'b'] AS list, {'x': 1, 'day': DATE '2024-01-02'} AS struct, "
        "MAP {1: 1.5::DECIMAL(4, 1), 2: NULL} AS map, "
        "[[{'at': TIMESTAMP '2024-01-02 03:04:05', 'ok': true, 'gone': NULL}]] AS nested, "
        "[NULL] AS nulls, [true, false] AS flags, '[bold]x[/bold]' AS text"
    )
    shown = cli("sql", statement)
    assert shown.exit_code == 0, shown.output
    [row] = [line for line in shown.stdout.splitlines() if line.startswith("│")]
    assert [cell.strip() for cell in row.strip("│").split("│")] == [
        '["a","b"]',
        '{"x":1,"day":"2024-01-02"}',
        '{"1":1.5,"2":null}',
        '[[{"at":"2024-01-02T03:04:05","ok":true,"gone":null}]]',
        "[null]",  # not taken for rich markup, nor this column's text
        "[true,false]",
        "[bold]x[/bold]",
    ]


def test_verify_reproduces_a_recorded_result(btledger_home: Path) -> None:
    run = cli_json("run", *EURUSD, "--timeframe", "H1", "--workers", "1")
    verdict = cli_json("verify", run["results"][0]["id"])
    assert verdict["verdict"] == "reproduced"
    assert verdict["mismatches"] == [] and verdict["metrics_checked"] > 16

    # The instruments config changes EURUSD's spread: other costs, other numbers, and said so.
    shipped = (Path(__file__).parents[2] / "btledger" / "configs" / "instruments.yaml").read_text()
    assert "EURUSD: {category: Forex, leverage: 30, spread: 0.000015," in shipped
    (btledger_home / "configs").mkdir()
    (btledger_home / "configs" / "instruments.yaml").write_text(
        shipped.replace(
            "EURUSD: {category: Forex, leverage: 30, spread: 0.000015,",
            "EURUSD: {category: Forex, leverage: 30, spread: 0.0001,",
        )
    )
    clear_config_cache()
    changed = cli_json("verify", run["results"][0]["id"])
    assert (changed["verdict"], changed["mismatches"]) == ("costs_changed", [])


GOOG_D1 = ["--strategy", "SmaCross", "--ticker", "GOOG", "--timeframe", "D1", "--risk", "1"]
GOOG_D1 += ["--from", "2010-01-01", "--to", "2013-01-01", "--workers", "1"]


def test_plot_renders_a_result_run_without_one_unless_its_data_changed(btledger_home: Path) -> None:
    from btledger.engine import data

    prices = goog_from_csv(btledger_home)
    run = cli_json("run", *GOOG_D1)
    identity = run["results"][0]["id"]
    shipped = prices.read_text()
    lines = shipped.splitlines()
    day = next(i for i, line in enumerate(lines) if line.startswith("2011-06-01"))
    date_, open_, high, low, close, volume = lines[day].split(",")
    lines[day] = ",".join([date_, open_, high, low, f"{float(close) + 0.5}", volume])  # a bar inside the range
    prices.write_text("\n".join(lines) + "\n")
    data.clear_cache()
    before = event_count(btledger_home)
    refused = cli("plot", identity[:8])
    assert refused.exit_code == 1, refused.output
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"error: backtest {identity} cannot be plotted as recorded: its data changed")
    assert "data_fingerprint was" in line
    # Nothing written: no event, no plot, no draft left behind.
    assert event_count(btledger_home) == before and list((btledger_home / "plots").iterdir()) == []

    prices.write_text(shipped)
    data.clear_cache()
    # Its ResultRecorded is the second event of its history, so its plot is named after version 2.
    assert [h["event_type"] for h in cli_json("history", identity)] == ["Registered", "ResultRecorded"]
    first = cli_json("plot", identity[:8])
    assert first == {"id": identity, "path": str(btledger_home / "plots" / f"{identity}-v2.html")}
    made = Path(first["path"]).stat().st_mtime_ns
    assert "bokeh" in Path(first["path"]).read_text().lower()
    text = cli("plot", identity)
    assert (text.exit_code, text.stdout) == (0, first["path"] + "\n")
    assert Path(first["path"]).stat().st_mtime_ns == made  # kept, not rendered again
    assert event_count(btledger_home) == before

    # A rerun is a new result: its own plot, and the replaced result's file is gone.
    cli_json("run", *GOOG_D1, "--rerun")
    assert len(cli_json("history", identity)) == 3
    second = cli_json("plot", identity)
    assert second["path"] == str(btledger_home / "plots" / f"{identity}-v3.html")
    assert sorted(p.name for p in (btledger_home / "plots").iterdir()) == [f"{identity}-v3.html"]

    # None while deleted; the same file once restored.
    cli_json("delete", identity)
    deleted = cli("plot", identity)
    assert (
        deleted.exit_code == 2
        and deleted.stderr == f"error: backtest {identity} is deleted: it has no live result to plot\n"
    )
    cli_json("restore", identity)
    assert cli_json("plot", identity) == second


def test_robustness_test_command(btledger_home: Path) -> None:
    run = cli_json("run", *EURUSD, "--timeframe", "H1", "--workers", "1")
    backtest = run["results"][0]["id"]
    first = cli_json("test", "montecarlo", backtest, "--seed", "5", "--paths", "2000")
    second = cli_json("test", "montecarlo", backtest, "--seed", "5", "--paths", "2000")
    assert first["summary"] == second["summary"]
    assert first["seed"] == 5
    bad = cli("test", "luck", backtest, "--percent", "60")
    assert bad.exit_code == 2 and "percent" in bad.stderr
    # The API's trades_per_path, and a ruin threshold of 100 % (wiped out), from the CLI too.
    longer = cli_json("test", "montecarlo", backtest, "--paths", "100", "--trades-per-path", "250")
    assert longer["parameters"]["trades_per_path"] == 250
    wiped_out = cli_json("test", "montecarlo", backtest, "--paths", "100", "--ruin-threshold-pct", "100")
    assert wiped_out["parameters"]["ruin_threshold_pct"] == 100.0


def run_args(**changes: str) -> list[str]:
    """Valid `run` flags with some replaced."""
    flags = {"--strategy": "SmaCross", "--ticker": "EURUSD", "-f": "H1", "-r": "1", "--from": "2017-06-01"}
    flags |= {"--to": "2017-12-01"}
    flags |= {f"--{k}" if len(k) > 1 else f"-{k}": v for k, v in changes.items()}
    return [part for pair in flags.items() for part in pair]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (run_args(strategy="NoSuch"), "strategies"),
        (run_args(strategy="../../etc/passwd"), "strategies"),
        (run_args(ticker="ZZZ"), "tickers"),
        (run_args(ticker="EURUSD' OR '1'='1"), "tickers"),
        (run_args(f="H2"), "timeframes"),
        (run_args(r="0"), "risks"),
        (run_args(r="150"), "risks"),
        (run_args(r="nan"), "risks"),
        (run_args(r="abc"), "risk"),
        (run_args(**{"from": "2017-12-01", "to": "2017-06-01"}), "date_from"),
        (run_args(**{"from": "2017-13-01"}), "date_from"),
        (run_args(cash="-5"), "initial_cash"),
        (run_args(plot="always"), "plot"),
        (run_args(param="no-equals"), "param"),
        # values outside the strategy's declared bounds, named with the strategy, bound and value
        (run_args(param="n_fast=-5"), "params: SmaCross.n_fast must satisfy n_fast >= 1, got -5"),
        (run_args(param="n_slow=0"), "params: SmaCross.n_slow must satisfy n_slow >= 1, got 0"),
        (run_args(param="sl_atr=-1.5"), "params: SmaCross.sl_atr must satisfy sl_atr > 0, got -1.5"),
        (run_args(param="n_fast=60"), "params: SmaCross must satisfy n_fast < n_slow, got n_fast=60, n_slow=50"),
        (
            run_args(strategy="RsiMeanReversion", param="overbought=101"),
            "params: RsiMeanReversion.overbought must satisfy 0 <= overbought <= 100, got 101",
        ),
        # a text its strategy could not read, refused by the strategy's own parser before anything runs
        (
            run_args(strategy="RandomTrader", param="hold_bars=3,x"),
            "params: RandomTrader.hold_bars must be comma-separated whole numbers of bars ≥ 0, got '3,x'",
        ),
        # a text read as its parameter's type, refused when it is not one
        (run_args(param="n_fast=abc"), "params: SmaCross.n_fast must be int, got 'abc'"),
        (run_args(param="n_fast=1.5"), "params: SmaCross.n_fast must be int, got 1.5"),
        (run_args(strategy="RandomTrader", param="exit_at_stop=yes"), "params: RandomTrader.exit_at_stop must be bool"),
        # every strategy of a batch must have the parameter, as in a JSON body
        (
            [*run_args(strategy="RandomTrader", param="hold_bars=5"), "--strategy", "SmaCross"],
            "params: unknown parameter 'hold_bars' for SmaCross",
        ),
    ],
)
def test_bad_run_input_exits_2_naming_the_field_and_writes_nothing(
    btledger_home: Path, args: list[str], says: str
) -> None:
    result = cli("run", *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {says}"), lines
    assert event_count(btledger_home) == 0


def test_parameters_on_the_edges_of_their_bounds_run(btledger_home: Path) -> None:
    # n_fast = 1 is its lowest value, and n_slow = 2 the least that n_fast < n_slow allows.
    edge = cli_json("run", *EURUSD, "--timeframe", "H4", "--param", "n_fast=1", "--param", "n_slow=2", "--workers", "1")
    assert edge["summary"] == {"recorded": 1, "skipped": 0, "failed": 0}
    assert edge["results"][0]["metrics"]["trades"] > 0
    history = cli_json("history", edge["results"][0]["id"])
    assert history[0]["payload"]["params"] == {"n_fast": 1, "n_slow": 2}


def test_a_param_is_read_as_its_declared_type_so_one_hold_is_a_text(btledger_home: Path) -> None:
    """`hold_bars=5` is RandomTrader's text "5", one hold of 5 bars: it was read as the number 5 and refused."""
    args = run_args(strategy="RandomTrader", param="hold_bars=5")
    ran = cli_json("run", *args, "--param", "exit_at_stop=false", "--workers", "1")  # no stop cuts a hold short
    assert ran["summary"] == {"recorded": 1, "skipped": 0, "failed": 0}
    identity = ran["results"][0]["id"]
    assert cli_json("history", identity)[0]["payload"]["params"] == {"hold_bars": "5", "exit_at_stop": False}
    trades = cli_json("trades", identity)
    assert len(trades) > 10
    holds = [trade["exit_bar"] - trade["entry_bar"] for trade in trades]
    assert set(holds[:-1]) == {5} and holds[-1] <= 5  # the last one is closed where the data ends


@pytest.fixture
def user_strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A strategy of tests/engine/user_strategies.py installed as an entry point: `Plain` (no bounds
    declared) unless the test names another (`indirect` parametrization)."""
    name = getattr(request, "param", "Plain")
    point = EntryPoint(name, f"tests.engine.user_strategies:{name}", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group == registry.ENTRY_POINT_GROUP else [])
    registry.registry.cache_clear()
    yield name
    registry.registry.cache_clear()


def test_a_user_strategy_without_declared_bounds_runs(btledger_home: Path, user_strategy: str) -> None:
    ran = cli_json("run", *run_args(strategy=user_strategy, param="window=5"), "--workers", "1")
    assert ran["summary"] == {"recorded": 1, "skipped": 0, "failed": 0}
    assert ran["results"][0]["metrics"]["trades"] > 0


@pytest.mark.parametrize("user_strategy", ["Documented"], indirect=True)
def test_a_user_strategy_documenting_its_parameters_loads(btledger_home: Path, user_strategy: str) -> None:
    """A str in a parameter's metadata is documentation: the commands that load the registry work."""
    listed = {listing["name"]: listing for listing in cli_json("strategies")}
    assert listed[user_strategy]["bounds"] == {"window": "window >= 1"}
    result = cli("run", *run_args(param="n_fast=5"))  # any strategy's run loads every one
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("user_strategy", ["Documented"], indirect=True)
def test_a_text_parameter_takes_text_that_looks_like_a_number_or_a_flag(
    btledger_home: Path, user_strategy: str
) -> None:
    for text in ("5", "1.5", "true"):
        ran = cli_json("run", *run_args(strategy=user_strategy, param=f"label={text}"), "--workers", "1")
        assert ran["summary"] == {"recorded": 1, "skipped": 0, "failed": 0}
        assert cli_json("history", ran["results"][0]["id"])[0]["payload"]["params"] == {"label": text}
    typed = ["--param", "window=5", "--param", "threshold=2", "--param", "long_only=FALSE", "--param", "label=x"]
    ran = cli_json("run", *run_args(strategy=user_strategy), *typed, "--workers", "1")
    assert cli_json("history", ran["results"][0]["id"])[0]["payload"]["params"] == {
        "window": 5,
        "threshold": 2.0,
        "long_only": False,
    }


@pytest.mark.parametrize("user_strategy", ["HeldBars"], indirect=True)
def test_a_param_that_is_a_text_in_one_strategy_and_a_number_in_another_is_refused(
    btledger_home: Path, user_strategy: str
) -> None:
    """A batch gives each of its strategies one value: no value is both the text "5" and the number 5."""
    both = [*run_args(strategy="RandomTrader", param="hold_bars=5"), "--strategy", user_strategy]
    result = cli("run", *both)
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "error: params: hold_bars=5 reads as '5' for RandomTrader but as 5 for HeldBars: a batch gives its "
        "strategies one value (run them as separate batches)\n"
    )
    assert event_count(btledger_home) == 0


@pytest.mark.parametrize("user_strategy", ["FailsWithMarkup"], indirect=True)
def test_a_failure_whose_message_looks_like_markup_is_printed_as_it_is(btledger_home: Path, user_strategy: str) -> None:
    """rich raised on the `[/x]` of an error's text instead of printing the run's progress line."""
    result = cli("run", *run_args(strategy=user_strategy), "--workers", "1")
    assert result.exit_code == 1, result.output  # failed, recorded, printed
    [line] = [line for line in result.stderr.splitlines() if "failed" in line]
    assert line.endswith("ValueError: [/x] closes no tag, [bold]y[/bold] opens one"), line


def test_strategies_lists_each_parameter_with_its_default_and_valid_values(user_strategy: str) -> None:
    listed = {listing["name"]: listing for listing in cli_json("strategies")}
    assert set(listed) == {"SmaCross", "DonchianBreakout", "RsiMeanReversion", "RandomTrader", user_strategy}
    sma = listed["SmaCross"]
    assert sma["params"]["n_fast"] == 12 and sma["bounds"]["n_fast"] == "n_fast >= 1"
    assert sma["rules"] == ["n_fast < n_slow"]
    plain = listed[user_strategy]
    assert plain["bounds"] == {} and plain["rules"] == []
    assert plain["origin"] == "entry point tests.engine.user_strategies:Plain"

    assert listed["RandomTrader"]["bounds"]["hold_bars"] == "hold_bars (comma-separated whole numbers of bars ≥ 0)"

    table = cli("strategies")
    assert table.exit_code == 0, table.output
    for shown in ("SmaCross", "n_fast", "n_fast >= 1", "n_fast < n_slow", "0 <= oversold <= 100", "any"):
        assert shown in table.stdout, shown


@pytest.mark.parametrize(
    "command", [["history"], ["favorite"], ["delete"], ["restore"], ["trades"], ["verify"], ["plot"]]
)
def test_unknown_ids_exit_2(btledger_home: Path, command: list[str]) -> None:
    cli_json("run", *EURUSD, "--timeframe", "H1", "--workers", "1")
    before = event_count(btledger_home)
    for bad in ("00000000-0000-0000-0000-000000000000", "zz", "1234' OR 1=1 --"):
        result = cli(*command, bad)
        assert result.exit_code == 2, (command, bad, result.output)
        assert result.stderr.startswith("error:") and "Traceback" not in result.output
    assert event_count(btledger_home) == before


def test_restoring_a_live_result_is_refused(btledger_home: Path) -> None:
    run = cli_json("run", *EURUSD, "--timeframe", "H1", "--workers", "1")
    result = cli("restore", run["results"][0]["id"])
    assert result.exit_code == 1 and "not deleted" in result.stderr


PLAN_YAML = """\
batches:
  - {strategies: [SmaCross], tickers: [EURUSD], timeframes: [H4], risks: [1, 2],
     date_from: 2017-06-01, date_to: 2017-12-01}
  - strategies: [DonchianBreakout]
    tickers: [GOOG]
    timeframes: [D1]
    risks: [1]
    date_from: 2010-01-01
    date_to: 2013-01-01
"""


def test_run_with_a_plan_file_runs_every_batch_in_one_command(btledger_home: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN_YAML)
    first = cli_json("run", "--plan", str(plan), "--workers", "2")
    assert first["summary"] == {"recorded": 3, "skipped": 0, "failed": 0}
    assert [(r["strategy"], r["ticker"], r["risk"], r["date_from"], r["date_to"]) for r in first["results"]] == [
        ("SmaCross", "EURUSD", 1.0, "2017-06-01", "2017-12-01"),
        ("SmaCross", "EURUSD", 2.0, "2017-06-01", "2017-12-01"),
        ("DonchianBreakout", "GOOG", 1.0, "2010-01-01", "2013-01-01"),
    ]
    again = cli_json("run", "--plan", str(plan), "--workers", "1")
    assert again["summary"] == {"recorded": 0, "skipped": 3, "failed": 0}
    found = cli_json("search", "--ticker", "GOOG")
    assert [item["id"] for item in found["items"]] == [first["results"][2]["id"]]


def test_tables_and_progress_lines_show_dates_when_results_differ_by_them(btledger_home: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    same_but_dates = "strategies: [SmaCross], tickers: [GOOG], timeframes: [D1], risks: [1]"
    plan.write_text(
        f"batches:\n  - {{{same_but_dates}, date_from: 2005-01-01, date_to: 2010-01-01}}\n"
        f"  - {{{same_but_dates}, date_from: 2010-01-01, date_to: 2013-01-01}}\n"
    )
    ran = cli("run", "--plan", str(plan), "--workers", "1")
    assert ran.exit_code == 0, ran.output
    assert "2005-01-01→2010-01-01" in ran.stderr and "2010-01-01→2013-01-01" in ran.stderr
    searched = cli("search")
    for table in (ran.stdout, searched.stdout):
        header = next(line for line in table.splitlines() if "strategy" in line)
        assert header.index("risk") < header.index("date_from") < header.index("date_to"), table
        assert "2005-01-01" in table and "2013-01-01" in table
    one_range = cli("search", "--limit", "1")
    assert one_range.exit_code == 0 and "date_from" not in one_range.stdout, one_range.stdout


def test_a_run_with_a_failed_combination_prints_every_outcome_and_exits_1(btledger_home: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    goog = "strategies: [SmaCross], tickers: [GOOG], timeframes: [D1], risks: [1]"
    plan.write_text(
        f"batches:\n  - {{{goog}, date_from: 2010-01-01, date_to: 2013-01-01}}\n"
        f"  - {{{goog}, date_from: 2030-01-01, date_to: 2031-01-01}}\n"  # past the sample data's last bar
    )
    for summary in ({"recorded": 1, "skipped": 0, "failed": 1}, {"recorded": 0, "skipped": 1, "failed": 1}):
        result = cli("run", "--plan", str(plan), "--workers", "1", "--json")
        assert result.exit_code == 1, result.output
        report = json.loads(result.stdout)
        assert report["summary"] == summary
        failed = report["results"][1]
        assert failed["status"] == "failed" and "no GOOG D1 bars from 2030-01-01" in failed["error"]
    assert cli("run", "--plan", str(plan), "--workers", "1").exit_code == 1  # the table too


def test_deleting_a_combination_that_only_failed_stops_runs_retrying_it(btledger_home: Path) -> None:
    # GOOG's sample data ends in 2013: this combination fails on every try.
    never = ["run", *EURUSD, "--timeframe", "D1", "--workers", "1"]
    never[never.index("EURUSD")] = "GOOG"
    first = cli(*never, "--json")
    assert first.exit_code == 1, first.output
    (failed,) = json.loads(first.stdout)["results"]
    assert failed["status"] == "failed" and "no GOOG D1 bars from 2017-06-01" in failed["error"]

    assert cli_json("delete", failed["id"][:8], "--reason", "no GOOG data after 2013") == {
        "id": failed["id"],
        "deleted": True,
    }
    before = event_count(btledger_home)
    skipped = cli(*never, "--json")
    assert skipped.exit_code == 0, skipped.output  # nothing failed: it was not tried
    assert json.loads(skipped.stdout)["summary"] == {"recorded": 0, "skipped": 1, "failed": 0}
    assert event_count(btledger_home) == before
    keys = cli_json("sql", "SELECT id, status, last_error FROM backtest_keys")
    assert keys == [{"id": failed["id"], "status": "deleted", "last_error": failed["error"]}]

    assert cli_json("restore", failed["id"]) == {"id": failed["id"], "deleted": False}
    assert cli_json("sql", "SELECT status FROM backtest_keys") == [{"status": "failed"}]
    assert cli(*never).exit_code == 1  # tried again
    deleted = cli("delete-strategy", "SmaCross")  # its one combination, which only ever failed
    assert deleted.exit_code == 0 and deleted.stdout == "1 combination of SmaCross deleted\n", deleted.output
    rerun = cli(*never, "--rerun", "--json")
    assert rerun.exit_code == 1 and json.loads(rerun.stdout)["summary"]["failed"] == 1
    events = [h["event_type"] for h in cli_json("history", failed["id"])]
    assert events == ["Registered", "RunFailed", "Deleted", "Restored", "RunFailed", "Deleted", "RunFailed"]


@pytest.mark.parametrize(
    ("args", "plan_text", "says"),
    [
        (["--strategy", "SmaCross"], PLAN_YAML, "--plan: give either a plan or the batch flags, not both"),
        ([], "batches:\n  - {strategies: [SmaCross]\n", "plan: "),
        ([], PLAN_YAML.replace("date_to: 2013-01-01", "date_to: 2009-01-01"), "batches[1].date_from: must be before"),
        ([], PLAN_YAML.replace("GOOG", "NOPE"), "batches[1].tickers: unknown ticker 'NOPE'"),
        (
            [],
            PLAN_YAML.replace("    risks: [1]\n", "    risks: [1]\n    params: {entry_period: 0}\n"),
            "batches[1].params: DonchianBreakout.entry_period must satisfy entry_period >= 1, got 0",
        ),
        ([], PLAN_YAML + PLAN_YAML.removeprefix("batches:\n"), "batches[2]: SmaCross EURUSD H4 risk 1 from"),
        (
            [],  # YAML types a plan's values, as JSON does a body's: a text is written in quotes
            PLAN_YAML.replace("[DonchianBreakout]", "[RandomTrader]").replace(
                "    risks: [1]\n", "    risks: [1]\n    params: {hold_bars: 5}\n"
            ),
            "batches[1].params: RandomTrader.hold_bars must be str, got 5 (a plan or a JSON body gives a text "
            "in quotes)",
        ),
    ],
    ids=[
        "plan-and-flags",
        "not-yaml",
        "dates",
        "ticker",
        "parameter-out-of-bounds",
        "repeated-combination",
        "text-as-number",
    ],
)
def test_a_bad_plan_exits_2_with_one_line_and_writes_nothing(
    btledger_home: Path, tmp_path: Path, args: list[str], plan_text: str, says: str
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text)
    result = cli("run", "--plan", str(plan), *args)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and says in result.stderr
    assert event_count(btledger_home) == 0


@pytest.mark.parametrize("make", [lambda path: path.mkdir(), lambda path: path.write_bytes(b"\xff\xfe batches")])
def test_a_plan_that_is_not_a_text_file_exits_2(btledger_home: Path, tmp_path: Path, make: Any) -> None:
    plan = tmp_path / "plan.yaml"
    make(plan)
    result = cli("run", "--plan", str(plan))
    assert result.exit_code == 2 and result.stderr.startswith(f"error: plan: {plan}: "), result.output
    assert event_count(btledger_home) == 0


def test_run_without_a_plan_names_the_missing_flag(btledger_home: Path) -> None:
    result = cli("run", "--strategy", "SmaCross", "--ticker", "EURUSD", "--timeframe", "H1", "--risk", "1")
    assert result.exit_code == 2 and result.stderr.strip() == (
        "error: --from: missing (a batch needs it, or give a plan file with --plan)"
    )


def test_the_readme_plan_example_runs(btledger_home: Path, tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    example = readme.split("# uv run btledger run --plan study.yaml\n", 1)[1].split("```", 1)[0]
    plan = tmp_path / "study.yaml"
    plan.write_text(example)
    report = cli_json("run", "--plan", str(plan), "--workers", "2")
    assert report["summary"] == {"recorded": 12, "skipped": 0, "failed": 0}


def test_a_change_made_while_an_announced_server_does_not_answer_is_recorded_and_shown_later(
    btledger_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from btledger.api.client import remove_server_file, write_server_file

    recorded = cli_json("run", *EURUSD, "--timeframe", "H4", "--workers", "1")["results"][0]
    with socket.socket() as probe:  # a port that nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    write_server_file(btledger_home, "127.0.0.1", port)  # announced by this process, which is alive
    before = event_count(btledger_home)

    favorite = cli("favorite", recorded["id"], "--json")
    rank = cli("rank")

    assert favorite.exit_code == 0, favorite.output
    assert json.loads(favorite.stdout)["favorite"] is True
    assert event_count(btledger_home) == before + 1
    unanswered = f"the server at http://127.0.0.1:{port} does not answer"
    assert f"recorded; the read model shows it once the server catches up ({unanswered}" in caplog.text
    assert rank.exit_code == 1 and f"error: {unanswered}" in rank.stderr
    remove_server_file(btledger_home)
    assert [item["id"] for item in cli_json("search", "--favorites")["items"]] == [recorded["id"]]


@contextmanager
def holding_the_read_model(home: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that owns the read model's DuckDB file until the block ends."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('ready'); input()",
            str(home / "readmodel.duckdb"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield holder
    finally:
        holder.communicate("\n", timeout=30)


def test_changes_made_while_another_process_holds_the_read_model_are_recorded_and_shown_later(
    btledger_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The ledger is the truth: a change appended while another process owns the DuckDB file succeeds
    (exit 0, its output, a warning on stderr) and the read model shows it at its next catch-up."""
    recorded = cli_json("run", *EURUSD, "--timeframe", "H4", "--workers", "1")["results"][0]
    with holding_the_read_model(btledger_home) as holder:
        before = event_count(btledger_home)
        favorite = cli("favorite", recorded["id"], "--json")
        run = cli("run", *EURUSD, "--timeframe", "D1", "--workers", "1", "--json")
    assert favorite.exit_code == 0, favorite.output
    assert json.loads(favorite.stdout)["favorite"] is True
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["summary"] == {"recorded": 1, "skipped": 0, "failed": 0}
    # The CLI's log handler writes these warnings to stderr.
    assert caplog.text.count(f"recorded; the read model, in use by process {holder.pid}") == 2
    assert event_count(btledger_home) == before + 3  # FavoriteToggled; Registered, ResultRecorded
    shown = cli_json("search", "--favorites")
    assert [item["id"] for item in shown["items"]] == [recorded["id"]]
    assert cli_json("search")["total"] == 2


def test_a_read_while_another_process_holds_the_read_model_fails_in_one_line(btledger_home: Path) -> None:
    """In a process of its own: the CLI maps the read model's errors without importing it up front, so only
    a fresh interpreter shows that the mapping still finds them (this one imported the read model)."""
    cli_json("run", *EURUSD, "--timeframe", "H4", "--workers", "1")
    with holding_the_read_model(btledger_home) as holder:
        rank = subprocess.run([sys.executable, "-m", "btledger", "rank"], capture_output=True, text=True, timeout=120)
    assert rank.returncode == 1 and rank.stdout == "", rank.stderr
    [line] = rank.stderr.splitlines()
    path = btledger_home / "readmodel.duckdb"
    assert line.startswith(f"error: The read model {path} is in use by process {holder.pid}"), line


def test_run_says_how_many_orders_the_broker_cancelled_for_margin_instead_of_warning_of_each(
    btledger_home: Path,
) -> None:
    expected = sum(cancels_by_backtesting(SMACROSS).values())  # backtesting.py's own warnings, counted
    assert expected > 1
    flags = ["--strategy", "SmaCross", "--ticker", "EURUSD", "--timeframe", "H1", "--from", "2017-04-19"]
    flags += ["--to", "2018-02-08", "--workers", "1"]
    # A process of its own, so that its workers' stderr is the command's, as in a terminal.
    ran = subprocess.run(
        [sys.executable, "-m", "btledger", "run", *flags, "--risk", "5", "--risk", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    lines = {line.split(" risk ")[1][:3]: line for line in ran.stderr.splitlines() if "recorded SmaCross" in line}
    assert lines["5.0"].endswith(f" — {expected} orders cancelled for margin")
    assert "cancelled" not in lines["1.0"]
    assert "Broker canceled" not in ran.stderr

    again = cli_json("run", *flags, "--risk", "5", "--risk", "1")
    assert [(r["risk"], r["status"], r["margin_cancelled_orders"]) for r in again["results"]] == [
        (5.0, "skipped", expected),
        (1.0, "skipped", 0),
    ]
