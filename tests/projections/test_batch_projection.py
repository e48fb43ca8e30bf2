"""A batch's projection: caught up in the batch's tail, complete when the batch returns."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import ParamSpec

import duckdb
import pytest

from btledger.domain.backtest import backtest_id
from btledger.domain.batch import Progress, Status, run_batches
from btledger.domain.commands import RunBatch, parse
from btledger.domain.ledger import Ledger, store_env
from btledger.engine.pool import WorkerPool
from btledger.engine.result import RunSpec
from btledger.projections.batch import BatchProjection
from btledger.projections.readmodel import ReadModel, ReadModelLocked
from btledger.synthetic import synthetic_outcome
from tests.domain.factories import spec

P = ParamSpec("P")

BATCH = {
    "strategies": ["SmaCross", "DonchianBreakout", "RsiMeanReversion"],
    "tickers": ["EURUSD"],
    "timeframes": ["H4"],
    "risks": [1.0],
    "date_from": date(2017, 5, 1),
    "date_to": date(2018, 2, 1),
}


def _live_ids(path: Path) -> set[str]:
    with ReadModel.open(path) as readmodel:
        return {row[0] for row in readmodel.cursor().execute("SELECT id FROM backtests").fetchall()}


def _noting(catch_up: Callable[P, int], note: Callable[[int], None]) -> Callable[P, int]:
    """`catch_up`, passing each position it reaches to `note`."""

    def noting(*args: P.args, **kwargs: P.kwargs) -> int:
        position = catch_up(*args, **kwargs)
        note(position)
        return position

    return noting


def test_the_tail_of_a_batch_is_projected_as_its_last_round_starts_and_the_rest_on_exit(
    btledger_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(env=store_env(btledger_home))
    path = btledger_home / "readmodel.duckdb"
    catch_ups: list[tuple[str, int]] = []  # thread, position reached

    def caught_up(count: int) -> None:
        deadline = time.monotonic() + 30
        while len(catch_ups) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(catch_ups) == count and catch_ups[-1][0].startswith("btledger-batch-projection")

    noting = _noting(ReadModel.catch_up, lambda position: catch_ups.append((threading.current_thread().name, position)))
    monkeypatch.setattr(ReadModel, "catch_up", noting)
    first, second, last = spec(risk=1.0), spec(risk=2.0), spec(risk=3.0)

    def progress(job: RunSpec, status: Status) -> Progress:
        return Progress(0, 3, job, backtest_id(job), status)

    # One worker: a job runs at a time, so the last round is the last two jobs.
    with BatchProjection(ledger, path) as projection:
        for job in (first, second, last):
            projection.observe(progress(job, "queued"))
        projection.observe(progress(first, "running"))
        ledger.record_outcome(first, synthetic_outcome(n_trades=3))
        projection.observe(progress(first, "recorded"))
        assert catch_ups == [] and not path.exists()  # the file stays free until the tail
        projection.observe(progress(second, "running"))  # no more jobs wait than run: the tail
        caught_up(1)
        assert catch_ups[0][1] == 2  # the first result
        ledger.record_outcome(second, synthetic_outcome(n_trades=3))
        projection.observe(progress(second, "recorded"))
        projection.observe(progress(last, "running"))  # the tail goes on, with the results recorded since
        caught_up(2)
        assert catch_ups[1][1] == 4
        ledger.record_outcome(last, synthetic_outcome(n_trades=3))
        projection.observe(progress(last, "recorded"))
    assert catch_ups[-1] == (threading.main_thread().name, 6)
    assert _live_ids(path) == {str(backtest_id(job)) for job in (first, second, last)}


def test_the_tail_catch_up_stops_at_the_results_recorded_when_it_was_started(
    btledger_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results recorded while the tail's catch-up waits to run (the next batch's) are left to the next one."""
    ledger = Ledger(env=store_env(btledger_home))
    gate = threading.Event()
    reached: list[int] = []
    # mypy types the bound classmethod without the `__func__` it has at run time.
    original_open, original_catch_up = ReadModel.open.__func__, ReadModel.catch_up  # type: ignore[attr-defined]

    def gated_open(cls: type[ReadModel], *args: object, **options: object) -> ReadModel:
        assert gate.wait(30)
        return original_open(cls, *args, **options)

    monkeypatch.setattr(ReadModel, "open", classmethod(gated_open))
    monkeypatch.setattr(ReadModel, "catch_up", _noting(original_catch_up, reached.append))
    first, later = spec(risk=1.0), spec(risk=2.0)
    with BatchProjection(ledger, btledger_home / "readmodel.duckdb") as projection:
        projection.observe(Progress(0, 1, first, backtest_id(first), "queued"))
        projection.observe(Progress(0, 1, first, backtest_id(first), "running"))  # the tail: up to position 0
        ledger.record_outcome(first, synthetic_outcome(n_trades=3))
        ledger.record_outcome(later, synthetic_outcome(n_trades=3))
        gate.set()
        deadline = time.monotonic() + 30
        while not reached and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reached == [0]
    assert reached == [0, 4]


def test_a_real_batch_leaves_every_result_in_the_read_model(btledger_home: Path) -> None:
    ledger = Ledger(env=store_env(btledger_home))
    with WorkerPool(1) as pool, BatchProjection(ledger, btledger_home / "readmodel.duckdb") as projection:
        report = run_batches(ledger, [parse(RunBatch, BATCH)], pool, btledger_home, projection.observe)
    assert report.summary == {"recorded": 3, "skipped": 0, "failed": 0}
    assert _live_ids(btledger_home / "readmodel.duckdb") == {str(p.id) for p in report.results}


def test_a_batch_of_skips_only_is_projected_on_exit(btledger_home: Path) -> None:
    ledger = Ledger(env=store_env(btledger_home))
    ledger.record_outcome(spec(), synthetic_outcome(n_trades=3))
    with BatchProjection(ledger, btledger_home / "readmodel.duckdb"):
        pass  # no job queued: no tail
    assert len(_live_ids(btledger_home / "readmodel.duckdb")) == 1


def test_a_read_model_held_by_another_process_is_reported_after_the_batch_recorded(btledger_home: Path) -> None:
    path = btledger_home / "readmodel.duckdb"
    duckdb.connect(str(path)).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({str(path)!r}); print(1); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"1"
        ledger = Ledger(env=store_env(btledger_home))
        command = parse(RunBatch, BATCH)
        with pytest.raises(ReadModelLocked), WorkerPool(1) as pool, BatchProjection(ledger, path) as projection:
            run_batches(ledger, [command], pool, btledger_home, projection.observe)
        assert ledger.head() == 6  # every result recorded all the same
    finally:
        holder.kill()
        holder.wait()
