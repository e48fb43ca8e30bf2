"""RunBatch end to end on the real engine, worker pool and SQLite store, including a SIGKILL mid-batch."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from btledger.bootstrap import projecting
from btledger.domain import commands
from btledger.domain.backtest import backtest_id
from btledger.domain.batch import Progress, run_batches
from btledger.domain.commands import RunBatch, parse, parse_plan
from btledger.domain.errors import InvalidInput
from btledger.domain.ledger import Ledger, store_env
from btledger.engine.interrupt import Interrupt
from btledger.engine.pool import WorkerPool
from btledger.engine.registry import StrategyEntry
from btledger.engine.result import BacktestOutcome, JsonScalar, RunSpec
from btledger.projections.queries import filtered_search
from btledger.projections.readmodel import ReadModel
from tests.postgres import on_each_store

BATCH = {
    "strategies": ["SmaCross", "DonchianBreakout"],
    "tickers": ["EURUSD", "GOOG"],
    "timeframes": ["H4", "D1"],
    "risks": [1.0],
    "date_from": "2017-05-01",
    "date_to": "2018-02-01",
}


def test_a_failing_combination_is_recorded_and_the_others_go_on(ledger: Ledger, btledger_home: Path) -> None:
    # GOOG's sample data is daily and ends in 2013: its H4 runs ask for a finer timeframe than the data
    # has and its D1 runs for an empty range. Both fail; the EURUSD runs go on.
    command = parse(RunBatch, BATCH)
    seen: list[Progress] = []
    with WorkerPool(2) as pool:
        report = run_batches(ledger, [command], pool, btledger_home, seen.append)
    assert report.summary == {"recorded": 4, "skipped": 0, "failed": 4}
    failed = [r for r in report.results if r.status == "failed"]
    assert {r.spec.ticker for r in failed} == {"GOOG"}
    assert all((r.message or "").strip() for r in failed)
    statuses = Counter(p.status for p in seen)
    assert statuses["queued"] == 8 and statuses["running"] == 8
    assert {ledger.get(r.id).status for r in failed} == {"failed"}

    # The same batch again: recorded ones are skipped, failed ones are tried again without rerun.
    with WorkerPool(1) as pool:
        again = run_batches(ledger, [command], pool, btledger_home)
    assert again.summary == {"recorded": 0, "skipped": 4, "failed": 4}
    events = [h.event_type for h in ledger.history(failed[0].id)]
    assert events == ["Registered", "RunFailed", "RunFailed"]


@on_each_store
def test_a_batch_recorded_in_the_store_is_projected_into_the_read_model(ledger: Ledger, btledger_home: Path) -> None:
    command = parse(RunBatch, {**BATCH, "tickers": ["EURUSD"], "timeframes": ["H4"]})
    with WorkerPool(2) as pool, projecting(ledger, btledger_home) as project:
        report = run_batches(ledger, [command], pool, btledger_home, project)
    assert report.summary == {"recorded": 2, "skipped": 0, "failed": 0}
    with ReadModel.open(btledger_home / "readmodel.duckdb") as readmodel:
        page = filtered_search(readmodel.cursor(), sort="return_pct")
        assert readmodel.position() == report.last_position == ledger.head()
    assert {(item["id"], item["strategy"], item["return_pct"]) for item in page.items} == {
        (str(r.id), r.spec.strategy, (r.metrics or {})["return_pct"]) for r in report.results
    }
    with WorkerPool(1) as pool:
        again = run_batches(ledger, [command], pool, btledger_home)
    assert again.summary == {"recorded": 0, "skipped": 2, "failed": 0}


#: Each ticker over its own data's range: two batches, one plan.
PLAN = {
    "batches": [
        {**BATCH, "tickers": ["EURUSD"], "timeframes": ["H4"]},
        {
            **BATCH,
            "strategies": ["SmaCross"],
            "tickers": ["GOOG"],
            "timeframes": ["D1"],
            "risks": [1.0, 2.0],
            "date_from": "2010-01-01",
            "date_to": "2013-01-01",
        },
    ]
}


def test_a_plan_runs_its_batches_as_one(ledger: Ledger, btledger_home: Path) -> None:
    commands = parse_plan(PLAN)
    seen: list[Progress] = []
    with WorkerPool(2) as pool:
        report = run_batches(ledger, commands, pool, btledger_home, seen.append)
    assert report.summary == {"recorded": 4, "skipped": 0, "failed": 0}
    assert [r.index for r in report.results] == [0, 1, 2, 3]
    assert [(r.spec.ticker, r.spec.date_from.year) for r in report.results] == [("EURUSD", 2017)] * 2 + [
        ("GOOG", 2010)
    ] * 2
    assert {p.total for p in seen} == {4} and Counter(p.status for p in seen)["queued"] == 4
    # The second batch's jobs were handed out before the first batch's results were all in.
    order = [(p.status, p.spec.ticker) for p in seen if p.status in ("running", "recorded")]
    assert order.index(("running", "GOOG")) < max(i for i, o in enumerate(order) if o == ("recorded", "EURUSD"))
    assert ledger.head() == 8  # Registered + ResultRecorded per combination

    with WorkerPool(1) as pool:
        again = run_batches(ledger, commands, pool, btledger_home)
        assert again.summary == {"recorded": 0, "skipped": 4, "failed": 0}
        assert ledger.head() == 8
        # Each batch keeps its own options: only the first one asks for a rerun.
        first_rerun = parse_plan({"batches": [{**PLAN["batches"][0], "rerun": True}, PLAN["batches"][1]]})
        partly = run_batches(ledger, first_rerun, pool, btledger_home)
    assert [(r.spec.ticker, r.status) for r in partly.results] == [("EURUSD", "recorded")] * 2 + [
        ("GOOG", "skipped")
    ] * 2
    assert ledger.head() == 10


def test_a_combination_in_two_batches_is_refused_before_anything_runs(ledger: Ledger, btledger_home: Path) -> None:
    first = {**BATCH, "tickers": ["EURUSD"], "timeframes": ["H4"]}
    overlapping = {**first, "strategies": ["DonchianBreakout", "RsiMeanReversion"]}
    with WorkerPool(1) as pool, pytest.raises(InvalidInput) as refused:
        run_batches(ledger, [parse(RunBatch, first), parse(RunBatch, overlapping)], pool, btledger_home)
    assert refused.value.field == "batches[1]"
    assert "DonchianBreakout EURUSD H4 risk 1 from 2017-05-01 to 2018-02-01 is also in batches[0]" in str(refused.value)
    assert ledger.head() == 0


MANY = {**BATCH, "risks": [n / 10 for n in range(1, 101)]}


@pytest.mark.parametrize(
    ("plan", "field", "problem"),
    [
        ([BATCH], "plan", "expected a mapping with one key, batches"),
        ({"batches": [BATCH], "workers": 2}, "plan", "expected a mapping with one key, batches"),
        ({"batches": []}, "batches", "expected a list of 1 to 1000 batches"),
        ({"batches": [BATCH, "SmaCross"]}, "batches[1]", "expected a mapping of batch fields, got str"),
        ({"batches": [BATCH, {**BATCH, "date_to": "2017-01-01"}]}, "batches[1].date_from", "must be before date_to"),
        ({"batches": [{**BATCH, "risks": [0]}]}, "batches[0].risks", "must be in (0, 100]"),
        ({"batches": [{**BATCH, "tickers": ["NOPE"]}]}, "batches[0].tickers", "unknown ticker 'NOPE'"),
        ({"batches": [BATCH, {**BATCH, "risks": [2.0, 1.0]}]}, "batches[1]", "risk 1 from 2017-05-01 to 2018-02-01 is"),
        # 2 strategies × 2 tickers × 2 timeframes × 100 risks = 800 a batch, each over its own range: 126 of them
        (
            {"batches": [{**MANY, "date_from": f"{1890 + n}-01-01"} for n in range(126)]},
            "batches",
            "100,800 combinations",
        ),
    ],
)
def test_a_bad_plan_names_the_batch_and_the_field(plan: object, field: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_plan(plan)
    assert refused.value.field == field and problem in refused.value.problem


def test_parameters_that_name_one_run_give_one_key() -> None:
    """Defaults spelt out, an int for a float and an integral float for an int: one run, one id."""
    base = {**BATCH, "strategies": ["SmaCross"], "tickers": ["EURUSD"], "timeframes": ["D1"]}

    def key(params: dict[str, object]) -> RunSpec:
        (spec,) = parse(RunBatch, {**base, "params": params}).specs()
        return spec

    assert key({"n_fast": 12}) == key({"sl_atr": 2}) == key({"n_fast": 12.0, "sl_atr": 2.0}) == key({})
    assert key({}).params == {}
    assert key({"n_fast": 10.0}) == key({"n_fast": 10})
    assert key({"n_fast": 10.0}).params == {"n_fast": 10} and type(key({"n_fast": 10.0}).params["n_fast"]) is int
    assert backtest_id(key({"n_fast": 10.0, "sl_atr": 2})) == backtest_id(key({"n_fast": 10}))
    assert backtest_id(key({"n_fast": 10})) != backtest_id(key({}))


def test_a_batchs_parameters_are_checked_once_however_often_it_is_planned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing checks each strategy's parameters against its bounds; planning the combinations (as the plan
    check and the run each do) reuses what the check gave rather than checking again."""
    checks: Counter[str] = Counter()
    check = StrategyEntry.resolve_params

    def counted(entry: StrategyEntry, overrides: dict[str, JsonScalar]) -> dict[str, JsonScalar]:
        checks[entry.name] += 1
        return check(entry, overrides)

    monkeypatch.setattr(StrategyEntry, "resolve_params", counted)
    (batch,) = parse_plan({"batches": [{**BATCH, "params": {"sl_atr": 3, "atr_period": 14}}]})
    specs = batch.specs()
    assert checks == {"SmaCross": 1, "DonchianBreakout": 1}
    assert len(specs) == 8 and all(spec.params == {"sl_atr": 3.0} for spec in specs)  # 14 is the default
    assert type(specs[0].params["sl_atr"]) is float


def test_a_run_given_its_default_parameters_is_skipped(ledger: Ledger, btledger_home: Path) -> None:
    base = {**BATCH, "strategies": ["SmaCross"], "tickers": ["EURUSD"], "timeframes": ["D1"]}
    with WorkerPool(1) as pool:
        (first,) = run_batches(ledger, [parse(RunBatch, base)], pool, btledger_home).results
        explicit = {**base, "params": {"n_fast": 12.0, "sl_atr": 2}}
        (again,) = run_batches(ledger, [parse(RunBatch, explicit)], pool, btledger_home).results
    assert first.status == "recorded"
    assert (again.status, again.id) == ("skipped", first.id)


def test_a_text_spelt_another_way_names_the_same_run(ledger: Ledger, btledger_home: Path) -> None:
    """RandomTrader's hold_bars "3,12" and " 03, 12 " are the same holds: one key ("3,12"), one id, one result."""
    base = {**BATCH, "strategies": ["RandomTrader"], "tickers": ["EURUSD"], "timeframes": ["D1"]}
    with WorkerPool(1) as pool:
        (first,) = run_batches(
            ledger, [parse(RunBatch, {**base, "params": {"hold_bars": "3,12"}})], pool, btledger_home
        ).results
        spelt = parse(RunBatch, {**base, "params": {"hold_bars": " 03, 12 "}})
        (again,) = run_batches(ledger, [spelt], pool, btledger_home).results
    assert first.status == "recorded"
    assert (again.status, again.id) == ("skipped", first.id)
    assert ledger.get(first.id).spec.params == {"hold_bars": "3,12"}


def test_a_batch_of_more_combinations_than_a_run_takes_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "MAX_COMBINATIONS", 15)
    assert parse(RunBatch, {**BATCH, "risks": [1, 1.0]}).combinations == 8  # 2 × 2 × 2 × 1: 1 and 1.0 are one risk
    with pytest.raises(InvalidInput) as refused:
        parse(RunBatch, {**BATCH, "risks": [1, 2]})
    assert (refused.value.field, refused.value.problem) == (
        "batch",
        "16 combinations (strategies × tickers × timeframes × risks); at most 15 at once",
    )


def test_deleted_results_are_rerun_only_when_asked(ledger: Ledger, btledger_home: Path) -> None:
    small = {**BATCH, "strategies": ["SmaCross"], "tickers": ["EURUSD"], "timeframes": ["D1"]}
    with WorkerPool(1) as pool:
        (result,) = run_batches(ledger, [parse(RunBatch, small)], pool, btledger_home).results
        ledger.delete(result.id)
        (skipped,) = run_batches(ledger, [parse(RunBatch, small)], pool, btledger_home).results
        assert skipped.status == "skipped" and "deleted" in (skipped.message or "")
        (rerun,) = run_batches(ledger, [parse(RunBatch, {**small, "rerun": True})], pool, btledger_home).results
    assert rerun.status == "recorded"
    assert ledger.get(rerun.id).status == "recorded"
    assert [h.event_type for h in ledger.history(rerun.id)] == [
        "Registered",
        "ResultRecorded",
        "Deleted",
        "ResultRecorded",
    ]


#: GOOG's sample data is daily: its H1 bars cannot be made, so this combination always fails.
NEVER_RUNS = {**BATCH, "strategies": ["SmaCross"], "tickers": ["GOOG"], "timeframes": ["H1"]}


def test_a_deleted_failed_combination_is_skipped_until_restored_or_rerun(ledger: Ledger, btledger_home: Path) -> None:
    never = parse(RunBatch, NEVER_RUNS)
    with WorkerPool(1) as pool:
        (failed,) = run_batches(ledger, [never], pool, btledger_home).results
        assert failed.status == "failed" and "GOOG" in (failed.message or "")
        ledger.delete(failed.id, reason="GOOG has no hourly data")
        head = ledger.head()
        (skipped,) = run_batches(ledger, [never], pool, btledger_home).results
        assert (skipped.status, skipped.message) == ("skipped", "deleted; rerun (--rerun in the CLI) runs it again")
        assert skipped.id == failed.id and skipped.metrics is None and skipped.trade_performance is None
        assert ledger.head() == head  # skipped: not run, nothing appended

        ledger.restore(failed.id)
        assert ledger.get(failed.id).status == "failed"
        (retried,) = run_batches(ledger, [never], pool, btledger_home).results
        assert retried.status == "failed"

        # Rerun runs it even while deleted; failing again, it stays deleted (no result replaced the deletion).
        ledger.delete(failed.id)
        (rerun,) = run_batches(ledger, [parse(RunBatch, {**NEVER_RUNS, "rerun": True})], pool, btledger_home).results
    assert rerun.status == "failed"
    assert ledger.get(failed.id).status == "deleted"
    assert [h.event_type for h in ledger.history(failed.id)] == [
        "Registered",
        "RunFailed",
        "Deleted",
        "Restored",
        "RunFailed",
        "Deleted",
        "RunFailed",
    ]


class ChangedMeanwhile:
    """The real pool, with another writer (a second `Ledger` on the same file, as another process would
    be) changing each combination's key between the plan and the batch's own recording: `change` gets
    the combination and its outcome."""

    def __init__(self, pool: WorkerPool, change: Callable[[RunSpec, BacktestOutcome | None], object]) -> None:
        self.pool, self.change = pool, change

    def run(
        self,
        jobs: Iterable[tuple[RunSpec, Path | None]],
        on_start: Callable[[RunSpec], None] | None = None,
        interrupt: Interrupt | None = None,
    ) -> Iterator[tuple[RunSpec, BacktestOutcome | None, str | None]]:
        for spec, outcome, error in self.pool.run(jobs, on_start, interrupt):
            self.change(spec, outcome)
            yield spec, outcome, error


@pytest.mark.parametrize("rerun", [False, True])
def test_a_result_recorded_meanwhile_by_another_run_is_kept_unless_rerun(
    ledger: Ledger, btledger_home: Path, rerun: bool
) -> None:
    """Two runs of one batch at once: without rerun, the key keeps the one result recorded first."""
    small = {**BATCH, "strategies": ["SmaCross"], "tickers": ["EURUSD"], "timeframes": ["H4", "D1"], "rerun": rerun}
    other = Ledger(env=store_env(btledger_home))

    def record(spec: RunSpec, outcome: BacktestOutcome | None) -> None:
        assert outcome is not None
        other.record_outcome(spec, outcome)

    with WorkerPool(1) as pool:
        report = run_batches(ledger, [parse(RunBatch, small)], ChangedMeanwhile(pool, record), btledger_home)
    assert report.summary == (
        {"recorded": 2, "skipped": 0, "failed": 0} if rerun else {"recorded": 0, "skipped": 2, "failed": 0}
    )
    for result in report.results:
        events = [h.event_type for h in ledger.history(result.id)]
        assert events == ["Registered", "ResultRecorded", *(["ResultRecorded"] if rerun else [])]
        if not rerun:
            assert "another run" in (result.message or "")
            recorded = ledger.get(result.id).outcome
            assert recorded is not None and result.metrics == recorded.metrics


@pytest.mark.parametrize("rerun", [False, True])
def test_a_failed_key_deleted_meanwhile_by_another_writer_stays_deleted_unless_rerun(
    ledger: Ledger, btledger_home: Path, rerun: bool
) -> None:
    with WorkerPool(1) as pool:
        (failed,) = run_batches(ledger, [parse(RunBatch, NEVER_RUNS)], pool, btledger_home).results
        other = Ledger(env=store_env(btledger_home))
        deleting = ChangedMeanwhile(pool, lambda spec, _: other.delete(backtest_id(spec), reason="stop retrying it"))
        command = parse(RunBatch, {**NEVER_RUNS, "rerun": rerun})
        (again,) = run_batches(ledger, [command], deleting, btledger_home).results
    events = [h.event_type for h in ledger.history(failed.id)]
    assert events == ["Registered", "RunFailed", "Deleted", *(["RunFailed"] if rerun else [])]
    assert ledger.get(failed.id).status == "deleted"
    if rerun:
        assert again.status == "failed"
    else:
        assert (again.status, again.message) == (
            "skipped",
            "deleted meanwhile; rerun (--rerun in the CLI) runs it again",
        )


KILLABLE_BATCH = [
    "run",
    *("--strategy", "SmaCross", "--strategy", "DonchianBreakout", "--strategy", "RsiMeanReversion"),
    *("--ticker", "EURUSD", "--timeframe", "H1", "--timeframe", "H4"),
    *("--risk", "0.5", "--risk", "1", "--risk", "2"),
    *("--from", "2017-05-01", "--to", "2018-02-01", "--workers", "1", "--json"),
]


def recorded_results(home: Path) -> Counter[str]:
    path = home / "events.sqlite"
    if not path.exists():
        return Counter()
    try:
        rows = sqlite3.connect(path, timeout=30).execute(
            "SELECT originator_id FROM stored_events WHERE topic LIKE '%Backtest.ResultRecorded'"
        )
    except sqlite3.OperationalError as error:  # the batch created the file but not its tables yet
        if "no such table" not in str(error):
            raise
        return Counter()
    return Counter(row[0] for row in rows)


def test_sigkill_mid_batch_then_the_same_batch_records_each_combination_once(btledger_home: Path) -> None:
    command = [sys.executable, "-m", "btledger", *KILLABLE_BATCH]
    env = {**os.environ, "BTLEDGER_HOME": str(btledger_home)}
    victim = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while sum(recorded_results(btledger_home).values()) < 3:
        assert victim.poll() is None, "the batch ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    before = recorded_results(btledger_home)
    assert 3 <= sum(before.values()) < 18

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    after = recorded_results(btledger_home)
    assert len(after) == 18 and set(after.values()) == {1}
    assert set(before) <= set(after)
