"""The ledger's commands on a real SQLite event store file, and those marked `on_each_store` on PostgreSQL too."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Snapshot
from typer.testing import CliRunner

from btledger.api.cli import app
from btledger.domain.backtest import STRATEGY_DELETED, Backtest, backtest_id
from btledger.domain.errors import Conflict, NotFound, StoreUnavailable
from btledger.domain.ledger import Ledger, store_env
from btledger.engine.result import BacktestOutcome
from tests.domain.factories import outcome, spec
from tests.postgres import free_port, on_each_store
from tests.reliability.test_concurrency import replay

A = TypeVar("A")
R = TypeVar("R")


def cancelled(result: BacktestOutcome, orders: int | None) -> BacktestOutcome:
    return replace(result, margin_cancelled_orders=orders)


def test_record_writes_to_a_sqlite_file_and_derives_the_id_from_the_key(ledger: Ledger, btledger_home: Path) -> None:
    identity, position = ledger.record_outcome(spec(), outcome())
    assert identity == backtest_id(spec())
    assert position == 2  # Registered, then ResultRecorded
    rows = sqlite3.connect(btledger_home / "events.sqlite").execute("SELECT count(*) FROM stored_events").fetchone()
    assert rows == (2,)
    assert ledger.get(identity).status == "recorded"


def test_a_key_planned_as_new_but_registered_meanwhile_gets_the_result_appended(ledger: Ledger) -> None:
    identity, _ = Ledger(env=ledger.env).record_outcome(spec(), outcome(return_pct=1.0))  # the other writer
    again, _ = ledger.record_outcome(spec(), outcome(return_pct=2.0), new=True)  # conflicts, then looks it up
    assert again == identity
    history = ledger.history(identity)
    assert [h.event_type for h in history] == ["Registered", "ResultRecorded", "ResultRecorded"]
    recorded = ledger.get(identity).outcome
    assert recorded is not None and recorded.metrics["return_pct"] == 2.0


@on_each_store
def test_recorded_ids_names_the_ids_with_events_among_many(ledger: Ledger) -> None:
    recorded, _ = ledger.record_outcome(spec(), outcome())
    failed, _ = ledger.record_failure(spec(risk=2.0), "boom")
    strangers = {uuid4() for _ in range(1200)}  # three queries' worth
    assert ledger.recorded_ids(strangers | {recorded, failed}) == {recorded, failed}
    assert ledger.recorded_ids(strangers) == set()


def test_the_key_includes_cash_params_and_method(ledger: Ledger) -> None:
    base = spec()
    variants = [
        base.__class__(**{**base.__dict__, "initial_cash": 50_000.0}),
        base.__class__(**{**base.__dict__, "params": {"n1": 5}}),
        base.__class__(**{**base.__dict__, "method": "wfo"}),
    ]
    ids = {backtest_id(base), *(backtest_id(v) for v in variants)}
    assert len(ids) == 4


@on_each_store
def test_rerun_appends_a_new_result_to_the_same_history(ledger: Ledger) -> None:
    identity, _ = ledger.record_outcome(spec(), outcome(return_pct=1.0))
    ledger.record_outcome(spec(), outcome(return_pct=2.0))
    aggregate = ledger.get(identity)
    assert aggregate.outcome is not None and aggregate.outcome.metrics["return_pct"] == 2.0
    assert [h.event_type for h in ledger.history(identity)] == ["Registered", "ResultRecorded", "ResultRecorded"]


@on_each_store
def test_favourite_twice_carries_the_resulting_value(ledger: Ledger) -> None:
    identity, _ = ledger.record_outcome(spec(), outcome())
    assert ledger.toggle_favorite(identity)[0] is True
    assert ledger.toggle_favorite(identity)[0] is False
    payloads = [h.payload for h in ledger.history(identity) if h.event_type == "FavoriteToggled"]
    assert payloads == [{"favorite": True}, {"favorite": False}]


@on_each_store
def test_a_key_without_a_result_cannot_be_marked_favourite(ledger: Ledger) -> None:
    failed, position = ledger.record_failure(spec(), "no data")
    with pytest.raises(Conflict, match="has no result to mark"):
        ledger.toggle_favorite(failed)
    assert ledger.head() == position  # nothing appended
    assert ledger.get(failed).favorite is False


@on_each_store
def test_delete_and_restore_keep_the_history(ledger: Ledger) -> None:
    identity, _ = ledger.record_outcome(spec(), outcome())
    ledger.delete(identity, reason="bad data")
    assert ledger.get(identity).status == "deleted"
    with pytest.raises(Conflict):
        ledger.delete(identity)
    ledger.restore(identity)
    assert ledger.get(identity).status == "recorded"
    with pytest.raises(Conflict, match="not deleted"):
        ledger.restore(identity)
    history = ledger.history(identity)
    assert [h.event_type for h in history] == ["Registered", "ResultRecorded", "Deleted", "Restored"]
    assert history[2].payload == {"reason": "bad data"}
    assert [h.position for h in history] == sorted(h.position for h in history)


@on_each_store
def test_delete_strategy_deletes_every_live_result_and_failed_key_in_one_save(ledger: Ledger) -> None:
    kept, _ = ledger.record_outcome(spec(strategy="Other"), outcome())
    kept_failed, _ = ledger.record_failure(spec(strategy="Other", risk=2.0), "no data")
    ids = [ledger.record_outcome(spec(ticker=t), outcome())[0] for t in ("EURUSD", "GOOG", "BTCUSD")]
    ledger.delete(ids[0])
    # A key whose runs all failed is deleted with the strategy (its batches stop retrying it); one that
    # has a live result and then failed is deleted once, as a result.
    failed, _ = ledger.record_failure(spec(risk=2.0), "no data")
    ledger.record_failure(spec(ticker="GOOG"), "boom")
    deleted, position = ledger.delete_strategy("SmaCross")
    expected = [*ids[1:], failed]
    assert sorted(deleted) == sorted(expected)
    # Atomic: the deletions were written in one transaction, at consecutive positions ending at `position`.
    positions = sorted(ledger.history(i)[-1].position for i in expected)
    assert positions == [position - 2, position - 1, position]
    assert all(ledger.history(i)[-1].payload == {"reason": STRATEGY_DELETED} for i in expected)
    # At one moment too: a ranking as of any time sees the strategy's results all deleted or all live.
    assert len({ledger.history(i)[-1].recorded_at for i in expected}) == 1
    assert {ledger.get(i).status for i in expected} == {"deleted"}
    assert ledger.get(kept).status == "recorded" and ledger.get(kept_failed).status == "failed"
    # A result recorded later for the strategy is live again.
    later, _ = ledger.record_outcome(spec(ticker="AAPL"), outcome())
    assert ledger.get(later).status == "recorded"


def test_a_key_whose_runs_all_failed_is_deleted_and_restored_to_failed(ledger: Ledger) -> None:
    identity, _ = ledger.record_failure(spec(), "no data")
    position = ledger.delete(identity, reason="no H1 data for it")
    aggregate = ledger.get(identity)
    assert aggregate.status == "deleted" and aggregate.outcome is None and aggregate.settled
    with pytest.raises(Conflict, match="already deleted"):
        ledger.delete(identity)
    with pytest.raises(Conflict, match="has no result to mark"):
        ledger.toggle_favorite(identity)
    assert ledger.head() == position  # the refusals appended nothing
    ledger.restore(identity)
    assert ledger.get(identity).status == "failed" and not ledger.get(identity).settled
    history = ledger.history(identity)
    assert [h.event_type for h in history] == ["Registered", "RunFailed", "Deleted", "Restored"]
    assert history[2].payload == {"reason": "no H1 data for it"}


def test_a_deleted_failed_key_stays_deleted_when_a_rerun_fails_and_is_live_when_one_records(ledger: Ledger) -> None:
    identity, _ = ledger.record_failure(spec(), "no data")
    ledger.delete(identity)
    ledger.record_failure(spec(), "no data still")
    assert ledger.get(identity).status == "deleted"
    ledger.record_outcome(spec(), outcome())
    assert ledger.get(identity).status == "recorded"


@on_each_store
def test_a_run_for_a_key_deleted_since_the_plan_is_dropped_unless_rerun(ledger: Ledger) -> None:
    identity, _ = ledger.record_failure(spec(), "no data")
    position = ledger.delete(identity)
    assert ledger.record_outcome(spec(), outcome(), if_absent=True) is None
    assert ledger.record_failure(spec(), "no data", if_absent=True) is None
    assert ledger.head() == position
    ledger.record_failure(spec(), "no data")
    assert [h.event_type for h in ledger.history(identity)] == ["Registered", "RunFailed", "Deleted", "RunFailed"]


def test_a_key_that_has_not_run_cannot_be_deleted(ledger: Ledger) -> None:
    registered = Backtest.register(spec())  # saved without a run, which no command does
    ledger.save(registered)
    head = ledger.head()
    with pytest.raises(Conflict, match="has not run yet: nothing to delete"):
        ledger.delete(registered.id)
    assert ledger.head() == head and ledger.get(registered.id).status == "pending"


def test_failure_is_recorded_and_a_later_result_replaces_it(ledger: Ledger) -> None:
    identity, _ = ledger.record_failure(spec(), "boom")
    assert ledger.get(identity).status == "failed"
    ledger.record_outcome(spec(), outcome())
    assert ledger.get(identity).status == "recorded"


@on_each_store
def test_unknown_ids_and_prefixes(ledger: Ledger) -> None:
    identity, _ = ledger.record_outcome(spec(), outcome())
    assert ledger.resolve(str(identity)[:6]) == identity
    assert ledger.resolve(str(identity).upper()) == identity
    with pytest.raises(NotFound):
        ledger.resolve("00000000-0000-0000-0000-000000000000")
    with pytest.raises(NotFound, match="at least 4"):
        ledger.resolve("ab")
    with pytest.raises(NotFound):
        ledger.resolve("../etc/passwd")
    with pytest.raises(NotFound):
        ledger.toggle_favorite(UUID(int=1))


def test_an_ambiguous_prefix_names_the_backtests_it_matches(ledger: Ledger) -> None:
    first_risk: dict[str, float] = {}
    for cents in range(1, 10_001):  # two keys whose ids share their first 4 hex digits
        prefix = str(backtest_id(spec(risk=cents / 100)))[:4]
        if prefix in first_risk:
            break
        first_risk[prefix] = cents / 100
    twins = sorted(
        str(ledger.record_outcome(spec(risk=risk), outcome())[0]) for risk in (first_risk[prefix], cents / 100)
    )
    with pytest.raises(NotFound) as refused:
        ledger.resolve(prefix)
    assert str(refused.value) == f"id prefix {prefix!r} is ambiguous: it matches 2 backtests ({twins[0]}, {twins[1]})"


def test_an_ambiguous_prefix_lists_ten_of_the_backtests_it_matches_and_counts_the_rest(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Twelve ids sharing 4 hex digits take some 200,000 results to come by: the ledger is given its ids.
    ids = [UUID(f"abcd{n:028x}") for n in range(12, 0, -1)]
    monkeypatch.setattr(ledger, "backtest_ids", lambda: ids)
    with pytest.raises(NotFound) as refused:
        ledger.resolve("abcd")
    listed = ", ".join(sorted(map(str, ids))[:10])
    assert str(refused.value) == f"id prefix 'abcd' is ambiguous: it matches 12 backtests ({listed}, and 2 more)"


@on_each_store
def test_concurrent_toggles_from_threads_lose_nothing(ledger: Ledger) -> None:
    identity, _ = ledger.record_outcome(spec(), outcome())
    threads = [threading.Thread(target=lambda: [ledger.toggle_favorite(identity) for _ in range(10)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    history = ledger.history(identity)
    toggles = [h.payload["favorite"] for h in history if h.event_type == "FavoriteToggled"]
    assert len(toggles) == 40
    # Each toggle saw the state left by the one before it.
    assert toggles == [i % 2 == 0 for i in range(40)]
    assert ledger.get(identity).favorite is False


@on_each_store
def test_a_toggle_and_a_deletion_racing_on_one_result_lose_neither(ledger: Ledger) -> None:
    identity, _ = ledger.record_outcome(spec(), outcome())
    start = threading.Barrier(2)
    answered: dict[str, list[int]] = defaultdict(list)
    refused: list[Conflict] = []

    def toggle() -> None:
        start.wait()
        for _ in range(20):
            try:
                answered["FavoriteToggled"].append(ledger.toggle_favorite(identity)[1])
            except Conflict as refusal:  # deleted at that moment
                refused.append(refusal)

    def delete_and_restore() -> None:
        start.wait()
        for _ in range(10):
            answered["Deleted"].append(ledger.delete(identity))
            answered["Restored"].append(ledger.restore(identity))

    threads = [threading.Thread(target=toggle), threading.Thread(target=delete_and_restore)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answered["FavoriteToggled"]) + len(refused) == 20
    assert all("is deleted; restore it first" in str(refusal) for refusal in refused)
    history = ledger.history(identity)
    # Every answered change is one event at the position it reported, and every such event was answered.
    for event_type, positions in answered.items():
        assert [h.position for h in history if h.event_type == event_type] == positions
    # Each change saw the state the one before it left (a lost update would repeat a flag).
    favorite, deleted = replay(history)
    aggregate = ledger.get(identity)
    assert (
        (aggregate.favorite, aggregate.deleted)
        == (favorite, deleted)
        == (len(answered["FavoriteToggled"]) % 2 == 1, False)
    )


@on_each_store
def test_history_positions_are_the_notification_ids_of_the_results_events(ledger: Ledger) -> None:
    identity, _ = ledger.record_outcome(spec(), outcome())
    other, _ = ledger.record_outcome(spec(risk=2.0), outcome())  # another result's events in between
    ledger.toggle_favorite(identity)
    ledger.delete(other)
    ledger.record_outcome(spec(), outcome(return_pct=2.0))
    notifications = ledger.recorder.select_notifications(start=1, limit=100)
    expected = [(n.id, n.originator_version) for n in notifications if UUID(str(n.originator_id)) == identity]
    history = ledger.history(identity)
    assert [(h.position, h.version) for h in history] == expected
    assert [h.position for h in history] == [1, 2, 5, 7] and history[-1].position == ledger.head()


def at_once(function: Callable[[A], R], arguments: list[A]) -> list[R]:
    """`function` on each argument, each on a thread of its own, all released at the same moment."""
    start = threading.Barrier(len(arguments))

    def released(argument: A) -> R:
        start.wait()
        return function(argument)

    with ThreadPoolExecutor(len(arguments)) as pool:
        return list(pool.map(released, arguments))


@on_each_store
def test_ledgers_opened_at_once_on_a_fresh_store_all_open(event_store: str, btledger_home: Path) -> None:
    """On PostgreSQL each creates the tables, at the same moment (see `_created_despite_a_race`)."""

    def open_and_record(risk: float) -> int:
        ledger = Ledger(env=store_env(btledger_home))
        try:
            return ledger.record_outcome(spec(risk=risk), outcome())[1]
        finally:
            ledger.close()

    positions = at_once(open_and_record, [1.0, 2.0, 3.0, 4.0])
    assert sorted(positions) == [2, 4, 6, 8]


def test_sqlite_ledgers_opened_at_once_on_fresh_files_all_open(tmp_path: Path) -> None:
    """SQLite refuses a second connection's switch to WAL mode at once, without waiting out the busy timeout
    (about 1 in 25 fresh files with 4 opening at once, before `_switch_to_wal_despite_a_race`): 60 rounds."""
    for round_ in range(60):
        home = tmp_path / str(round_)
        at_once(lambda directory: Ledger(env=store_env(directory)).close(), [home] * 4)
        with sqlite3.connect(home / "events.sqlite") as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize("event_store", ["postgres"], indirect=True)
@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("POSTGRES_PORT", "a closed port", "Connection refused"),
        ("POSTGRES_DBNAME", "no_such_ledger", 'database "no_such_ledger" does not exist'),
    ],
)
def test_a_postgresql_store_that_cannot_be_reached_is_refused_at_once_with_the_servers_reason(
    event_store: str, btledger_home: Path, monkeypatch: pytest.MonkeyPatch, setting: str, value: str, says: str
) -> None:
    """Not after the library's pool has waited POSTGRES_CONNECT_TIMEOUT (30 s) to say it "couldn't get a
    connection"; and the CLI says it in one line."""
    # Picked now, with the server listening: a port nothing listens on, the server's not among them.
    monkeypatch.setenv(setting, str(free_port()) if value == "a closed port" else value)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as refused:
        Ledger(env=store_env(btledger_home))
    assert time.monotonic() - started < 10
    message = str(refused.value)
    assert message.startswith("event store: cannot connect to PostgreSQL postgres@127.0.0.1:")
    assert "POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DBNAME" in message and says in message

    failed = CliRunner().invoke(app, ["history", "0000"])
    assert failed.exit_code == 1
    assert failed.stderr == f"error: {message}\n"


TOGGLER = """
import sys
from pathlib import Path
from uuid import UUID
from btledger.domain.ledger import Ledger, store_env
ledger = Ledger(env=store_env(Path(sys.argv[1])))
for _ in range(int(sys.argv[3])):
    ledger.toggle_favorite(UUID(sys.argv[2]))
"""


@on_each_store
def test_concurrent_toggles_from_two_processes_lose_nothing(ledger: Ledger, btledger_home: Path) -> None:
    identity, _ = ledger.record_outcome(spec(), outcome())
    procs = [
        subprocess.Popen([sys.executable, "-c", TOGGLER, str(btledger_home), str(identity), "15"]) for _ in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    toggles = [h.payload["favorite"] for h in ledger.history(identity) if h.event_type == "FavoriteToggled"]
    assert toggles == [i % 2 == 0 for i in range(30)]


def forge_result_event(home: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite the stored state of the one ResultRecorded event with `change`."""
    database = sqlite3.connect(home / "events.sqlite")
    topic = f"{Backtest.ResultRecorded.__module__}:{Backtest.ResultRecorded.__qualname__}"
    (state,) = database.execute("SELECT state FROM stored_events WHERE topic = ?", (topic,)).fetchone()
    old = json.loads(state)
    change(old)
    database.execute("UPDATE stored_events SET state = ? WHERE topic = ?", (json.dumps(old).encode(), topic))
    database.commit()


def test_an_old_version_of_a_result_event_is_upcast(ledger: Ledger, btledger_home: Path) -> None:
    identity, _ = ledger.record_outcome(spec(), cancelled(outcome(), 7))

    def version_1(state: dict[str, Any]) -> None:
        # What a version-1 writer stored: no class_version, no currency, no bar count, no cancellations.
        for key in ("class_version", "currency", "bars", "margin_cancelled_orders"):
            state.pop(key)

    forge_result_event(btledger_home, version_1)
    reloaded = Ledger(env=store_env(btledger_home)).get(identity)
    assert reloaded.outcome is not None
    assert reloaded.outcome.currency == "USD"
    assert reloaded.outcome.metrics == outcome().metrics
    assert reloaded.outcome.margin_cancelled_orders is None


def test_a_version_2_result_event_holds_an_unknown_count_of_margin_cancellations(
    ledger: Ledger, btledger_home: Path
) -> None:
    identity, _ = ledger.record_outcome(spec(), cancelled(outcome(), 7))
    assert Ledger(env=store_env(btledger_home)).get(identity).outcome == cancelled(outcome(), 7)

    def version_2(state: dict[str, Any]) -> None:
        assert state["class_version"] == 3 and state["margin_cancelled_orders"] == 7
        state["class_version"] = 2
        del state["margin_cancelled_orders"]

    forge_result_event(btledger_home, version_2)
    # Not counted then, so unknown: not 0, which would claim none was cancelled.
    assert Ledger(env=store_env(btledger_home)).get(identity).outcome == cancelled(outcome(), None)


@on_each_store
def test_a_long_history_is_snapshotted_and_replays_from_the_snapshot(ledger: Ledger, btledger_home: Path) -> None:
    identity, _ = ledger.record_outcome(spec(), outcome())
    for _ in range(59):
        ledger.toggle_favorite(identity)
    assert ledger.snapshots is not None
    (snapshot,) = ledger.snapshots.get(identity)
    assert isinstance(snapshot, Snapshot)
    at_50 = snapshot.mutate(None)  # the state as stored and read back: 48 toggles after the result
    assert isinstance(at_50, Backtest)
    assert (at_50.version, at_50.favorite, at_50.outcome) == (50, False, outcome())
    another = Ledger(env=store_env(btledger_home))  # nothing cached: reads the snapshot, then 11 events
    try:
        reloaded = another.get(identity)
        # The notification log and the history are untouched by snapshots.
        history = another.history(identity)
    finally:
        another.close()
    assert reloaded.version == 61 and reloaded.favorite is True
    assert reloaded.spec == spec() and reloaded.outcome == outcome()
    assert [entry.version for entry in history] == list(range(1, 62))
    assert [entry.position for entry in history] == list(range(1, 62))


def test_a_snapshot_taken_before_margin_cancellations_were_counted_replays(ledger: Ledger, btledger_home: Path) -> None:
    identity, _ = ledger.record_outcome(spec(), cancelled(outcome(), 7))
    for _ in range(49):
        ledger.toggle_favorite(identity)
    database = sqlite3.connect(btledger_home / "events.sqlite")
    (state,) = database.execute("SELECT state FROM stored_snapshots").fetchone()
    snapshot = json.loads(state)
    assert snapshot["state"]["outcome"]["_data_"].pop("margin_cancelled_orders") == 7  # as an older writer stored it
    database.execute("UPDATE stored_snapshots SET state = ?", (json.dumps(snapshot).encode(),))
    database.commit()
    reloaded = Ledger(env=store_env(btledger_home)).get(identity)
    assert reloaded.version == 51 and reloaded.outcome == cancelled(outcome(), None)
