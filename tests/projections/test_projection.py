"""The projector: batches, rebuilds, tracking, dead letters, read-your-writes, file ownership."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from uuid import UUID, uuid4

import duckdb
import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import StoredEvent

from btledger.domain.batch import run_batches
from btledger.domain.commands import RunBatch, parse
from btledger.domain.ledger import Ledger
from btledger.engine.pool import WorkerPool
from btledger.engine.result import BacktestOutcome
from btledger.projections import queries as q
from btledger.projections.projector import Projector
from btledger.projections.readmodel import PositionConflict, ReadModel, ReadModelLocked, transaction
from btledger.projections.schema import META_TABLE, TABLES
from tests.projections.factories import TIMEFRAMES, outcome, spec

REPO = Path(__file__).resolve().parents[2]


def table_rows(readmodel: ReadModel) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows, sorted: two read models are equal when these are."""
    cur = readmodel.cursor()
    return {t.name: cur.execute(f"SELECT * FROM {t.name} ORDER BY ALL").fetchall() for t in TABLES}


def busy_history(ledger: Ledger) -> None:
    """Every kind of event, with several changes of one backtest close together."""
    ids = [
        ledger.record_outcome(spec(timeframe=tf, risk=r), outcome(n_trades=4))[0] for tf in ("H1", "D1") for r in (1, 2)
    ]
    ledger.toggle_favorite(ids[0])
    ledger.delete(ids[0])
    ledger.restore(ids[0])
    ledger.toggle_favorite(ids[0])
    ledger.record_outcome(spec(timeframe="H1", risk=1), outcome(return_dd=7.0, n_trades=2))  # rerun of ids[0]
    ledger.record_robustness_test(
        ids[1], test_id="t1", kind="montecarlo", parameters={"n": 1}, seed=3, summary={"x": 1}, metrics={"m": 1.5}
    )
    ledger.delete(ids[1])
    failed, _ = ledger.record_failure(spec(ticker="NOPE"), "no data")
    ledger.delete(failed)  # a key whose runs all failed: no result row or version to move
    ledger.restore(failed)
    ledger.record_outcome(spec(strategy="Gone"), outcome())
    ledger.record_failure(spec(strategy="Gone", ticker="NOPE"), "no data")  # deleted with its strategy
    ledger.delete_strategy("Gone")
    ledger.delete(ids[2])
    ledger.record_outcome(spec(timeframe="D1", risk=1), outcome(n_trades=6))  # rerun while deleted
    late, _ = ledger.record_failure(spec(ticker="LATE"), "no data yet")
    ledger.delete(late)
    ledger.record_outcome(spec(ticker="LATE"), outcome(n_trades=2))  # a deleted failed key rerun: live


@pytest.mark.parametrize("batch_size", [1, 3, 500])
def test_any_batch_size_gives_the_same_tables_as_a_rebuild(ledger: Ledger, tmp_path: Path, batch_size: int) -> None:
    incremental = ReadModel.open(tmp_path / "incremental.duckdb", timeframes=TIMEFRAMES, batch_size=batch_size)
    busy_history(ledger)
    incremental.catch_up(ledger)
    rebuilt = ReadModel.open(tmp_path / "rebuilt.duckdb", timeframes=TIMEFRAMES)
    rebuilt.rebuild(ledger)

    assert table_rows(incremental) == table_rows(rebuilt)
    assert incremental.position() == rebuilt.position() == ledger.head()
    assert table_rows(incremental)["dead_letters"] == []


@pytest.mark.parametrize("rebuild_bytes", [1, 10_000])
def test_a_rebuild_in_several_transactions_equals_one_in_a_single_transaction(
    ledger: Ledger, tmp_path: Path, rebuild_bytes: int
) -> None:
    busy_history(ledger)
    single = ReadModel.open(tmp_path / "single.duckdb", timeframes=TIMEFRAMES)
    single.rebuild(ledger)
    several = ReadModel.open(
        tmp_path / "several.duckdb", timeframes=TIMEFRAMES, batch_size=3, rebuild_bytes=rebuild_bytes
    )
    several.rebuild(ledger)

    assert table_rows(several) == table_rows(single)
    assert several.position() == ledger.head()
    # The threshold lowered for a bulk commit is back for the live projector's commits.
    threshold = several.cursor().execute("SELECT current_setting('checkpoint_threshold')").fetchone()
    assert threshold == ("244.1 MiB",)


def test_incremental_catch_ups_between_commands_equal_a_rebuild(ledger: Ledger, readmodel: ReadModel) -> None:
    a, _ = ledger.record_outcome(spec(ticker="EURUSD"), outcome())
    readmodel.catch_up(ledger)
    ledger.toggle_favorite(a)
    readmodel.catch_up(ledger)
    ledger.delete(a)
    readmodel.catch_up(ledger)
    busy_history(ledger)
    readmodel.catch_up(ledger)
    before = table_rows(readmodel)
    reader = readmodel.cursor()

    readmodel.rebuild(ledger)

    assert table_rows(readmodel) == before
    schemas = reader.execute("SELECT schema_name FROM duckdb_schemas() WHERE schema_name LIKE 'rm%'").fetchall()
    assert schemas == [("rm2",)]


def test_a_deleted_failed_combination_projects_as_a_rebuild_does(
    ledger: Ledger, readmodel: ReadModel, tmp_path: Path
) -> None:
    """A really failing run (GOOG's sample is daily: no H1 bars) deleted, restored and deleted with its
    strategy, caught up after each step: the same tables as a rebuild, and no row of a result for it."""
    batch = {
        "strategies": ["SmaCross"],
        "tickers": ["GOOG"],
        "timeframes": ["H1", "D1"],
        "risks": [1.0],
        "date_from": "2010-01-01",
        "date_to": "2013-01-01",
    }
    with WorkerPool(1) as pool:
        report = run_batches(ledger, [parse(RunBatch, batch)], pool, tmp_path)
    failed, recorded = (str(r.id) for r in report.results)
    assert [r.status for r in report.results] == ["failed", "recorded"]
    cur = readmodel.cursor()

    def statuses() -> dict[str, str]:
        readmodel.catch_up(ledger)
        return dict(cur.execute("SELECT id, status FROM backtest_keys").fetchall())

    assert statuses() == {failed: "failed", recorded: "recorded"}
    ledger.delete(UUID(failed), reason="no hourly GOOG data")
    assert statuses() == {failed: "deleted", recorded: "recorded"}
    assert q.backtest_by_id(cur, failed) is None and q.trades_of(cur, failed) == []
    assert [e["event_type"] for e in q.history(cur, failed)] == ["Registered", "RunFailed", "Deleted"]
    ledger.restore(UUID(failed))
    assert statuses() == {failed: "failed", recorded: "recorded"}
    ledger.delete_strategy("SmaCross")
    assert statuses() == {failed: "deleted", recorded: "deleted"}
    assert cur.execute("SELECT id FROM backtest_versions WHERE valid_to IS NULL").fetchall() == [(recorded,)]
    for table in ("trade_performance", "deleted_trade_performance"):
        kept = cur.execute(f"SELECT backtest_id FROM {table}").fetchall()
        assert kept == ([(recorded,)] if table.startswith("deleted") else []), table

    rebuilt = ReadModel.open(tmp_path / "rebuilt.duckdb", timeframes=TIMEFRAMES)
    rebuilt.rebuild(ledger)
    assert table_rows(readmodel) == table_rows(rebuilt)


def test_tables_hold_one_row_per_live_result(ledger: Ledger, readmodel: ReadModel) -> None:
    busy_history(ledger)
    readmodel.catch_up(ledger)
    cur = readmodel.cursor()

    live = {row[0] for row in cur.execute("SELECT id FROM backtest_keys WHERE status = 'recorded'").fetchall()}
    assert {row[0] for row in cur.execute("SELECT id FROM backtests").fetchall()} == live
    assert cur.execute("SELECT count(*) = count(DISTINCT id) FROM backtests").fetchone() == (True,)
    assert {row[0] for row in cur.execute("SELECT DISTINCT backtest_id FROM trades").fetchall()} == live
    open_versions = cur.execute("SELECT id, live FROM backtest_versions WHERE valid_to IS NULL").fetchall()
    assert {i for i, is_live in open_versions if is_live} == live
    assert len(open_versions) == len({i for i, _ in open_versions})
    assert cur.execute("SELECT count(*) FROM ledger_events").fetchone() == (ledger.head(),)


def test_a_position_that_does_not_move_forward_rolls_the_batch_back(ledger: Ledger, readmodel: ReadModel) -> None:
    ledger.record_outcome(spec(), outcome())
    position = readmodel.catch_up(ledger)
    cur = readmodel.cursor()

    with pytest.raises(PositionConflict), transaction(cur):
        cur.execute("DELETE FROM rm1.trades")
        readmodel._record_position(cur, "rm1", position)

    assert cur.execute("SELECT count(*) FROM trades").fetchone() == (3,)


@pytest.mark.parametrize(
    ("trades", "error"),
    [
        ({"size": [1.0, 2.0]}, 'does not have key "entry_bar"'),
        ({**outcome(n_trades=2).trades, "pnl": [1.0]}, "unequal length"),
        ({**outcome(n_trades=2).trades, "pnl": None}, "unequal length"),
        ({**outcome(n_trades=2).trades, "pnl": [1.0, "a lot"]}, '"a lot"'),
        ({**outcome(n_trades=2).trades, "exit_time": ["2020-01-02T00:00:00+00:00", "yesterday"]}, "yesterday"),
    ],
    ids=["missing column", "unequal lengths", "a null column", "not a number", "not a time"],
)
def test_an_event_that_cannot_be_applied_is_parked_and_projection_goes_on(
    ledger: Ledger, readmodel: ReadModel, tmp_path: Path, trades: dict[str, list[object]], error: str
) -> None:
    good, _ = ledger.record_outcome(spec(), outcome())
    poison = BacktestOutcome(**{**outcome().to_json(), "trades": trades})
    bad, bad_position = ledger.record_outcome(spec(ticker="EURUSD"), poison)
    ledger.toggle_favorite(bad)
    ledger.toggle_favorite(good)

    assert readmodel.catch_up(ledger) == ledger.head()

    cur = readmodel.cursor()
    [letter] = q.dead_letters(cur)
    assert letter["position"] == bad_position and letter["event_type"] == "ResultRecorded"
    assert error in letter["error"] and '"size"' in letter["payload"]
    # The parked event is still in the audit table, with its time, strategy and readable payload.
    recorded = next(e for e in ledger.history(bad) if e.position == bad_position)
    assert letter["recorded_at"] == recorded.recorded_at.isoformat()
    audit = cur.execute(
        "SELECT recorded_at, event_type, backtest_id, strategy, version, payload->'trades' FROM ledger_events "
        "WHERE position = ?",
        [bad_position],
    ).fetchone()
    assert audit == (
        recorded.recorded_at,
        "ResultRecorded",
        str(bad),
        "SmaCross",
        2,
        json.dumps(trades, separators=(",", ":")),
    )
    assert cur.execute("SELECT count(*) FROM ledger_events").fetchone() == (ledger.head(),)
    assert q.favorites(cur)[0]["id"] == str(good)
    assert cur.execute("SELECT status, favorite FROM backtest_keys WHERE id = ?", [str(bad)]).fetchone() == (
        "pending",
        True,
    )
    # A rebuild applies events in bulk transactions: the one that fails is redone batch by batch.
    rebuilt = ReadModel.open(tmp_path / "rebuilt.duckdb", timeframes=TIMEFRAMES)
    rebuilt.rebuild(ledger)
    assert table_rows(rebuilt) == table_rows(readmodel)


@pytest.mark.parametrize(
    ("state", "payload"),
    [(b"not json", None), (b'{"timestamp": "yesterday", "strategy": {"a": 1}}', {"strategy": {"a": 1}})],
    ids=["not JSON", "no time"],
)
def test_an_event_that_cannot_be_decoded_is_parked_by_catch_up_and_rebuild(
    ledger: Ledger, readmodel: ReadModel, tmp_path: Path, state: bytes, payload: dict[str, object] | None
) -> None:
    good, _ = ledger.record_outcome(spec(), outcome())
    bad_id = uuid4()
    positions = ledger.recorder.insert_events(
        [StoredEvent(bad_id, 1, "btledger.domain.backtest:Backtest.Registered", state)]
    )
    assert positions is not None  # the library types it optional; the SQLite recorder always returns them
    [bad_position] = positions
    ledger.toggle_favorite(good)

    readmodel.catch_up(ledger)

    cur = readmodel.cursor()
    [letter] = q.dead_letters(cur)
    assert letter["position"] == bad_position and letter["payload"] == state.decode()
    assert letter["recorded_at"] is None  # no time can be read from its state
    # Still listed among every event, with what can be read of it.
    [audit] = q.query(
        cur,
        "SELECT recorded_at, event_type, backtest_id, strategy, version, payload FROM ledger_events WHERE position = ?",
        [bad_position],
    )
    assert audit == {
        "recorded_at": None,
        "event_type": "Registered",
        "backtest_id": str(bad_id),
        "strategy": None,
        "version": 1,
        "payload": payload,
    }
    assert cur.execute("SELECT count(*) FROM ledger_events").fetchone() == (ledger.head(),)
    assert q.favorites(cur)[0]["id"] == str(good)
    # A rebuild decodes on a thread ahead of the writes: the error still parks that one event.
    rebuilt = ReadModel.open(tmp_path / "rebuilt.duckdb", timeframes=TIMEFRAMES)
    rebuilt.rebuild(ledger)
    assert table_rows(rebuilt) == table_rows(readmodel)


class Note(Aggregate):
    """An aggregate the read model knows nothing about."""

    @event("Written")
    def __init__(self, text: str) -> None:
        self.text = text


def test_events_of_unknown_types_are_only_listed(ledger: Ledger, readmodel: ReadModel) -> None:
    ledger.save(Note("hello"))
    ledger.record_outcome(spec(), outcome())

    readmodel.catch_up(ledger)

    cur = readmodel.cursor()
    assert cur.execute("SELECT event_type, strategy, payload->>'text' FROM ledger_events ORDER BY position").fetchall()[
        0
    ] == ("Written", None, "hello")
    assert q.dead_letters(cur) == [] and cur.execute("SELECT count(*) FROM backtests").fetchone() == (1,)


def test_batches_are_bounded_by_bytes(ledger: Ledger, tmp_path: Path) -> None:
    for ticker in ("A", "B", "C"):
        ledger.record_outcome(spec(ticker=ticker), outcome(n_trades=100))
    readmodel = ReadModel.open(tmp_path / "small.duckdb", timeframes=TIMEFRAMES, batch_bytes=1)
    positions: list[int] = []

    readmodel.catch_up(ledger, on_batch=positions.append)

    assert positions == list(range(1, ledger.head() + 1))  # one notification per batch


def test_projector_thread_gives_read_your_writes(ledger: Ledger, readmodel: ReadModel) -> None:
    with Projector(readmodel, ledger, poll_interval=5.0) as projector:
        backtest, position = ledger.record_outcome(spec(), outcome())
        projector.notify()
        assert readmodel.wait_for(position, timeout=5.0) >= position
        assert q.backtest_by_id(readmodel.cursor(), str(backtest)) is not None
        assert readmodel.lag(ledger) == 0

        with pytest.raises(TimeoutError):
            readmodel.wait_for(position + 1, timeout=0.05)


def test_lag_counts_events_not_yet_projected(ledger: Ledger, readmodel: ReadModel) -> None:
    backtest, _ = ledger.record_outcome(spec(), outcome())
    ledger.toggle_favorite(UUID(str(backtest)))
    assert readmodel.lag(ledger) == 3
    readmodel.catch_up(ledger)
    assert readmodel.lag(ledger) == 0


def test_a_catch_up_up_to_a_position_applies_no_event_past_it(ledger: Ledger, readmodel: ReadModel) -> None:
    first, _ = ledger.record_outcome(spec(risk=1.0), outcome())
    second, _ = ledger.record_outcome(spec(risk=2.0), outcome())
    assert readmodel.catch_up(ledger, last=2) == 2
    assert q.backtest_by_id(readmodel.cursor(), str(first)) is not None
    assert q.backtest_by_id(readmodel.cursor(), str(second)) is None and readmodel.lag(ledger) == 2
    assert readmodel.catch_up(ledger) == 4
    assert q.backtest_by_id(readmodel.cursor(), str(second)) is not None


def test_another_process_gets_a_clear_message_naming_the_owner(tmp_path: Path) -> None:
    path = tmp_path / "owned.duckdb"
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from btledger.projections.readmodel import ReadModel; "
            "from tests.projections.factories import TIMEFRAMES; "
            f"m = ReadModel.open({str(path)!r}, timeframes=TIMEFRAMES); print('ready', flush=True); sys.stdin.read()",
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
        with pytest.raises(ReadModelLocked) as raised:
            ReadModel.open(path, timeframes=TIMEFRAMES)
    finally:
        owner.communicate("", timeout=30)

    assert raised.value.pid == owner.pid
    message = str(raised.value)
    assert f"process {owner.pid}" in message and "btledger serve" in message and "POST /sql" in message
    assert "export --parquet" not in message  # export needs the file too: it cannot help here
    ReadModel.open(path, timeframes=TIMEFRAMES).close()  # free again once the owner exits


def test_a_corrupt_file_is_moved_aside_and_rebuilt(ledger: Ledger, tmp_path: Path) -> None:
    ledger.record_outcome(spec(), outcome())
    path = tmp_path / "readmodel.duckdb"
    path.write_bytes(b"not a database" * 1000)

    readmodel = ReadModel.open(path, timeframes=TIMEFRAMES)
    readmodel.catch_up(ledger)

    assert readmodel.notice is not None and "rebuilding from the ledger" in readmodel.notice
    assert len(list(tmp_path.glob("readmodel.duckdb.corrupt-*"))) == 1
    assert readmodel.cursor().execute("SELECT count(*) FROM trades").fetchone() == (3,)


def test_a_missing_file_is_built_from_the_ledger(ledger: Ledger, tmp_path: Path) -> None:
    ledger.record_outcome(spec(), outcome())
    readmodel = ReadModel.open(tmp_path / "new" / "readmodel.duckdb", timeframes=TIMEFRAMES)
    assert readmodel.notice is not None and "not found" in readmodel.notice
    assert readmodel.catch_up(ledger) == ledger.head()


def test_a_file_that_lost_only_free_blocks_off_its_end_is_kept(ledger: Ledger, tmp_path: Path) -> None:
    for ticker in ("GOOG", "EURUSD", "USDJPY"):
        ledger.record_outcome(spec(ticker=ticker), outcome())
    path = tmp_path / "readmodel.duckdb"
    # A rebuild writes a new copy in free blocks, or past the end, then frees the old one: after the
    # second, the first copy's blocks at the end of the file are free (blocks freed by a session are
    # reused from the next one on).
    for step in (ReadModel.catch_up, ReadModel.rebuild, ReadModel.rebuild):
        with ReadModel.open(path, timeframes=TIMEFRAMES) as readmodel:
            step(readmodel, ledger)
    with ReadModel.open(path, timeframes=TIMEFRAMES) as readmodel:
        expected = table_rows(readmodel)
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        [(blocks, block_size)] = con.execute("SELECT total_blocks, block_size FROM pragma_database_size()").fetchall()
        used = [
            f"SELECT max(block_id) AS b FROM pragma_storage_info('{t}')"
            for (t,) in con.execute(
                "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall()
        ]
        [(last_used,)] = con.execute(
            f"SELECT max(b) FROM ({' UNION ALL '.join([*used, 'SELECT max(block_id) FROM pragma_metadata_info()'])})"
        ).fetchall()
    assert last_used < blocks - 1, "the test needs free blocks at the end of the file"
    # What a checkpoint may do: cut the free blocks off the end, the header still counting them.
    with path.open("r+b") as file:
        file.truncate(3 * 4096 + (last_used + 1) * block_size)

    with ReadModel.open(path, timeframes=TIMEFRAMES) as readmodel:
        assert readmodel.notice is None
        assert table_rows(readmodel) == expected
    assert not list(tmp_path.glob("readmodel.duckdb.corrupt-*"))


def test_a_file_built_by_other_table_definitions_is_rebuilt(ledger: Ledger, tmp_path: Path) -> None:
    ledger.record_outcome(spec(), outcome())
    path = tmp_path / "readmodel.duckdb"
    with ReadModel.open(path, timeframes=TIMEFRAMES) as readmodel:
        readmodel.catch_up(ledger)
        expected = table_rows(readmodel)
        readmodel.cursor().execute(f"UPDATE {META_TABLE} SET layout = 'older'")

    with ReadModel.open(path, timeframes=TIMEFRAMES) as readmodel:
        assert readmodel.catch_up(ledger) == ledger.head()
        assert table_rows(readmodel) == expected
        assert readmodel.cursor().execute(f"SELECT schema_name FROM {META_TABLE}").fetchall() == [("rm2",)]


def test_timeframes_are_reloaded_from_the_configuration_on_open(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "readmodel.duckdb"
    ReadModel.open(path, timeframes=TIMEFRAMES).close()
    with ReadModel.open(path) as readmodel:  # the packaged configs/timeframes.yaml
        selected = readmodel.cursor().execute("SELECT name FROM timeframes WHERE selected ORDER BY minutes").fetchall()
    assert selected == [("H1",), ("H4",), ("D1",)]


def test_old_event_versions_are_upcast_and_payloads_are_readable(
    ledger: Ledger, readmodel: ReadModel, tmp_path: Path
) -> None:
    backtest, _ = ledger.record_outcome(spec(), outcome(n_trades=0, return_dd=None))
    store = sqlite3.connect(tmp_path / "events.sqlite")
    [(rowid, state)] = store.execute("SELECT rowid, state FROM stored_events WHERE topic LIKE '%ResultRecorded'")
    old = json.loads(state)
    for key in ("class_version", "currency", "bars", "margin_cancelled_orders"):  # what a version-1 writer stored
        old.pop(key)
    old["metrics"]["skew"] = float("nan")  # the stdlib encoder writes NaN, which is not JSON
    store.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (json.dumps(old).encode(), rowid))
    store.commit()

    readmodel.catch_up(ledger)

    cur = readmodel.cursor()
    row = q.backtest_by_id(cur, str(backtest))
    assert row is not None and row["currency"] == "USD" and row["bars"] == -1 and row["skew"] is None
    registered, recorded = q.history(cur, str(backtest))
    assert registered["payload"]["date_from"] == "2020-01-01" and "timestamp" not in registered["payload"]
    assert recorded["payload"]["currency"] == "USD" and recorded["payload"]["trades"]["size"] == []
    assert row["margin_cancelled_orders"] is None


def test_orders_cancelled_for_margin_are_projected_and_unknown_for_results_recorded_before_they_were_counted(
    ledger: Ledger, readmodel: ReadModel, tmp_path: Path
) -> None:
    counted, _ = ledger.record_outcome(spec(risk=1), replace(outcome(), margin_cancelled_orders=7))
    ledger.toggle_favorite(counted)  # a second version, which keeps the count
    older, _ = ledger.record_outcome(spec(risk=2), replace(outcome(), margin_cancelled_orders=5))
    store = sqlite3.connect(tmp_path / "events.sqlite")
    [(rowid, state)] = store.execute(
        "SELECT rowid, state FROM stored_events WHERE topic LIKE '%ResultRecorded' AND originator_id = ?",
        [older.hex],
    )
    old = json.loads(state)
    old["class_version"] = 2  # what a version-2 writer stored: no count
    del old["margin_cancelled_orders"]
    store.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (json.dumps(old).encode(), rowid))
    store.commit()

    readmodel.catch_up(ledger)

    cur = readmodel.cursor()
    live = "SELECT id, margin_cancelled_orders FROM backtests ORDER BY risk"
    assert cur.execute(live).fetchall() == [(str(counted), 7), (str(older), None)]
    versions = "SELECT id, margin_cancelled_orders FROM backtest_versions ORDER BY risk, valid_from"
    assert cur.execute(versions).fetchall() == [(str(counted), 7), (str(counted), 7), (str(older), None)]
    assert q.history(cur, str(older))[1]["payload"]["margin_cancelled_orders"] is None


def test_large_payloads_pass_through_unchanged(ledger: Ledger, readmodel: ReadModel) -> None:
    large = outcome(n_trades=300)  # above the size at which the decoder keeps fields raw
    backtest, _ = ledger.record_outcome(spec(), large)
    readmodel.catch_up(ledger)

    [_, recorded] = q.history(readmodel.cursor(), str(backtest))

    assert recorded["payload"] == large.to_json()
    assert len(q.trades_of(readmodel.cursor(), str(backtest))) == 300


def test_opening_an_unchanged_file_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "readmodel.duckdb"
    ReadModel.open(path, timeframes=TIMEFRAMES).close()
    wal = path.with_name(path.name + ".wal")
    with ReadModel.open(path, timeframes=TIMEFRAMES) as readmodel:
        assert not wal.exists()  # a write (the timeframes rewritten) would have started one
        assert readmodel.cursor().execute("SELECT count(*) FROM timeframes").fetchone() == (len(TIMEFRAMES.timeframes),)


def test_a_file_named_like_the_schemas_is_refused_before_it_is_created(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^path: rm1\.duckdb cannot hold a read model"):
        ReadModel.open(tmp_path / "rm1.duckdb", timeframes=TIMEFRAMES)
    assert not (tmp_path / "rm1.duckdb").exists()
    ReadModel.open(tmp_path / "rm1-backup.duckdb", timeframes=TIMEFRAMES).close()
