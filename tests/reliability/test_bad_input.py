"""Bad input to every CLI command: malformed, out-of-range, unicode, huge (10k characters) and injection-shaped
values (SQL fragments, LIKE wildcards, path-like names, negative and NaN numbers). Each is refused with exit 2
(1 where the contract says: a change that does not apply, an OS failure), one line on stderr naming the field,
no traceback, and no event written. Text filters match wildcards literally, in the CLI and the HTTP API.

Corrupt config files stop a command with the file and the key; a corrupt, truncated, empty or missing DuckDB
file is rebuilt from the events by the next command, which says so, with every result intact.

The HTTP API's bad input is covered by tests/api (test_errors: every error path; test_fuzz: generated input
to every operation); here only what those do not check: that text filters match wildcards literally.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from litestar.testing import TestClient
from typer.testing import CliRunner, Result

from btledger.api.cli import app
from btledger.api.http import create_app
from btledger.bootstrap import open_ledger
from btledger.config import PACKAGED_CONFIGS, clear_config_cache, load_timeframes
from btledger.domain.backtest import backtest_id
from btledger.domain.ledger import Ledger
from btledger.projections.readmodel import ReadModel
from tests.reliability.harness import (
    REPO,
    add_results,
    clean_rebuild,
    event_count,
    synthetic_outcome,
    synthetic_spec,
    table_rows,
)

HUGE = "x" * 10_000
RESULTS = 12  # synthetic results: SmaCross, DonchianBreakout and RsiMeanReversion on EURUSD, GOOG, AAPL, MSFT


@pytest.fixture(scope="module")
def seeded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RESULTS recorded results (synthetic outcomes, no engine) and their read model, built once, closed."""
    template = tmp_path_factory.mktemp("seeded") / "home"
    ledger = open_ledger(template)
    add_results(ledger, 0, RESULTS, trades=5)
    with ReadModel.open(template / "readmodel.duckdb", timeframes=load_timeframes()) as readmodel:
        readmodel.catch_up(ledger)
    ledger.close()
    return template


@pytest.fixture
def home(btledger_home: Path, seeded_home: Path) -> Path:
    """This test's data directory: a copy of the seeded one."""
    shutil.copytree(seeded_home, btledger_home, dirs_exist_ok=True)
    return btledger_home


@pytest.fixture
def result_id(home: Path) -> str:
    return str(backtest_id(synthetic_spec(0)))


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def assert_refused(home: Path, args: list[str], code: int, starts: str) -> Result:
    """`args` exit with `code`, one line on stderr starting `error: <starts>`, no traceback, no event written."""
    before = event_count(home)
    result = invoke(*args)
    shown = [arg[:60] for arg in args]
    assert result.exit_code == code, (shown, result.exit_code, result.output[:500])
    # An uncaught exception is what prints a traceback from the real command.
    assert result.exception is None or isinstance(result.exception, SystemExit), (shown, repr(result.exception))
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, (shown, result.stderr[:500])
    assert lines[0].startswith(f"error: {starts}"), (shown, lines[0][:300])
    assert event_count(home) == before, shown
    return result


def run_args(**changes: str) -> list[str]:
    """Valid `run` flags (a combination the sample data can run) with some replaced or added."""
    flags = {"--strategy": "SmaCross", "--ticker": "EURUSD", "--timeframe": "H4", "--risk": "1"}
    flags |= {"--from": "2017-06-01", "--to": "2017-12-01", "--workers": "1"}
    aliases = {"date_from": "from", "date_to": "to"}
    flags |= {f"--{aliases.get(name, name)}": value for name, value in changes.items()}
    return ["run", *(part for pair in flags.items() for part in pair)]


# --- run -------------------------------------------------------------------------------------------

RUN_CASES = [
    (run_args(strategy=HUGE), "strategies: unknown strategy"),
    (run_args(strategy="SmaCross'; DROP TABLE stored_events; --"), "strategies: unknown strategy"),
    (run_args(strategy="../../btledger/strategies/sma_cross"), "strategies: unknown strategy"),
    (run_args(strategy="SmaCross\x00"), "strategies: unknown strategy"),
    (run_args(ticker="ЕURUSD"), "tickers: unknown ticker"),  # a Cyrillic Е
    (run_args(ticker="EUR%"), "tickers: unknown ticker"),
    (run_args(ticker="_"), "tickers: unknown ticker"),
    (run_args(timeframe="h4"), "timeframes: unknown timeframe"),
    (run_args(timeframe="H4 OR 1=1"), "timeframes: unknown timeframe"),
    (run_args(risk="-1"), "risks: must be in (0, 100]"),
    (run_args(risk="-nan"), "risks: must be in (0, 100]"),
    (run_args(risk="1e400"), "risks: must be in (0, 100]"),  # inf
    (run_args(risk="1%"), "risk: expected a number"),
    (run_args(risk=HUGE), "risk: expected a number"),
    (run_args(cash="nan"), "initial_cash: must be a positive number"),
    (run_args(cash="-0.0"), "initial_cash: must be a positive number"),
    (run_args(cash="1e400"), "initial_cash: must be a positive number"),
    (run_args(date_from="2017-02-30"), "date_from: expected a date"),
    (run_args(date_from="２０１７-０１-０１"), "date_from: expected a date"),  # fullwidth digits
    (run_args(date_to="0000-01-01"), "date_to: expected a date"),
    (run_args(date_to="2017-06-01"), "date_from: must be before date_to"),
    (run_args(method="pa; DROP TABLE stored_events"), "method: String should match pattern"),
    (run_args(method=HUGE), "method: String should have at most 32 characters"),
    (run_args(param="n_fast=nan"), "params: parameter 'n_fast' must be finite"),
    (run_args(param="n_fast=" + "9" * 400), "params: parameter 'n_fast' must fit in 64 bits"),
    (run_args(param="n_fast=ten"), "params: SmaCross.n_fast must be int"),
    (run_args(param="nosuch=1"), "params: unknown parameter 'nosuch'"),
    (run_args(param="../x=1"), "param: expected NAME=VALUE"),
    (run_args(param=HUGE), "param: expected NAME=VALUE"),
    ([*run_args(param="n_fast=5"), "--param", "n_fast=7"], "param: n_fast is given twice"),
    (run_args(plot="../../etc/passwd"), "plot: Input should be"),
    (run_args(workers="-1"), "workers: must be at least 1"),
]


@pytest.mark.parametrize(("args", "starts"), RUN_CASES, ids=[f"run-{n}" for n in range(len(RUN_CASES))])
def test_bad_run_input_is_refused_before_anything_runs(home: Path, args: list[str], starts: str) -> None:
    assert_refused(home, args, 2, starts)


# --- reads: rank, search, trades, history, sql -----------------------------------------------------

NASTY_IDS = ["../../x", "' OR 1=1 --", "%", "____", "😀😀😀😀", HUGE, "", "-1", "0000", "ABCDEF01-" + "0" * 27]
ID_COMMANDS = [
    ["trades"],
    ["history"],
    ["favorite"],
    ["delete"],
    ["restore"],
    ["verify"],
    ["plot"],
    ["test", "montecarlo"],
]


@pytest.mark.parametrize("command", ID_COMMANDS, ids=lambda c: "-".join(c))
def test_ids_that_name_nothing_are_refused_by_every_command_that_takes_one(home: Path, command: list[str]) -> None:
    for bad in NASTY_IDS:
        result = assert_refused(home, [*command, "--", bad], 2, "")
        assert "backtest id" in result.stderr and len(result.stderr) < len(bad) + 200


def test_an_ambiguous_id_prefix_is_refused(home: Path) -> None:
    # Two more results whose ids share their first 4 hex digits (the shortest prefix accepted).
    seen: dict[str, int] = {}
    for index in range(RESULTS, 100_000):
        prefix = str(backtest_id(synthetic_spec(index)))[:4]
        if prefix in seen:
            break
        seen[prefix] = index
    ledger = open_ledger(home)
    for twin in (seen[prefix], index):
        ledger.record_outcome(synthetic_spec(twin), synthetic_outcome(twin, 3))
    assert_refused(home, ["favorite", prefix], 2, f"id prefix {prefix!r} is ambiguous")


SEARCH_CASES = [
    (["--min-return", "nan"], "min_return: must be a finite number"),
    (["--min-return", "inf"], "min_return: must be a finite number"),
    (["--max-drawdown", "-inf"], "max_drawdown: must be a finite number"),
    (["--min-sharpe", "NaN"], "min_sharpe: must be a finite number"),
    (["--min-trades", "1" + "0" * 400], "min_trades: must be a finite number"),
    (["--offset", "99999999999999999999999"], "offset: must be at most"),
    (["--sort", "return_pct; DROP TABLE backtests"], "sort: unknown column"),
    (["--sort", HUGE], "sort: unknown column"),
    (["--sort", "id"], "sort: unknown column"),
    (["--order", "desc; --"], "order: 'desc; --' is not asc or desc"),
]


@pytest.mark.parametrize(("args", "starts"), SEARCH_CASES, ids=[f"search-{n}" for n in range(len(SEARCH_CASES))])
def test_bad_search_input_is_refused(home: Path, args: list[str], starts: str) -> None:
    assert_refused(home, ["search", *args], 2, starts)


@pytest.mark.parametrize("as_of", ["yesterday", "2020-13-01T00:00:00", "NaN", "-1", HUGE, "2020-01-01T25:00:00+00:00"])
def test_bad_rank_timestamps_are_refused(home: Path, as_of: str) -> None:
    assert_refused(home, ["rank", "--as-of", as_of], 2, "as_of: expected an ISO timestamp")


SQL_CASES = [
    ("", "sql: expected exactly one statement, got 0"),
    ("DROP TABLE backtests", "sql: DROP statements are not allowed"),
    ("SELECT 1; DROP TABLE backtests", "sql: expected exactly one statement, got 2"),
    ("DELETE FROM backtests WHERE strategy LIKE '%'", "sql: DELETE statements are not allowed"),
    ("COPY backtests TO '/tmp/btledger-leak.csv'", "sql: COPY statements are not allowed"),
    ("ATTACH '/tmp/btledger-other.duckdb' AS other", "sql: ATTACH statements are not allowed"),
    ("INSTALL httpfs", "sql: "),
    ("SET threads = 1", "sql: "),
    ("PRAGMA database_list", "sql: "),
    ("SELECT * FROM read_csv('/etc/passwd')", "sql: "),
    ("PIVOT backtests ON timeframe USING count(*)", "sql: a PIVOT without an IN list is not allowed"),
    ("SELECT getenv('HOME')", "sql: "),
    ("SELECT " + HUGE, "sql: "),
    ("SELECT * FROM no_such_table", "sql: "),
    ("SELEC 1", "sql: "),
]


@pytest.mark.parametrize(("statement", "starts"), SQL_CASES, ids=[f"sql-{n}" for n in range(len(SQL_CASES))])
def test_sql_that_could_write_or_read_the_host_or_does_not_parse_is_refused(
    home: Path, statement: str, starts: str
) -> None:
    before = counts(home)
    assert_refused(home, ["sql", statement], 2, starts)
    assert counts(home) == before
    assert not Path("/tmp/btledger-leak.csv").exists()


def counts(home: Path) -> dict[str, int]:
    with ReadModel.open(home / "readmodel.duckdb") as readmodel:
        return {name: len(rows) for name, rows in table_rows(readmodel).items()}


# --- changes: favorite, delete, restore, delete-strategy, test ------------------------------------


@pytest.mark.parametrize("name", ["../../x", "NoSuchStrategy", "' OR 1=1 --", "Sma%", HUGE, "", "😀"])
def test_deleting_a_strategy_that_does_not_exist_is_refused(home: Path, name: str) -> None:
    assert_refused(home, ["delete-strategy", "--", name], 2, "no strategy named")


def test_a_change_that_does_not_apply_exits_1(home: Path, result_id: str) -> None:
    assert_refused(home, ["restore", result_id], 1, f"backtest {result_id} is not deleted")
    assert invoke("delete", result_id, "--reason", "' OR 1=1 --").exit_code == 0
    assert_refused(home, ["delete", result_id], 1, f"backtest {result_id} is already deleted")
    assert_refused(home, ["favorite", result_id], 1, f"backtest {result_id} is deleted")
    assert_refused(home, ["test", "luck", result_id], 1, f"backtest {result_id} has no live result")


@pytest.mark.parametrize("reason", ["", "x" * 501, HUGE])
def test_a_deletion_reason_that_is_empty_or_too_long_is_refused(home: Path, result_id: str, reason: str) -> None:
    assert_refused(home, ["delete", result_id, "--reason", reason], 2, "reason: must be 1 to 500 characters long")
    assert invoke("delete", result_id, "--reason", "x" * 500).exit_code == 0


def test_a_deletion_reason_of_spaces_only_is_refused(home: Path, result_id: str) -> None:
    assert_refused(home, ["delete", result_id, "--reason", "   "], 2, "reason: must say something")


TEST_CASES = [
    (["../../x"], "kind: unknown test"),
    (["montecarlo; rm -rf /"], "kind: unknown test"),
    ([HUGE], "kind: unknown test"),
    (["montecarlo", "--paths", "-5"], "paths: "),
    (["montecarlo", "--paths", "0"], "paths: "),
    (["montecarlo", "--paths", "100000000000"], "paths: "),
    (["montecarlo", "--ruin-threshold-pct", "nan"], "ruin_threshold_pct: "),
    (["montecarlo", "--ruin-threshold-pct", "-10"], "ruin_threshold_pct: "),
    (["montecarlo", "--method", "bootstrap'; --"], "method: "),
    (["montecarlo", "--seed", "-1"], "seed: "),
    (["luck", "--percent", "nan"], "percent: "),
    (["luck", "--percent", "-1"], "percent: "),
    (["luck", "--percent", "50"], "percent: "),
    (["luck", "--paths", "10"], "paths: "),
    (["random", "--runs", "0"], "runs: "),
    (["random", "--iterations", "-1"], "iterations: "),
]


@pytest.mark.parametrize(("args", "starts"), TEST_CASES, ids=[f"test-{n}" for n in range(len(TEST_CASES))])
def test_bad_robustness_test_options_are_refused(home: Path, result_id: str, args: list[str], starts: str) -> None:
    kind, *options = args
    assert_refused(home, ["test", kind, result_id, *options], 2, starts)


# --- export and rebuild ----------------------------------------------------------------------------


def test_export_to_a_path_that_cannot_be_a_directory_is_refused_naming_the_option(home: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    for target, culprit in (("/dev/null/x", "/dev/null"), (str(a_file), a_file), (str(a_file / "below"), a_file)):
        refusal = f"parquet: needs a directory, but {culprit} is not one"
        assert_refused(home, ["export", "--parquet", target], 2, refusal)
    assert a_file.read_text() == "not a directory"


def test_export_to_an_empty_path_is_refused(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)  # an empty path used to mean the current directory
    for target in ("", "  "):
        assert_refused(home, ["export", "--parquet", target], 2, "parquet: needs a directory")
    assert list(here.iterdir()) == []


def test_export_and_rebuild_with_unicode_and_injection_shaped_paths_work(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "données 😀 '; DROP TABLE x; --"
    result = invoke("export", "--parquet", str(target), "--json")
    assert result.exit_code == 0, result.output
    assert {Path(p).name for p in json.loads(result.stdout)} >= {"backtests.parquet", "trades.parquet"}
    rebuilt = invoke("rebuild", "--json")
    assert rebuilt.exit_code == 0 and json.loads(rebuilt.stdout)["position"] == open_ledger(home).head()


# --- usage errors (flags of the wrong type or range, unknown options, missing arguments) ------------

USAGE_CASES = [
    (["search", "--limit", "-1"], "--limit"),
    (["search", "--limit", "abc"], "--limit"),
    (["search", "--offset", "-5"], "--offset"),
    (["search", "--min-trades", "-1"], "--min-trades"),
    (["sql", "SELECT 1", "--max-rows", "0"], "--max-rows"),
    (["run", "--strategy", "SmaCross", "--cash", "abc"], "--cash"),
    (["test", "montecarlo", "abcd", "--paths", "many"], "--paths"),
    (["rebuild", "--bogus"], "--bogus"),
    (["rebuild", "extra"], "extra"),
    (["verify"], "backtest"),
    (["favorite", "--", HUGE, "again"], "again"),
]


@pytest.mark.parametrize(("args", "named"), USAGE_CASES, ids=[f"usage-{n}" for n in range(len(USAGE_CASES))])
def test_usage_errors_exit_2_name_the_option_and_write_nothing(home: Path, args: list[str], named: str) -> None:
    before = event_count(home)
    result = invoke(*args)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output and named in result.stderr
    assert event_count(home) == before


def test_usage_errors_are_one_line(home: Path) -> None:
    for args, _ in USAGE_CASES:
        assert len(invoke(*args).stderr.strip().splitlines()) == 1, args


# --- wildcards and injection in text filters are matched literally ------------------------------------

#: Each would match some of the synthetic results if `%`, `_` or `\\` were wildcards or the text were SQL.
LITERAL_FILTERS = [
    {"strategy": "%"},
    {"strategy": "%Cross"},
    {"strategy": "S_a"},
    {"strategy": "_"},
    {"strategy": "\\"},
    {"strategy": "' OR '1'='1"},
    {"strategy": "%' OR strategy LIKE '%"},
    {"ticker": "EUR%"},
    {"ticker": "G__G"},
    {"ticker": "%%"},
    {"ticker": "\\%"},
]


def test_text_filters_match_wildcards_and_sql_literally_in_the_cli_and_the_api(home: Path) -> None:
    for filters in LITERAL_FILTERS:
        ((name, text),) = filters.items()
        result = invoke("search", f"--{name}", text, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == {"total": 0, "items": []}, filters
    with TestClient(create_app(home, workers=1, token=""), raise_server_exceptions=False) as api:
        assert api.get("/health", params={"wait_for": open_ledger(home).head()}).status_code == 200
        for filters in LITERAL_FILTERS:
            page = api.get("/backtests", params=filters).json()
            assert (page["total"], page["items"]) == (0, []), (filters, page)
        assert api.get("/backtests").json()["total"] == RESULTS  # nothing was deleted or hidden


def test_text_filters_still_match_substrings_case_insensitively(home: Path) -> None:
    result = invoke("search", "--strategy", "cross", "--ticker", "eur", "--json")
    page = json.loads(result.stdout)
    assert page["total"] == 1 and page["items"][0]["strategy"] == "SmaCross"
    assert page["items"][0]["ticker"] == "EURUSD"


# --- corrupt config files -----------------------------------------------------------------------------


def packaged(name: str) -> dict[str, Any]:
    return yaml.safe_load((PACKAGED_CONFIGS / name).read_text())


def with_change(name: str, change: Any) -> str:
    data = packaged(name)
    change(data)
    return yaml.safe_dump(data)


def _set_first_timeframe_minutes(data: dict[str, Any]) -> None:
    data["timeframes"][0]["minutes"] = "sixty"


CONFIG_CASES = [
    # (file, content, command, exit code, what the one line must contain besides the file)
    ("settings.yaml", "initial_cash: [100000", "run", 1, "not valid YAML (line "),
    ("settings.yaml", "inital_cash: 100000\n", "run", 1, "inital_cash: Extra inputs are not permitted"),
    ("settings.yaml", "workers: many\n", "run", 1, "workers: Input should be a valid integer"),
    ("settings.yaml", "- a\n- list\n", "run", 1, "expected a mapping"),
    ("timeframes.yaml", "timeframes:\n  - {name: H1\n", "search", 1, "not valid YAML (line "),
    ("timeframes.yaml", "timeframez: []\n", "search", 1, "timeframes: Field required"),
    (
        "timeframes.yaml",
        with_change("timeframes.yaml", _set_first_timeframe_minutes),
        "rank",
        1,
        "timeframes.0.minutes",
    ),
    (
        "instruments.yaml",
        with_change("instruments.yaml", lambda d: d["instruments"]["EURUSD"].update(levrage=30)),
        "run",
        1,  # a broken config is not bad input of the command
        "instruments.EURUSD.levrage: Extra inputs are not permitted",
    ),
    (
        "instruments.yaml",
        with_change("instruments.yaml", lambda d: d["instruments"]["EURUSD"].update(leverage="high")),
        "run",
        1,
        "instruments.EURUSD.leverage: Input should be a valid number",
    ),
    # Checks of our own (model validators) read as the others: key, then the problem.
    (
        "instruments.yaml",
        with_change("instruments.yaml", lambda d: d["instruments"]["EURUSD"].update(category="Forx")),
        "run",
        1,
        "instruments.yaml: instruments.EURUSD.category: unknown category 'Forx'",
    ),
    (
        "instruments.yaml",
        with_change("instruments.yaml", lambda d: d["instruments"]["EURUSD"].update(min_lot=1000)),
        "run",
        1,
        "instruments.yaml: instruments.EURUSD: min_lot (1000.0) is greater than max_lot (100.0)",
    ),
    (
        "timeframes.yaml",
        with_change("timeframes.yaml", lambda d: d["timeframes"].append(dict(d["timeframes"][4]))),
        "rank",
        1,
        "timeframes.yaml: timeframes: H1 listed twice",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "command", "code", "says"),
    CONFIG_CASES,
    ids=[f"{c[0]}-{n}" for n, c in enumerate(CONFIG_CASES)],
)
def test_a_corrupt_config_file_stops_the_command_naming_the_file_and_the_key(
    home: Path, name: str, content: str, command: str, code: int, says: str
) -> None:
    path = home / "configs" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(content)
    clear_config_cache()
    args = run_args() if command == "run" else [command]
    result = assert_refused(home, args, code, "")
    assert str(path) in result.stderr and says in result.stderr, result.stderr
    assert "Value error" not in result.stderr and "(top level)" not in result.stderr, result.stderr


# --- a corrupt or missing read model is rebuilt from the events, with a message ------------------------


def cli_process(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in its own process: its warnings reach stderr as a user sees them."""
    env = {**os.environ, "BTLEDGER_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "btledger", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def decided(home: Path) -> Ledger:
    """The seeded results plus a favourite and a deletion, all projected."""
    ledger = open_ledger(home)
    ledger.toggle_favorite(backtest_id(synthetic_spec(1)))
    ledger.delete(backtest_id(synthetic_spec(2)))
    with ReadModel.open() as readmodel:
        readmodel.catch_up(ledger)
    return ledger


def truncate_before_the_catalog(path: Path) -> None:
    """Cut the file short where DuckDB can no longer even open it."""
    path.write_bytes(path.read_bytes()[:100_000])


def truncate_past_the_catalog(path: Path) -> None:
    """Cut the file short where DuckDB still opens it: the damage shows only when table data is read."""
    whole = path.read_bytes()
    for keep in (len(whole) * 9 // 10, len(whole) * 2 // 3, len(whole) // 2, len(whole) // 3):
        path.write_bytes(whole[:keep])
        try:
            duckdb.connect(str(path)).close()
        except duckdb.Error:
            continue
        return
    pytest.skip("DuckDB refused every truncation on open (the path covered by the other cases)")


DAMAGE = {
    "garbage": lambda path: path.write_bytes(os.urandom(64 * 1024)),
    "truncated": truncate_before_the_catalog,
    "empty": lambda path: path.write_bytes(b""),
    "missing": lambda path: path.unlink(),
    "truncated-past-the-catalog": truncate_past_the_catalog,
    # Its checksum no longer matches: DuckDB's error names the "block" at location 0 (it was taken
    # for a lock held by another process).
    "header-checksum": lambda path: path.write_bytes(b"\xff" * 8 + path.read_bytes()[8:]),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_or_missing_read_model_is_rebuilt_from_the_events_and_says_so(
    home: Path, decided: Ledger, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    path = home / "readmodel.duckdb"
    events = event_count(home)
    missing = damage is DAMAGE["missing"]
    damage(path)

    result = cli_process(home, "search", "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    says = "not found: building it from the ledger" if missing else "rebuilding from the ledger"
    assert says in result.stderr and str(path) in result.stderr, result.stderr
    page = json.loads(result.stdout)
    assert page["total"] == RESULTS - 1  # every live result is back; the deleted one stays deleted
    assert event_count(home) == events
    if not missing:
        assert list(home.glob("readmodel.duckdb.corrupt-*")), "the damaged file was not kept aside"

    with ReadModel.open(path) as readmodel:
        assert readmodel.position() == decided.head()
        assert table_rows(readmodel) == clean_rebuild(decided, tmp_path)


def test_a_block_that_fails_its_checksum_is_reported_and_rebuild_repairs_it(home: Path, decided: Ledger) -> None:
    path = home / "readmodel.duckdb"
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        [(schema,)] = con.execute("SELECT schema_name FROM main.read_model").fetchall()
        [(block, offset)] = con.execute(
            f"SELECT block_id, block_offset FROM pragma_storage_info('{schema}.backtests') WHERE block_id >= 0 LIMIT 1"
        ).fetchall()
        [(block_size,)] = con.execute("SELECT block_size FROM pragma_database_size()").fetchall()
    with path.open("r+b") as file:  # past the block's 8-byte checksum, into its data
        file.seek(3 * 4096 + block * block_size + 8 + offset + 16)
        file.write(b"\xff" * 8)

    result = cli_process(home, "search", "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "read model file is damaged" in result.stderr and "btledger rebuild" in result.stderr, result.stderr

    assert cli_process(home, "rebuild").returncode == 0
    result = cli_process(home, "search", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total"] == RESULTS - 1


def test_a_garbage_wal_beside_a_good_read_model_loses_nothing(home: Path, decided: Ledger, tmp_path: Path) -> None:
    path = home / "readmodel.duckdb"
    (home / "readmodel.duckdb.wal").write_bytes(os.urandom(8 * 1024))
    result = cli_process(home, "search", "--json")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert json.loads(result.stdout)["total"] == RESULTS - 1
    with ReadModel.open(path) as readmodel:
        assert table_rows(readmodel) == clean_rebuild(decided, tmp_path)
