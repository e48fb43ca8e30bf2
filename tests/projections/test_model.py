"""Model-based: random command sequences on a real event store and a real read model file.

Hypothesis drives the ledger's commands over a small pool of keys. A command the domain refuses must raise
the domain's error and append nothing. After every catch-up (incremental, in batches of any size, across a
reopened file, or a rebuild) each table that mirrors state must hold exactly the rows computed here from the
aggregates: `ledger.get` for the current state, and the aggregate loaded at every version of its history for
the past states (`backtest_versions`, and the ranking as of instants noted along the way). Nothing here
reads the projector's own logic.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import groupby
from pathlib import Path
from statistics import fmean
from typing import Any
from uuid import UUID

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from btledger.bootstrap import open_ledger
from btledger.domain.backtest import MAX_REASON_LENGTH, Backtest, backtest_id
from btledger.domain.errors import Conflict, InvalidInput, LedgerError, NotFound
from btledger.domain.ledger import HistoryEntry
from btledger.engine.result import METRIC_COLUMNS, TRADE_COLUMNS, BacktestOutcome, RunSpec
from btledger.projections import queries as q
from btledger.projections import schema as s
from tests.projections.factories import TIMEFRAMES, open_readmodel, outcome, spec

STRATEGIES = ("SmaCross", "Donchian")
#: D1 is a selected timeframe and M15 is not: rankings consider D1 results only.
KEYS = tuple(
    spec(strategy=name, timeframe=tf, risk=risk) for name in STRATEGIES for tf in ("D1", "M15") for risk in (1, 2)
)
SELECTED = frozenset(tf.name for tf in TIMEFRAMES.timeframes if tf.selected)

outcomes = st.builds(
    outcome,
    # Halves and whole numbers: their averages are exact in DuckDB as in Python.
    return_dd=st.sampled_from([None, 0.5, 1.0, 2.0, 3.0]),
    stability_weighted_rar=st.sampled_from([None, 1.0, 2.0]),
    n_trades=st.integers(0, 3),
)


@dataclass(frozen=True)
class Step:
    """One event of a backtest's history, and the aggregate as it stood right after it."""

    entry: HistoryEntry
    backtest: Backtest


def key_columns(key: RunSpec) -> dict[str, Any]:
    return {name: getattr(key, name) for name in s.KEY_NAMES if name != "id"} | {"params": key.params}


def result_row(steps: list[Step], index: int) -> dict[str, Any] | None:
    """The result as it stood after `steps[index]` (None before its first one), as a `backtests` row without
    `version`, which depends on the earlier steps (see `result_versions`)."""
    backtest = steps[index].backtest
    result = backtest.outcome
    if result is None:
        return None
    recorded = next(step.entry for step in reversed(steps[: index + 1]) if step.entry.event_type == "ResultRecorded")
    return {
        "id": str(backtest.id),
        **key_columns(backtest.spec),
        "favorite": backtest.favorite,
        **{name: result.metrics.get(name) for name in METRIC_COLUMNS},
        "margin_cancelled_orders": result.margin_cancelled_orders,
        "recorded_at": recorded.recorded_at,
        "currency": result.currency,
        "data_source": result.data_source,
        "data_fingerprint": result.data_fingerprint,
        "strategy_fingerprint": result.strategy_fingerprint,
        "bars": result.bars,
        "plot_path": result.plot_path,
    }


def result_versions(steps: list[Step]) -> list[dict[str, Any]]:
    """`backtest_versions` rows: one for each event after which the result's row, or whether it is live,
    differs from what it was before; each valid until the next one."""
    versions: list[dict[str, Any]] = []
    before: tuple[dict[str, Any] | None, bool] = (None, False)
    for index, step in enumerate(steps):
        row, live = result_row(steps, index), step.backtest.status == "recorded"
        if (row, live) != before:
            assert row is not None, "a result never goes away"
            versions.append({**row, "version": step.entry.version, "valid_from": step.entry.recorded_at, "live": live})
            before = (row, live)
    for version, following in zip(versions, [*versions[1:], None], strict=False):
        version["valid_to"] = following["valid_from"] if following else None
    return versions


def result_tables(backtest: Backtest, steps: list[Step]) -> dict[str, list[dict[str, Any]]]:
    """The rows of trades, trade performance and robustness tests of `backtest`'s current result."""
    result = backtest.outcome
    if result is None:
        return {}
    id_ = str(backtest.id)
    count = len(result.trades["entry_bar"])
    tests_recorded_at = {
        step.entry.payload["test_id"]: step.entry.recorded_at
        for step in steps
        if step.entry.event_type == "RobustnessTestRecorded"
    }
    tests = backtest.robustness_tests.items()
    return {
        "trades": [
            {
                "backtest_id": id_,
                "trade_no": number + 1,
                **{name: trade_value(result, name, number) for name in TRADE_COLUMNS},
            }
            for number in range(count)
        ],
        "trade_performance": [{"backtest_id": id_, **result.trade_performance}],
        "robustness_tests": [
            {
                "test_id": test_id,
                "backtest_id": id_,
                "kind": test["kind"],
                "seed": test["seed"],
                "parameters": test["parameters"],
                "summary": test["summary"],
                "recorded_at": tests_recorded_at[test_id],
            }
            for test_id, test in tests
        ],
        "robustness_metrics": [
            {
                "test_id": test_id,
                "backtest_id": id_,
                "metric": metric,
                "value": value if isinstance(value, float) else None,
            }
            for test_id, test in tests
            for metric, value in test["metrics"].items()
        ],
    }


def trade_value(result: BacktestOutcome, column: str, number: int) -> Any:
    value = result.trades[column][number]
    return datetime.fromisoformat(str(value)) if column in ("entry_time", "exit_time") else value


def ranking(rows: list[dict[str, Any]], strategy: str | None = None) -> list[dict[str, Any]]:
    """The robust ranking of live `rows` (the rule of btledger.projections.queries, stated again)."""
    considered = [r for r in rows if r["timeframe"] in SELECTED and strategy in (None, r["strategy"])]
    ranked = []
    for _, pair in groupby(sorted(considered, key=pair_of), pair_of):
        runs = list(pair)
        ratios = [r["return_dd"] for r in runs if r["return_dd"] is not None]
        if ratios and fmean(ratios) > 1:
            best = min(runs, key=best_first)
            ranked.append({**best, "pair_avg_return_dd": fmean(ratios)})
    return sorted(ranked, key=best_first)


def pair_of(row: dict[str, Any]) -> tuple[str, str]:
    return row["strategy"], row["ticker"]


def best_first(row: dict[str, Any]) -> tuple[bool, float, bool, float, str]:
    """Higher stability-weighted RAR, then higher return/drawdown, NULLs last; then the smaller id."""
    rar, ratio = row["stability_weighted_rar"], row["return_dd"]
    return (rar is None, -(rar or 0.0), ratio is None, -(ratio or 0.0), row["id"])


def as_listed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as the queries list them: times as ISO-8601 UTC text, dates as ISO text."""

    def listed(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"
        return value.isoformat() if isinstance(value, date) else value

    return [{name: listed(value) for name, value in row.items()} for row in rows]


def in_order(table: s.Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: [str(row[name]) for name in table.column_names if name != "payload"])


class LedgerAndReadModel(RuleBasedStateMachine):
    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self.ledger = open_ledger(directory)
        self.readmodel = open_readmodel(directory / "readmodel.duckdb")
        #: Instants to ask the ranking "as of"; the first precedes every event.
        self.instants = [datetime.now(UTC)]
        self.test_numbers = itertools.count(1)
        #: Keys with events, in the order they got them.
        self.registered: list[RunSpec] = []
        #: Past versions of an aggregate never change: each is loaded once.
        self.loaded: dict[tuple[UUID, int], Backtest] = {}

    def teardown(self) -> None:
        try:
            self.readmodel.catch_up(self.ledger)
            # Each state holds from its event's instant on: ask as of every one, once per example.
            self.check(as_of_every_event=True)
        finally:
            self.readmodel.close()
            self.ledger.close()
            shutil.rmtree(self.directory)

    # --- commands ----------------------------------------------------------------------------------

    @contextmanager
    def appending(self, events: int) -> Iterator[None]:
        head = self.ledger.head()
        yield
        assert self.ledger.head() == head + events

    @contextmanager
    def refused(self, error: type[LedgerError], field: str | None = "id") -> Iterator[None]:
        """The command raises `error` naming `field`, and the ledger is as it was."""
        head = self.ledger.head()
        with pytest.raises(error) as raised:
            yield
        assert getattr(raised.value, "field", None) == field
        assert self.ledger.head() == head

    def run_of(self, key: RunSpec, if_absent: bool) -> AbstractContextManager[None]:
        """Appending a run: Registered too for a new key; nothing `if_absent` when the key is settled (a live
        result, or deleted)."""
        before = self.ledger.find(key)
        settled = before is not None and before.status in ("recorded", "deleted")
        if before is None:
            self.registered.append(key)
        return self.appending(0 if if_absent and settled else 1 if before else 2)

    @rule(key=st.sampled_from(KEYS), result=outcomes, if_absent=st.booleans())
    def record_result(self, key: RunSpec, result: BacktestOutcome, if_absent: bool) -> None:
        with self.run_of(key, if_absent):
            self.ledger.record_outcome(key, result, if_absent=if_absent)

    @rule(key=st.sampled_from(KEYS), error=st.sampled_from(["no data", "engine crashed"]), if_absent=st.booleans())
    def record_failure(self, key: RunSpec, error: str, if_absent: bool) -> None:
        with self.run_of(key, if_absent):
            self.ledger.record_failure(key, error, if_absent=if_absent)

    def registered_one(self, data: st.DataObject) -> Backtest:
        backtest = self.ledger.find(data.draw(st.sampled_from(self.registered), label="key"))
        assert backtest is not None
        return backtest

    @precondition(lambda self: self.registered)
    @rule(data=st.data())
    def toggle_favorite(self, data: st.DataObject) -> None:
        before = self.registered_one(data)
        if before.outcome is None or before.deleted:
            with self.refused(Conflict):
                self.ledger.toggle_favorite(before.id)
        else:
            with self.appending(1):
                favorite, _ = self.ledger.toggle_favorite(before.id)
            assert favorite is not before.favorite

    @precondition(lambda self: self.registered)
    @rule(data=st.data(), reason=st.sampled_from(["a mistake", "", "   ", "x" * (MAX_REASON_LENGTH + 1)]))
    def delete(self, data: st.DataObject, reason: str) -> None:
        before = self.registered_one(data)
        if not reason.strip() or len(reason) > MAX_REASON_LENGTH:
            with self.refused(InvalidInput, field="reason"):
                self.ledger.delete(before.id, reason)
        elif before.status not in ("recorded", "failed"):
            with self.refused(Conflict):
                self.ledger.delete(before.id, reason)
        else:
            with self.appending(1):
                self.ledger.delete(before.id, reason)

    @precondition(lambda self: self.registered)
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        before = self.registered_one(data)
        if not before.deleted:
            with self.refused(Conflict):
                self.ledger.restore(before.id)
        else:
            with self.appending(1):
                self.ledger.restore(before.id)

    @precondition(lambda self: self.registered)
    @rule(data=st.data(), kind=st.sampled_from(["montecarlo", "luck", "random"]))
    def record_robustness_test(self, data: st.DataObject, kind: str) -> None:
        before = self.registered_one(data)
        if before.status != "recorded":
            with self.refused(Conflict):
                self.ledger.record_robustness_test(before.id, **self.robustness_test(kind))
        else:
            with self.appending(1):
                self.ledger.record_robustness_test(before.id, **self.robustness_test(kind))

    def robustness_test(self, kind: str) -> dict[str, Any]:
        number = next(self.test_numbers)
        return {
            "test_id": f"test-{number}",
            "kind": kind,
            "parameters": {"paths": 10 * number},
            "seed": number,
            "summary": {"headline": f"run {number}"},
            "metrics": {"p_value": number / 64, "verdict": "pass"},
        }

    @precondition(lambda self: self.registered)
    @rule(strategy=st.sampled_from(STRATEGIES))
    def delete_strategy(self, strategy: str) -> None:
        keys = [self.ledger.find(key) for key in KEYS if key.strategy == strategy]
        deletable = {b.id for b in keys if b is not None and b.status in ("recorded", "failed")}
        with self.appending(len(deletable)):
            deleted, _ = self.ledger.delete_strategy(strategy)
        assert set(deleted) == deletable

    @precondition(lambda self: len(self.registered) < len(KEYS))
    @rule(data=st.data(), command=st.sampled_from(["favorite", "delete", "restore", "test"]))
    def refuse_an_unknown_key(self, data: st.DataObject, command: str) -> None:
        key = data.draw(st.sampled_from([key for key in KEYS if key not in self.registered]), label="key")
        unknown = backtest_id(key)
        with self.refused(NotFound):
            if command == "favorite":
                self.ledger.toggle_favorite(unknown)
            elif command == "delete":
                self.ledger.delete(unknown, "a mistake")
            elif command == "restore":
                self.ledger.restore(unknown)
            else:
                self.ledger.record_robustness_test(unknown, **self.robustness_test("luck"))

    @precondition(lambda self: len(self.instants) < 5)
    @rule(of_the_last_event=st.booleans())
    def note_the_time(self, of_the_last_event: bool) -> None:
        """Note now, or the instant of the newest event: a state holds from its event's instant on."""
        head = self.ledger.head()
        if of_the_last_event and head:
            [newest] = self.ledger.recorder.select_notifications(start=head, limit=1)
            event = self.ledger.mapper.to_domain_event(newest)
            assert isinstance(event, Backtest.Event)
            self.instants.append(event.timestamp)
        else:
            self.instants.append(datetime.now(UTC))

    @rule(batch_size=st.sampled_from([1, 2, 3, 4000]))
    def reopen(self, batch_size: int) -> None:
        """Close the read model file and open it again, projecting in batches of `batch_size` events."""
        self.readmodel.close()
        self.readmodel = open_readmodel(self.directory / "readmodel.duckdb", batch_size=batch_size)

    @rule(how=st.sampled_from(["catch up", "rebuild"]))
    def project(self, how: str) -> None:
        position = self.readmodel.catch_up(self.ledger) if how == "catch up" else self.readmodel.rebuild(self.ledger)
        assert position == self.readmodel.position() == self.ledger.head()
        self.check()

    # --- the check -----------------------------------------------------------------------------------

    def steps_of(self, id_: UUID) -> list[Step]:
        """Every event of one backtest with the aggregate loaded at its version; the last one is `ledger.get`."""
        history = self.ledger.history(id_)
        current = self.ledger.get(id_)
        assert current.version == history[-1].version
        steps = []
        for entry in history[:-1]:
            loaded = self.loaded.get((id_, entry.version))
            if loaded is None:
                loaded = self.loaded[id_, entry.version] = self.ledger.repository.get(id_, version=entry.version)
            steps.append(Step(entry, loaded))
        return [*steps, Step(history[-1], current)]

    def check(self, as_of_every_event: bool = False) -> None:
        histories = {id_: self.steps_of(id_) for id_ in self.ledger.backtest_ids()}
        expected: dict[str, list[dict[str, Any]]] = {table.name: [] for table in s.TABLES}
        for id_, steps in histories.items():
            current = steps[-1].backtest
            entries = [step.entry for step in steps]
            expected["backtest_keys"].append(
                {
                    "id": str(id_),
                    **key_columns(current.spec),
                    "registered_at": entries[0].recorded_at,
                    "status": current.status,
                    "favorite": current.favorite,
                    "deleted": current.deleted,
                    "results": sum(entry.event_type == "ResultRecorded" for entry in entries),
                    "last_error": current.last_error,
                }
            )
            expected["ledger_events"] += [
                {
                    "position": entry.position,
                    "recorded_at": entry.recorded_at,
                    "event_type": entry.event_type,
                    "backtest_id": str(id_),
                    "strategy": current.spec.strategy,
                    "version": entry.version,
                }
                for entry in entries
            ]
            versions = result_versions(steps)
            expected["backtest_versions"] += versions
            if current.status == "recorded":
                row = result_row(steps, len(steps) - 1)
                assert row is not None
                expected["backtests"].append({**row, "version": versions[-1]["version"]})
            archive = "deleted_" if current.deleted else ""
            for name, rows in result_tables(current, steps).items():
                expected[archive + name] += rows

        cur = self.readmodel.cursor()
        for table in s.TABLES:
            if table.name in ("timeframes", "projection_positions"):
                continue
            columns = [name for name in table.column_names if name != "payload"]
            stored = q.query(cur, f"SELECT {', '.join(columns)} FROM {table.name}")
            assert in_order(table, stored) == in_order(table, expected[table.name]), table.name

        live = expected["backtests"]
        assert q.robust_ranking(cur) == as_listed(ranking(live))
        assert q.robust_ranking(cur, strategy=STRATEGIES[0]) == as_listed(ranking(live, STRATEGIES[0]))
        by_ratio = sorted(live, key=lambda r: (r["return_dd"] is None, -(r["return_dd"] or 0.0), r["id"]))
        assert q.filtered_search(cur) == (len(live), as_listed(by_ratio))
        favourites = [r for r in by_ratio if r["favorite"] and r["return_dd"] is not None and r["return_dd"] >= 2]
        assert q.filtered_search(cur, favorite_only=True, min_return_dd=2) == (len(favourites), as_listed(favourites))

        instants = self.instants
        if as_of_every_event:
            instants = instants + sorted({step.entry.recorded_at for steps in histories.values() for step in steps})
        for instant in instants:
            then = [row for steps in histories.values() if (row := self.live_row_as_of(steps, instant))]
            assert q.robust_ranking(cur, as_of=instant) == as_listed(ranking(then)), instant
            assert q.robust_ranking(cur, STRATEGIES[1], instant) == as_listed(ranking(then, STRATEGIES[1])), instant

    @staticmethod
    def live_row_as_of(steps: list[Step], instant: datetime) -> dict[str, Any] | None:
        """The `backtests` row of the result as it stood at `instant` (replayed to its last event by then),
        or None when it was not live then."""
        past = [index for index, step in enumerate(steps) if step.entry.recorded_at <= instant]
        if not past or steps[past[-1]].backtest.status != "recorded":
            return None
        row = result_row(steps, past[-1])
        assert row is not None
        version = max(v["version"] for v in result_versions(steps) if v["version"] <= steps[past[-1]].entry.version)
        return {**row, "version": version}


def test_the_read_model_always_equals_the_aggregates(tmp_path: Path) -> None:
    examples = itertools.count()

    class InTmpPath(LedgerAndReadModel):
        def __init__(self) -> None:
            super().__init__(tmp_path / f"example-{next(examples)}")

    run_state_machine_as_test(
        InTmpPath,
        settings=settings(max_examples=25, stateful_step_count=30, deadline=None, derandomize=True, database=None),
    )
