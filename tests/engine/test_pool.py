"""The worker pool: streaming completions, surviving a failing job and a dying worker."""

from __future__ import annotations

import gc
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Unpack

import pytest
from backtesting import Strategy

from btledger.config import MAX_WORKERS
from btledger.engine import registry as registry_module
from btledger.engine.interrupt import Interrupt, Interrupted
from btledger.engine.pool import WorkerPool
from btledger.engine.result import RunSpec
from tests.engine.user_strategies import Plain
from tests.typed import SpecChange, number


class Crash(Strategy):
    """Kills its worker process, as a segfaulting extension would."""

    def init(self) -> None:
        os._exit(3)

    def next(self) -> None:
        pass


class Sleep(Strategy):
    """A backtest that takes a minute."""

    def init(self) -> None:
        time.sleep(60)

    def next(self) -> None:
        pass


def spec(strategy: str = "SmaCross", ticker: str = "EURUSD", **change: Unpack[SpecChange]) -> RunSpec:
    fields: SpecChange = {
        "timeframe": "H4",
        "risk": 1.0,
        "date_from": date(2017, 5, 1),
        "date_to": date(2018, 2, 1),
        "initial_cash": 100_000.0,
    }
    merged: SpecChange = {**fields, **change}
    return RunSpec(strategy=strategy, ticker=ticker, **merged)


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkerPool]:
    # Registered before the workers fork, so they know it too.
    known = dict(registry_module.registry()) | {
        "Crash": registry_module._entry("Crash", Crash, __name__),
        "Sleep": registry_module._entry("Sleep", Sleep, __name__),
        "Plain": registry_module._entry("Plain", Plain, Plain.__module__),
    }
    monkeypatch.setattr(registry_module, "registry", lambda: MappingProxyType(known))
    with WorkerPool(2) as workers:
        yield workers


def test_pool_survives_a_failing_job_and_a_dead_worker(pool: WorkerPool) -> None:
    jobs = [
        spec(),
        spec(ticker="NOPE"),
        spec("Crash"),
        spec("DonchianBreakout"),
        spec("RsiMeanReversion", timeframe="D1"),
    ]
    started: list[RunSpec] = []
    results = {s: (outcome, error) for s, outcome, error in pool.run([(s, None) for s in jobs], started.append)}
    assert set(results) == set(started) == set(jobs)

    assert results[jobs[1]][0] is None
    failed = results[jobs[1]][1]
    assert failed is not None and failed.startswith("DataError: ticker: unknown ticker 'NOPE'")
    assert results[jobs[2]] == (None, "worker process died (exit code 3)")
    for good in (jobs[0], jobs[3], jobs[4]):
        outcome, error = results[good]
        assert error is None and outcome is not None and number(outcome.metrics["trades"]) > 0

    # The replaced worker serves the next batch; leaving a batch early leaves the pool usable.
    for _ in pool.run([(spec(), None), (spec("DonchianBreakout"), None), (spec("RandomTrader"), None)]):
        break
    again = list(pool.run([(spec(), None)]))
    first = results[jobs[0]][0]
    assert again[0][1] is not None and first is not None and again[0][1].metrics == first.metrics


def test_an_interrupt_from_another_thread_ends_a_run_at_once(pool: WorkerPool) -> None:
    started = threading.Event()

    def cancel() -> None:  # as the server's event loop does for DELETE /jobs/{id}
        started.wait()
        interrupt.set()

    with Interrupt() as interrupt:
        threading.Thread(target=cancel).start()
        begun = time.perf_counter()
        with pytest.raises(Interrupted):
            for _ in pool.run(
                [(spec("Sleep"), None), (spec("Sleep", risk=2.0), None)], lambda _: started.set(), interrupt
            ):
                pass
        assert time.perf_counter() - begun < 30  # not the minute its jobs take
    interrupt.set()  # once closed, nothing to wake: ignored
    # The workers stopped were replaced: the pool runs the next batch.
    [(_, outcome, error)] = list(pool.run([(spec(), None)]))
    assert error is None and outcome is not None


def test_a_failure_names_its_cause(pool: WorkerPool) -> None:
    # backtesting.py wraps an indicator's error in one that points at a traceback the worker never shows.
    # (A shipped strategy refuses such a window up front; `Plain` declares no bounds.)
    bad = spec(
        "Plain", "GOOG", timeframe="D1", date_from=date(2005, 1, 1), date_to=date(2008, 1, 1), params={"window": -5}
    )
    [(_, outcome, error)] = list(pool.run([(bad, None)]))
    assert outcome is None
    assert error is not None and error.startswith(
        'RuntimeError: Indicator "sma(C,-5)" error (caused by ValueError: window must be '
    ), error


def test_pool_writes_plots(pool: WorkerPool, tmp_path: Path) -> None:
    target = tmp_path / "one.html"
    [(_, outcome, error)] = list(pool.run([(spec(), target)]))
    assert error is None and outcome is not None and outcome.plot_path == str(target) and target.exists()


def test_pool_hands_out_the_next_job_before_the_caller_handles_a_completion() -> None:
    # The caller records each outcome (an event store write): the worker must compute meanwhile,
    # not wait for it.
    order: list[str] = []
    jobs = [spec(), spec("DonchianBreakout"), spec("RsiMeanReversion")]
    with WorkerPool(1) as one:
        for done, _, error in one.run([(s, None) for s in jobs], lambda s: order.append(f"start {s.strategy}")):
            assert error is None
            order.append(f"done {done.strategy}")
    assert order == [
        "start SmaCross",
        "start DonchianBreakout",
        "done SmaCross",
        "start RsiMeanReversion",
        "done DonchianBreakout",
        "done RsiMeanReversion",
    ]


def test_a_worker_that_dies_gives_back_the_job_it_had_not_started(pool: WorkerPool) -> None:
    # Two workers and enough jobs that each holds a second one while it runs the first: the crashing
    # worker's held job must run on its replacement (or the other worker), not be lost or failed.
    jobs = [spec("Crash"), spec(), spec("DonchianBreakout"), spec("RsiMeanReversion"), spec(risk=2.0), spec(risk=3.0)]
    started: list[RunSpec] = []
    results = {s: (outcome, error) for s, outcome, error in pool.run([(s, None) for s in jobs], started.append)}
    assert sorted(map(str, started)) == sorted(map(str, jobs))  # each started once
    assert results.pop(jobs[0]) == (None, "worker process died (exit code 3)")
    assert all(error is None and outcome is not None for outcome, error in results.values()), results
    assert set(results) == set(jobs[1:])


def test_the_parent_keeps_collecting_what_it_froze_for_its_forked_workers() -> None:
    frozen = gc.get_freeze_count()
    with WorkerPool(2) as workers:
        assert gc.get_freeze_count() == frozen  # frozen only for the fork: the parent unfroze its copy
        [(_, outcome, error)] = list(workers.run([(spec(), None)]))
        assert error is None and outcome is not None


def test_workers_are_forked_with_the_instruments_strategies_and_sample_data_already_loaded() -> None:
    script = (
        "import sys\n"
        "from btledger.engine.pool import WorkerPool\n"
        "fresh = 'backtesting.test' not in sys.modules and 'btledger.strategies.sma_cross' not in sys.modules\n"
        "with WorkerPool(1):\n"
        "    print(fresh, 'backtesting.test' in sys.modules, 'btledger.strategies.sma_cross' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True", "True"]


def test_a_lazy_pool_forks_at_its_first_jobs_and_no_more_workers_than_jobs() -> None:
    before = set(multiprocessing.active_children())
    with WorkerPool(8, lazy=True) as lazy:
        assert list(lazy.run([])) == []
        assert set(multiprocessing.active_children()) == before
        done = list(lazy.run([(spec(), None), (spec("DonchianBreakout"), None)]))
        assert [error for _, _, error in done] == [None, None]
        assert len(set(multiprocessing.active_children()) - before) == 2


def test_a_worker_count_above_the_maximum_is_refused_before_any_fork() -> None:
    before = set(multiprocessing.active_children())
    with pytest.raises(ValueError, match=f"^workers: must be at most {MAX_WORKERS}, got {MAX_WORKERS + 1}"):
        WorkerPool(MAX_WORKERS + 1)
    assert set(multiprocessing.active_children()) == before
