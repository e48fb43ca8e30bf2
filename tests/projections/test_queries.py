"""Every query on a real event store and a real DuckDB file, including the seed's edge cases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import duckdb
import pyarrow as pa
import pytest

from btledger.domain.backtest import STRATEGY_DELETED
from btledger.domain.errors import InvalidInput
from btledger.domain.ledger import Ledger
from btledger.projections import queries as q
from btledger.projections.readmodel import ReadModel
from btledger.projections.schema import TABLES
from tests.projections.factories import outcome, spec
from tests.typed import text


def _record(ledger: Ledger, **kwargs: object) -> str:
    """Record a result; kwargs split between the key (strategy/ticker/timeframe/risk) and the outcome."""
    key = {k: kwargs.pop(k) for k in ("strategy", "ticker", "timeframe", "risk") if k in kwargs}
    # The keywords are typed only as the union of the key's and the outcome's, split at run time.
    backtest, _ = ledger.record_outcome(spec(**key), outcome(**kwargs))  # type: ignore[arg-type]
    return str(backtest)


def _ids(rows: list[dict[str, object]]) -> list[str]:
    return [text(row["id"]) for row in rows]


def _ranking(
    readmodel: ReadModel, ledger: Ledger, strategy: str | None = None, as_of: datetime | None = None
) -> list[dict[str, object]]:
    readmodel.catch_up(ledger)
    return q.robust_ranking(readmodel.cursor(), strategy=strategy, as_of=as_of)


# --- robust ranking ------------------------------------------------------------------------------


def test_ranking_picks_the_best_run_of_each_pair_whose_average_exceeds_one(
    ledger: Ledger, readmodel: ReadModel
) -> None:
    best = _record(ledger, timeframe="D1", return_dd=1.5, stability_weighted_rar=9.0)
    _record(ledger, timeframe="H1", return_dd=2.5, stability_weighted_rar=3.0)
    _record(ledger, ticker="EURUSD", return_dd=0.9, stability_weighted_rar=50.0)  # average 0.9: not robust

    rows = _ranking(readmodel, ledger)

    assert _ids(rows) == [best]
    assert rows[0]["pair_avg_return_dd"] == pytest.approx(2.0)
    assert rows[0]["date_from"] == "2020-01-01" and isinstance(rows[0]["recorded_at"], str)


def test_ranking_threshold_is_strictly_greater_than_one_in_both_forms(ledger: Ledger, readmodel: ReadModel) -> None:
    _record(ledger, return_dd=1.0)
    _record(ledger, strategy="Other", return_dd=1.0001)

    assert [r["strategy"] for r in _ranking(readmodel, ledger)] == ["Other"]
    assert _ranking(readmodel, ledger, strategy="SmaCross") == []
    assert len(_ranking(readmodel, ledger, strategy="Other")) == 1


def test_zero_drawdown_runs_with_null_ratio_are_left_out_of_the_average(ledger: Ledger, readmodel: ReadModel) -> None:
    # GOOG: null and 0.5 → average 0.5 (the seed averaged inf in and ranked it first)
    _record(ledger, timeframe="D1", return_dd=None, stability_weighted_rar=100.0)
    _record(ledger, timeframe="H1", return_dd=0.5)
    # EURUSD: null and 3 → average 3; its null-ratio run may still be the best by RAR
    eur_null = _record(ledger, ticker="EURUSD", timeframe="D1", return_dd=None, stability_weighted_rar=100.0)
    _record(ledger, ticker="EURUSD", timeframe="H1", return_dd=3.0, stability_weighted_rar=1.0)
    # BTCUSD: only null ratios → no average → not robust
    _record(ledger, ticker="BTCUSD", return_dd=None)

    rows = _ranking(readmodel, ledger)

    assert _ids(rows) == [eur_null]
    assert rows[0]["return_dd"] is None and rows[0]["pair_avg_return_dd"] == 3.0


def test_non_selected_timeframes_neither_qualify_a_pair_nor_represent_it(ledger: Ledger, readmodel: ReadModel) -> None:
    _record(ledger, ticker="EURUSD", timeframe="M5", return_dd=50.0)  # M5 is not selected
    _record(ledger, ticker="EURUSD", timeframe="H1", return_dd=0.5)
    on_h4 = _record(ledger, timeframe="H4", return_dd=2.0, stability_weighted_rar=1.0)
    _record(ledger, timeframe="M15", return_dd=2.0, stability_weighted_rar=99.0)

    rows = _ranking(readmodel, ledger)

    assert _ids(rows) == [on_h4]


def test_ties_are_broken_by_return_dd_then_id_with_one_row_per_pair(ledger: Ledger, readmodel: ReadModel) -> None:
    _record(ledger, timeframe="D1", return_dd=2.0, stability_weighted_rar=5.0)
    higher_ratio = _record(ledger, timeframe="H1", return_dd=3.0, stability_weighted_rar=5.0)
    a = _record(ledger, ticker="EURUSD", timeframe="D1", return_dd=2.0, stability_weighted_rar=5.0)
    b = _record(ledger, ticker="EURUSD", timeframe="H1", return_dd=2.0, stability_weighted_rar=5.0)

    rows = _ranking(readmodel, ledger)

    assert sorted(_ids(rows)) == sorted([higher_ratio, min(a, b)])
    assert len({(r["strategy"], r["ticker"]) for r in rows}) == len(rows)


def test_ranking_averages_over_risks_and_orders_pairs_by_rar(ledger: Ledger, readmodel: ReadModel) -> None:
    low = _record(ledger, risk=1.0, return_dd=1.5, stability_weighted_rar=1.0)
    _record(ledger, risk=2.0, return_dd=0.8, stability_weighted_rar=0.5)  # average 1.15
    high = _record(ledger, ticker="EURUSD", return_dd=4.0, stability_weighted_rar=7.0)

    assert _ids(_ranking(readmodel, ledger)) == [high, low]


def test_deleted_and_restored_results(ledger: Ledger, readmodel: ReadModel) -> None:
    best = _record(ledger, timeframe="D1", return_dd=3.0, stability_weighted_rar=9.0)
    second = _record(ledger, timeframe="H1", return_dd=3.0, stability_weighted_rar=1.0)
    ledger.delete(UUID(best))

    assert _ids(_ranking(readmodel, ledger)) == [second]
    cur = readmodel.cursor()
    assert q.backtest_by_id(cur, best) is None
    assert q.trades_of(cur, best) == []
    assert q.trade_performance_of(cur, best) is None

    ledger.restore(UUID(best))

    assert _ids(_ranking(readmodel, ledger)) == [best]
    assert len(q.trades_of(cur, best)) == 3
    assert q.trade_performance_of(cur, best) is not None


def test_deleted_strategy_leaves_every_result_table(ledger: Ledger, readmodel: ReadModel) -> None:
    gone = [_record(ledger, strategy="Doomed", timeframe=tf) for tf in ("H1", "D1")]
    kept = _record(ledger, strategy="Kept")
    ledger.delete_strategy("Doomed")

    assert _ids(_ranking(readmodel, ledger)) == [kept]
    cur = readmodel.cursor()
    for table in ("backtests", "trades", "trade_performance"):
        column = "id" if table == "backtests" else "backtest_id"
        counted = cur.execute(f"SELECT count(*) FROM {table} WHERE {column} IN (SELECT unnest(?))", [gone]).fetchone()
        assert counted == (0,)
    deleted = q.history(cur, gone[0])[-1]
    assert deleted["event_type"] == "Deleted" and deleted["payload"] == {"reason": STRATEGY_DELETED}


def test_rerun_replaces_the_result_and_its_robustness_tests(ledger: Ledger, readmodel: ReadModel) -> None:
    backtest = _record(ledger, return_dd=2.0, n_trades=5)
    ledger.record_robustness_test(
        UUID(backtest), test_id="mc-1", kind="montecarlo", parameters={"runs": 10}, seed=1,
        summary={"risk_of_ruin": 0.1}, metrics={"p5_return": -3.0, "p95_return": 9.5},
    )  # fmt: skip
    readmodel.catch_up(ledger)
    cur = readmodel.cursor()
    [test] = q.robustness_tests_of(cur, backtest)
    assert test["metrics"] == {"p5_return": -3.0, "p95_return": 9.5} and test["parameters"] == {"runs": 10}

    _record(ledger, return_dd=0.5, n_trades=2)
    readmodel.catch_up(ledger)

    row = q.backtest_by_id(cur, backtest)
    assert row is not None and row["return_dd"] == 0.5 and row["trades"] == 2
    assert [t["trade_no"] for t in q.trades_of(cur, backtest)] == [1, 2]
    assert q.robustness_tests_of(cur, backtest) == []
    assert cur.execute("SELECT results FROM backtest_keys WHERE id = ?", [backtest]).fetchone() == (2,)


def test_robustness_tests_leave_with_a_deletion_and_return_with_a_restore(ledger: Ledger, readmodel: ReadModel) -> None:
    backtest = _record(ledger)
    ledger.record_robustness_test(
        UUID(backtest), test_id="luck-1", kind="luck", parameters={}, seed=7, summary={}, metrics={"kept": True}
    )
    ledger.delete(UUID(backtest))
    readmodel.catch_up(ledger)
    cur = readmodel.cursor()
    assert q.robustness_tests_of(cur, backtest) == []

    ledger.restore(UUID(backtest))
    readmodel.catch_up(ledger)

    [test] = q.robustness_tests_of(cur, backtest)
    assert test["seed"] == 7 and test["metrics"] == {"kept": None}  # a non-numeric metric value is NULL


def test_as_of_before_and_after_a_deletion(ledger: Ledger, readmodel: ReadModel) -> None:
    before_anything = datetime.now(UTC)
    best = _record(ledger, timeframe="D1", return_dd=3.0, stability_weighted_rar=9.0)
    second = _record(ledger, timeframe="H1", return_dd=3.0, stability_weighted_rar=1.0)
    ledger.toggle_favorite(UUID(best))
    before_deletion = datetime.now(UTC)
    ledger.delete(UUID(best))
    after_deletion = datetime.now(UTC)

    assert _ranking(readmodel, ledger, as_of=before_anything) == []
    [then] = _ranking(readmodel, ledger, as_of=before_deletion)
    assert then["id"] == best and then["favorite"] is True
    assert _ids(_ranking(readmodel, ledger, as_of=after_deletion)) == [second]
    assert _ids(_ranking(readmodel, ledger)) == [second]
    with pytest.raises(InvalidInput):
        _ranking(readmodel, ledger, as_of=datetime(2026, 1, 1))


def test_as_of_sees_the_result_that_a_rerun_replaced(ledger: Ledger, readmodel: ReadModel) -> None:
    backtest = _record(ledger, return_dd=5.0)
    between = datetime.now(UTC)
    _record(ledger, return_dd=0.5)

    assert _ranking(readmodel, ledger) == []
    [then] = _ranking(readmodel, ledger, as_of=between)
    assert then["id"] == backtest and then["return_dd"] == 5.0


def test_failed_run_is_only_in_the_ledger_events(ledger: Ledger, readmodel: ReadModel) -> None:
    backtest, _ = ledger.record_failure(spec(ticker="BAD"), "no data for BAD")
    readmodel.catch_up(ledger)
    cur = readmodel.cursor()

    assert cur.execute("SELECT count(*) FROM backtests").fetchone() == (0,)
    assert cur.execute("SELECT count(*) FROM backtest_versions").fetchone() == (0,)
    assert [e["event_type"] for e in q.history(cur, str(backtest))] == ["Registered", "RunFailed"]
    assert cur.execute("SELECT status, last_error FROM backtest_keys").fetchall() == [("failed", "no data for BAD")]


# --- filtered search -----------------------------------------------------------------------------


@pytest.fixture
def searchable(ledger: Ledger, readmodel: ReadModel) -> dict[str, str]:
    ids = {
        "a": _record(ledger, strategy="Sma_Cross", ticker="EURUSD", return_dd=3.0, return_pct=30.0, drawdown_pct=10.0),
        "b": _record(ledger, strategy="SmaXCross", ticker="GOOG", return_dd=2.0, return_pct=20.0, drawdown_pct=10.0),
        "c": _record(ledger, strategy="100%Win", ticker="btc\\usd", return_dd=None, return_pct=5.0, drawdown_pct=0.0),
        "d": _record(ledger, strategy="Rsi", ticker="GOOG", return_dd=1.0, return_pct=10.0, drawdown_pct=30.0,
                     sharpe_ratio=2.5, n_trades=40),
    }  # fmt: skip
    ledger.toggle_favorite(UUID(ids["b"]))
    readmodel.catch_up(ledger)
    return ids


def _search(readmodel: ReadModel, **kwargs: object) -> q.Page:
    # Passes filtered_search's own keywords through, which `object` does not type one by one.
    return q.filtered_search(readmodel.cursor(), **kwargs)  # type: ignore[arg-type]


def test_search_defaults_to_return_dd_descending_with_nulls_last(
    readmodel: ReadModel, searchable: dict[str, str]
) -> None:
    page = _search(readmodel)
    assert page.total == 4
    assert _ids(page.items) == [searchable[k] for k in "abdc"]


def test_search_thresholds(readmodel: ReadModel, searchable: dict[str, str]) -> None:
    assert _ids(_search(readmodel, min_return=15).items) == [searchable["a"], searchable["b"]]
    assert _ids(_search(readmodel, max_drawdown=10).items) == [searchable[k] for k in "abc"]
    assert _ids(_search(readmodel, min_return_dd=0).items) == [searchable[k] for k in "abd"]  # NULL fails
    assert _ids(_search(readmodel, min_sharpe=2, min_trades=10).items) == [searchable["d"]]
    assert _ids(_search(readmodel, favorite_only=True).items) == [searchable["b"]]
    assert _search(readmodel, min_win_rate=1, min_stability_ratio=1, min_stability_weighted_rar=1).total == 4


def test_search_text_matches_case_insensitively_with_wildcards_taken_literally(
    readmodel: ReadModel, searchable: dict[str, str]
) -> None:
    assert _ids(_search(readmodel, strategy="sma_").items) == [searchable["a"]]  # `_` is not "any character"
    assert _search(readmodel, strategy="sma").total == 2
    assert _ids(_search(readmodel, strategy="%").items) == [searchable["c"]]
    assert _ids(_search(readmodel, ticker="C\\U").items) == [searchable["c"]]
    assert _search(readmodel, ticker="goog", strategy="RSI").total == 1
    assert _search(readmodel, ticker="'; DROP TABLE backtests; --").total == 0
    assert _search(readmodel).total == 4


def test_search_sorts_by_any_metric_and_pages(readmodel: ReadModel, searchable: dict[str, str]) -> None:
    ascending = _search(readmodel, sort="return_pct", order="asc")
    assert _ids(ascending.items) == [searchable[k] for k in "cdba"]
    page = _search(readmodel, sort="drawdown_pct", order="desc", limit=2, offset=1)
    assert page.total == 4
    assert _ids(page.items) == sorted([searchable["a"], searchable["b"]])  # equal drawdowns: by id
    assert _search(readmodel, offset=10).items == []


def test_a_parsed_search_answers_for_its_own_parameters_in_every_thread(
    readmodel: ReadModel, searchable: dict[str, str]
) -> None:
    q.parsed.cache_clear()
    thresholds = {0.0: "abcd", 7.0: "abd", 15.0: "ab", 25.0: "a", 35.0: ""}
    expected = {m: sorted(searchable[k] for k in keys) for m, keys in thresholds.items()}

    def search(minimum: float) -> list[str]:
        return sorted(_ids(_search(readmodel, min_return=minimum).items))

    assert {m: search(m) for m in thresholds} == expected
    assert q.parsed.cache_info().misses == 2  # the live schema's name and the search: parsed once each
    with ThreadPoolExecutor(4) as threads:  # one parsed statement shared by concurrent cursors
        minimums = list(thresholds) * 10
        assert list(threads.map(search, minimums)) == [expected[m] for m in minimums]


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("sort", {"sort": "id; DROP TABLE backtests"}),
        ("sort", {"sort": "payload"}),
        ("order", {"order": "sideways"}),
        ("limit", {"limit": -1}),
        ("offset", {"offset": -1}),
    ],
)
def test_search_rejects_unknown_sort_and_bad_paging(
    readmodel: ReadModel, field: str, kwargs: dict[str, object]
) -> None:
    with pytest.raises(InvalidInput) as raised:
        _search(readmodel, **kwargs)
    assert raised.value.field == field


# --- lookups ---------------------------------------------------------------------------------------


def test_lists_lookups_and_history(ledger: Ledger, readmodel: ReadModel) -> None:
    low = _record(ledger, timeframe="H1", stability_weighted_rar=1.0, n_trades=4)
    high = _record(ledger, timeframe="D1", stability_weighted_rar=2.0)
    _record(ledger, ticker="EURUSD")
    ledger.toggle_favorite(UUID(low))
    ledger.toggle_favorite(UUID(high))
    ledger.toggle_favorite(UUID(high))
    readmodel.catch_up(ledger)
    cur = readmodel.cursor()

    assert _ids(q.by_strategy_ticker(cur, "SmaCross", "GOOG")) == [high, low]
    assert _ids(q.favorites(cur)) == [low]
    trades = q.trades_of(cur, low)
    assert [t["trade_no"] for t in trades] == [1, 2, 3, 4]
    assert trades[1]["entry_time"] == "2020-01-03T00:00:00.000000+00:00"
    assert trades[1]["exit_time"] == "2020-01-04T12:30:00.000000+00:00"
    row = q.backtest_by_id(cur, high)
    assert row is not None and row["favorite"] is False and row["version"] == 4 and row["params"] == {}
    events = q.history(cur, high)
    assert [e["event_type"] for e in events] == ["Registered", "ResultRecorded", "FavoriteToggled", "FavoriteToggled"]
    assert [e["payload"] for e in events[2:]] == [{"favorite": True}, {"favorite": False}]
    assert events[1]["payload"]["trades"]["entry_bar"] == [0, 1, 2]
    assert [e["position"] for e in events] == sorted(e["position"] for e in events)
    assert cur.execute("SELECT count(*) FROM backtest_versions WHERE id = ?", [high]).fetchone() == (3,)


def test_parameters_are_part_of_the_key_and_shown(ledger: Ledger, readmodel: ReadModel) -> None:
    ledger.record_outcome(spec(fast=10), outcome())
    ledger.record_outcome(spec(fast=20), outcome())
    readmodel.catch_up(ledger)

    params = [r["params"] for r in q.by_strategy_ticker(readmodel.cursor(), "SmaCross", "GOOG")]
    assert sorted(p["fast"] for p in params) == [10, 20]


# --- analyst SQL and exports -----------------------------------------------------------------------


def test_sql_runs_queries(ledger: Ledger, readmodel: ReadModel) -> None:
    _record(ledger)
    readmodel.catch_up(ledger)
    cur = readmodel.cursor()

    result = q.run_sql(cur, "SELECT strategy, count(*) AS n FROM backtests GROUP BY strategy")
    assert result.to_dicts() == [{"strategy": "SmaCross", "n": 1}]
    assert q.run_sql(cur, "WITH t AS (SELECT 1 AS x) SELECT * FROM t").rows == [[1]]
    assert "backtests" in [row[0] for row in q.run_sql(cur, "SHOW TABLES").rows]
    assert q.run_sql(cur, "FROM timeframes SELECT name WHERE selected ORDER BY minutes").rows == [
        ["H1"],
        ["H4"],
        ["D1"],
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE backtests",
        "INSERT INTO timeframes VALUES ('X', 1, true)",
        "UPDATE backtests SET favorite = true",
        "DELETE FROM trades",
        "CREATE TABLE x AS SELECT 1",
        "COPY backtests TO '/tmp/x.csv'",
        "ATTACH '/tmp/other.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "PRAGMA database_size",
        "SET threads = 1",
        "CALL checkpoint()",
        "EXPLAIN ANALYZE DELETE FROM trades",
        "SELECT 1; DELETE FROM trades",
        "DETACH rm1",
        "",
    ],
)
def test_sql_refuses_anything_that_is_not_a_query(ledger: Ledger, readmodel: ReadModel, sql: str) -> None:
    _record(ledger)
    readmodel.catch_up(ledger)
    cur = readmodel.cursor()

    with pytest.raises(InvalidInput) as raised:
        q.run_sql(cur, sql)

    assert raised.value.field == "sql"
    assert cur.execute("SELECT count(*) FROM trades").fetchone() == (3,)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT (SELECT count(*) FROM glob('/*')) AS n",
        "SELECT getenv('BTLEDGER_API_TOKEN')",
        "WITH t AS (SELECT * FROM read_json('/etc/x.json')) SELECT * FROM t",
        "SELECT * FROM backtests WHERE id IN (SELECT content FROM read_text('/etc/hostname'))",
    ],
)
def test_sql_cannot_read_the_host(readmodel: ReadModel, sql: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        q.run_sql(readmodel.cursor(), sql)
    assert raised.value.field == "sql"
    assert "not allowed" in str(raised.value) or "not a table" in str(raised.value)


@pytest.mark.parametrize(
    "sql",
    [
        'SELECT * FROM "{dir}/secret".csv',  # DuckDB joins schema and table back into a path
        'SELECT * FROM "{dir}/*".csv',
        'SELECT * FROM "{dir}/secret".json',
        'SELECT * FROM "{dir}/secret".parquet',
        'SELECT * FROM "{dir}/missing".csv',  # refused like a file that exists: nothing tells them apart
        'SELECT * FROM "{dir}/catalog".secret.csv',
        "SELECT * FROM readmodel.secret.csv",
        "SELECT * FROM main.csv",  # a schema of the read model, and a file in the working directory
        'SELECT * FROM backtests WHERE id IN (SELECT name FROM "{dir}/secret".csv)',
    ],
)
def test_sql_cannot_read_files_through_a_schema_or_catalog_name(
    readmodel: ReadModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sql: str
) -> None:
    secret = "name,value\nAPI_TOKEN,s3cr3t\n"
    for name in ("secret.csv", "catalog.secret.csv", "readmodel.secret.csv", "main.csv"):
        (tmp_path / name).write_text(secret)
    (tmp_path / "secret.json").write_text('[{"name": "API_TOKEN", "value": "s3cr3t"}]')
    duckdb.execute(f"COPY (SELECT 'API_TOKEN' AS name) TO '{tmp_path}/secret.parquet'")
    monkeypatch.chdir(tmp_path)

    with pytest.raises(InvalidInput) as raised:
        q.run_sql(readmodel.cursor(), sql.format(dir=tmp_path))

    assert raised.value.field == "sql"
    assert "is not a table of the read model" in str(raised.value)


def test_sql_may_name_the_read_models_own_schemas_and_catalogs(ledger: Ledger, readmodel: ReadModel) -> None:
    _record(ledger)
    readmodel.catch_up(ledger)
    cur = readmodel.cursor()
    live = q.run_sql(cur, "SELECT schema_name FROM main.read_model").rows[0][0]

    for table in (
        "backtests",
        "main.backtests",
        f"{live}.backtests",
        "readmodel.backtests",
        "readmodel.main.backtests",
    ):
        assert q.run_sql(cur, f"SELECT count(*) FROM {table}").rows == [[1]], table
    for table in ("information_schema.tables", "system.information_schema.tables", "pg_catalog.pg_class"):
        assert q.run_sql(cur, f"SELECT count(*) > 0 FROM {table}").rows == [[True]], table


def test_sql_may_use_row_generators_and_the_catalog(readmodel: ReadModel) -> None:
    assert q.run_sql(readmodel.cursor(), "SELECT count(*) FROM range(5)").rows == [[5]]
    names = {row[0] for row in q.run_sql(readmodel.cursor(), "SELECT table_name FROM duckdb_tables()").rows}
    assert "backtests" in names


def test_sql_cannot_read_python_objects_by_name(readmodel: ReadModel, monkeypatch: pytest.MonkeyPatch) -> None:
    # DuckDB scans an Arrow table or DataFrame named in a query from the caller's module variables.
    monkeypatch.setattr(q, "leaked_rows", pa.table({"secret": ["token"]}), raising=False)
    with pytest.raises(InvalidInput, match="leaked_rows"):
        q.run_sql(readmodel.cursor(), "SELECT * FROM leaked_rows")


@pytest.mark.parametrize(
    "sql",
    [
        "PIVOT backtests ON timeframe IN ('D1', 'H1') USING count(*) GROUP BY strategy ORDER BY strategy",
        "SELECT * FROM backtests PIVOT (count(*) FOR timeframe IN ('D1', 'H1') GROUP BY strategy) ORDER BY strategy",
    ],
    ids=["PIVOT statement", "PIVOT clause"],
)
def test_sql_may_pivot_on_listed_values(ledger: Ledger, readmodel: ReadModel, sql: str) -> None:
    _record(ledger, strategy="SmaCross", timeframe="D1")
    _record(ledger, strategy="SmaCross", timeframe="H1")
    _record(ledger, strategy="DonchianBreakout", timeframe="H1", risk=2.0)
    readmodel.catch_up(ledger)

    result = q.run_sql(readmodel.cursor(), sql)

    assert result.columns == ["strategy", "D1", "H1"]
    assert result.rows == [["DonchianBreakout", 0, 1], ["SmaCross", 1, 1]]


@pytest.mark.parametrize(
    "sql",
    [
        "PIVOT backtests ON timeframe USING count(*) GROUP BY strategy",
        "SELECT * FROM (PIVOT backtests ON timeframe USING count(*))",
        # What DuckDB would run first, unchecked: the file's text would come back as column names.
        "PIVOT (SELECT content FROM read_text('/etc/hostname')) ON content USING count(*)",
    ],
)
def test_sql_refuses_a_pivot_without_its_values_saying_why_and_what_to_write(readmodel: ReadModel, sql: str) -> None:
    with pytest.raises(q.SqlRefused) as raised:
        q.run_sql(readmodel.cursor(), sql)

    message = str(raised.value)
    assert message.startswith("sql: a PIVOT without an IN list is not allowed")
    assert "IN (" in message and "FILTER (WHERE" in message


def test_sql_refuses_a_pivot_of_a_file(readmodel: ReadModel) -> None:
    with pytest.raises(q.SqlRefused, match=r"read_text\(\) is not allowed"):
        q.run_sql(readmodel.cursor(), "PIVOT read_text('/etc/hostname') ON content IN ('x') USING count(*)")


def test_sql_errors_are_reported_as_invalid_input(readmodel: ReadModel) -> None:
    with pytest.raises(InvalidInput, match="no_such_table"):
        q.run_sql(readmodel.cursor(), "SELECT * FROM no_such_table")


def test_export_writes_every_table_as_parquet(ledger: Ledger, readmodel: ReadModel, tmp_path: Path) -> None:
    _record(ledger, n_trades=7)
    readmodel.catch_up(ledger)

    written = readmodel.export_parquet(tmp_path / "export")

    assert {p.stem for p in written} == {t.name for t in TABLES}
    reader = duckdb.connect()
    assert reader.execute(f"SELECT count(*) FROM '{tmp_path / 'export' / 'trades.parquet'}'").fetchone() == (7,)
    assert reader.execute(f"SELECT id FROM '{tmp_path / 'export' / 'backtests.parquet'}'").fetchall() == [
        (row[0],) for row in readmodel.cursor().execute("SELECT id FROM backtests").fetchall()
    ]


def test_a_deleted_result_run_again_is_live_with_only_its_new_rows(ledger: Ledger, readmodel: ReadModel) -> None:
    identity, _ = ledger.record_outcome(spec(), outcome(n_trades=4))
    ledger.delete(identity)
    ledger.record_outcome(spec(), outcome(n_trades=2))  # `run --rerun` of a deleted key
    readmodel.catch_up(ledger)
    cur = readmodel.cursor()
    assert q.backtest_by_id(cur, str(identity)) is not None
    assert len(q.trades_of(cur, str(identity))) == 2
    # The old result's archived rows are gone: a later delete and restore brings back only the new ones.
    ledger.delete(identity)
    ledger.restore(identity)
    readmodel.catch_up(ledger)
    assert len(q.trades_of(cur, str(identity))) == 2
