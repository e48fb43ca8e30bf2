"""Ledger throughput and batch overhead, measured in one run.

(a) result events appended per second: 200-trade results, one `save()` each, to a SQLite file;
(b) `btledger run` with 1 worker (engine, events and read-model projection included) against a bare
    sequential backtesting.py loop over the same 40 combinations (target ratio <= 1.10);
(c) the same 40 with 2 workers against 1 worker (target speedup >= 1.8 on 2 cores).

The 40 combinations: SmaCross, DonchianBreakout, RsiMeanReversion and RandomTrader × risks 0.5–2.5
on EURUSD H1 (5000 bars) and on GOOG D1 (2148 bars), i.e. 20 + 20 runs: two batches over each
ticker's own date range, run as one plan (`btledger run --plan`).

The baseline loop runs as a fresh process (`bare_loop.py`), like a user's script. Bare loop, 1 and 2
workers run back to back in 7 rounds; each ratio is the median of the rounds' own ratios.

For reference, each round also starts two bare loops at once, one per core: twice the work in the
slower loop's time is the speedup this machine gives two simultaneous backtests with no btledger at
all, the ceiling for (c). Two processes slow each other down (shared caches, memory bandwidth, the
host's other tenants), by a different amount from minute to minute. And each round runs 1 and 2
workers once more with the read model left out (pool, engine and events only): the speedup they
reach shows what the projection costs (c), on two cores where it has no idle core to use.

Two more rows split the ratios into the backtests and the rest. Each result records its backtest's own
wall time (`wall_time_s`, taken in the worker); summed over the 40 and read back after the clock stops,
they give (b)'s part that is the backtests themselves, run in a worker, against the bare loop, and how
much slower each backtest runs when two run at once (what the machine's ceiling measures for bare loops).
The bare loop's `Backtest.run` builds backtesting.py's own statistics, as a script that reads them must;
btledger's engine builds its metrics instead and skips those (`btledger.engine.lean_stats`), so its
backtests take less than the bare loop's.

And two rows count CPU. Each run's CPU seconds (the parent's, every thread, and its workers', reaped at
the pool's close) spread perfectly over two cores are the least wall time the 2-worker run could take:
1 worker's wall time over that is the most (c) could reach with that much work, however it is scheduled
(`..._cpu_bound`). The parent's share of it is shown with and without the read model.

Usage: ``uv run python benchmarks/ledger.py [--json]``; `measure()` returns the rows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

from bare_loop import BATCHES, RISKS, STRATEGIES
from report import emit

from btledger.bootstrap import projecting
from btledger.domain.batch import run_batches
from btledger.domain.commands import RunBatch, parse_plan
from btledger.domain.ledger import Ledger, store_env
from btledger.engine.pool import WorkerPool
from btledger.engine.result import RunSpec
from btledger.synthetic import synthetic_outcome

OVERHEAD_TARGET = 1.10
SPEEDUP_TARGET = 1.8
ROUNDS = 7
HERE = Path(__file__).resolve().parent


def _row(
    name: str,
    value: float,
    unit: str,
    baseline: float | None,
    ratio: float | None,
    target: float | None,
    met: bool | None,
) -> dict[str, Any]:
    return {
        "name": name,
        "value": round(value, 4),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 4),
        "ratio": None if ratio is None else round(ratio, 3),
        "target": target,
        "met": met,
    }


class _Run(NamedTuple):
    """One `ledger_run`: its wall seconds, the sum of its backtests' own wall seconds, and the CPU seconds
    it used: the parent's (every thread) and its workers'."""

    wall: float
    backtests: float
    parent_cpu: float
    workers_cpu: float


class _Round(NamedTuple):
    """One round's runs, made back to back."""

    bare_loop: float
    one_worker: _Run
    two_workers: _Run
    two_bare_loops: float
    one_worker_without_read_model: _Run
    two_workers_without_read_model: _Run


def _commands() -> list[RunBatch]:
    return parse_plan({"batches": [{"strategies": STRATEGIES, "risks": RISKS, **batch} for batch in BATCHES]})


def append_rate(count: int = 300) -> float:
    """Result events (200 trades each) appended per second, one save per result."""
    with tempfile.TemporaryDirectory() as home:
        ledger = Ledger(env=store_env(Path(home)))
        outcomes = [synthetic_outcome(n_trades=200, return_pct=float(i)) for i in range(count)]
        specs = [
            RunSpec("SmaCross", "EURUSD", "H1", 1.0 + i, date(2017, 5, 1), date(2018, 2, 1), 1e5) for i in range(count)
        ]
        started = time.perf_counter()
        for spec, outcome in zip(specs, outcomes, strict=True):
            ledger.record_outcome(spec, outcome)
        return count / (time.perf_counter() - started)


def bare_loop() -> float:
    """Wall seconds of a plain sequential backtesting.py loop over the 40 combinations (`bare_loop.py`)."""
    done = subprocess.run([sys.executable, str(HERE / "bare_loop.py")], capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout))


def two_bare_loops_at_once() -> float:
    """Wall seconds of the slower of two bare loops started together, one per core: what running two
    backtests at once costs this machine (caches, memory bandwidth, the host), with no btledger at all."""
    command = [sys.executable, str(HERE / "bare_loop.py"), "--wait"]
    loops = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    for loop in loops:
        assert loop.stdout is not None and loop.stdout.readline().strip() == "ready"
    for loop in loops:
        assert loop.stdin is not None
        loop.stdin.write("go\n")
        loop.stdin.flush()
    outputs = [loop.communicate()[0] for loop in loops]
    assert all(loop.returncode == 0 for loop in loops), outputs
    return max(float(json.loads(output)) for output in outputs)


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def ledger_run(workers: int, read_model: bool = True) -> _Run:
    """What `btledger run --plan FILE --workers N` does for the 40, the plan's two batches (EURUSD and GOOG
    over their own date ranges) run as one (pool, engine, events, projection), timed; with
    `read_model=False` the projection is left out (what it costs a run, for reference)."""
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        parent, children = _cpu_seconds(resource.RUSAGE_SELF), _cpu_seconds(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        ledger = Ledger(env=store_env(home))
        projection = projecting(ledger, home) if read_model else contextlib.nullcontext(lambda _: None)
        with WorkerPool(workers) as pool, projection as project:
            report = run_batches(ledger, _commands(), pool, home, project)
        wall = time.perf_counter() - started
        # The pool's close has reaped its workers: their CPU is in RUSAGE_CHILDREN now.
        parent, children = (
            _cpu_seconds(resource.RUSAGE_SELF) - parent,
            _cpu_seconds(resource.RUSAGE_CHILDREN) - children,
        )
        assert report.summary["recorded"] == 40, report.summary
        outcomes = [ledger.get(result.id).outcome for result in report.results]
        return _Run(wall, sum(outcome.wall_time_s for outcome in outcomes if outcome is not None), parent, children)


def measure() -> list[dict[str, Any]]:
    rate = append_rate()
    bare_loop(), ledger_run(1)  # warm-up: imports, data caches, first fork
    # Paired rounds: the speed of this shared machine drifts by 20 % within minutes, so each ratio is
    # taken between runs made back to back, and the median round reported (times: medians too).
    rounds = [
        _Round(
            bare_loop(),
            ledger_run(1),
            ledger_run(2),
            two_bare_loops_at_once(),
            ledger_run(1, read_model=False),
            ledger_run(2, read_model=False),
        )
        for _ in range(ROUNDS)
    ]
    bare, one = statistics.median(r.bare_loop for r in rounds), statistics.median(r.one_worker.wall for r in rounds)
    overhead = statistics.median(r.one_worker.wall / r.bare_loop for r in rounds)
    speedup = statistics.median(r.one_worker.wall / r.two_workers.wall for r in rounds)
    # Two loops' work in the slower one's time: the speedup 2 workers could reach with no overhead at all.
    ceiling = statistics.median(2 * r.bare_loop / r.two_bare_loops for r in rounds)
    without_read_model = statistics.median(
        r.one_worker_without_read_model.wall / r.two_workers_without_read_model.wall for r in rounds
    )
    one_backtests = statistics.median(r.one_worker.backtests for r in rounds)
    backtests_in_worker = statistics.median(r.one_worker.backtests / r.bare_loop for r in rounds)
    backtests_two_at_once = statistics.median(r.two_workers.backtests / r.one_worker.backtests for r in rounds)
    # The CPU the 2-worker run used, spread perfectly over 2 cores, is the least wall time it could take:
    # 1 worker's wall over that is the most (c) could be with this much work, however it is scheduled.
    cpu_bound = statistics.median(
        r.one_worker.wall / ((r.two_workers.parent_cpu + r.two_workers.workers_cpu) / 2) for r in rounds
    )
    parent_cpu = statistics.median(r.two_workers.parent_cpu for r in rounds)
    parent_cpu_without_read_model = statistics.median(r.two_workers_without_read_model.parent_cpu for r in rounds)
    read_model_cpu = statistics.median(
        r.two_workers.parent_cpu / r.two_workers_without_read_model.parent_cpu for r in rounds
    )
    return [
        _row("ledger_append_200_trade_results", rate, "events/s", None, None, None, None),
        _row(
            "ledger_run_40_one_worker_vs_bare_loop",
            one,
            "s",
            bare,
            overhead,
            OVERHEAD_TARGET,
            overhead <= OVERHEAD_TARGET,
        ),
        _row(
            "ledger_run_40_speedup_two_workers", speedup, "x", one, speedup, SPEEDUP_TARGET, speedup >= SPEEDUP_TARGET
        ),
        _row("machine_speedup_two_bare_loops_at_once", ceiling, "x", bare, ceiling, None, None),
        _row(
            "ledger_run_40_speedup_two_workers_without_read_model",
            without_read_model,
            "x",
            statistics.median(r.one_worker_without_read_model.wall for r in rounds),
            without_read_model,
            None,
            None,
        ),
        _row(
            "ledger_run_40_one_worker_backtests_vs_bare_loop",
            one_backtests,
            "s",
            bare,
            backtests_in_worker,
            None,
            None,
        ),
        _row(
            "ledger_run_40_two_workers_backtests_vs_one_worker",
            statistics.median(r.two_workers.backtests for r in rounds),
            "s",
            one_backtests,
            backtests_two_at_once,
            None,
            None,
        ),
        _row("ledger_run_40_speedup_two_workers_cpu_bound", cpu_bound, "x", None, None, None, None),
        _row(
            "ledger_run_40_two_workers_parent_cpu",
            parent_cpu,
            "s",
            parent_cpu_without_read_model,
            read_model_cpu,
            None,
            None,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    emit(measure(), args.json)


if __name__ == "__main__":
    main()
