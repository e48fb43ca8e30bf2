"""Crash safety: SIGKILL a batch (`btledger run`) and, separately, the projection (a catch-up and `btledger
rebuild`) at seeded random points, at least 10 times a run, restarting each time; then every committed result
is in the event store exactly once, in the read models exactly once, and the read models equal a clean
rebuild, every table and every column.

Kill points (seeded: BTLEDGER_CRASH_SEED overrides the seed, and a failure message names it):
- batch: after k more results are committed (polled from the SQLite file), plus a random delay that lands
  the kill inside the next run or save; at a random delay after start (imports, config, forking the
  pool, the first run); and, for the last kills, while the finished batch projects into DuckDB;
- catch-up: after a random committed position (the child prints each), plus a random delay inside the next
  batch's transaction;
- rebuild: at a random moment after the process opened the DuckDB file, within its measured duration.

The default suite runs the short variants; `--run-slow` (or BTLEDGER_SLOW=1) adds the long ones.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest

from btledger.bootstrap import open_ledger
from btledger.domain.backtest import backtest_id
from btledger.domain.commands import RunBatch, parse
from btledger.domain.errors import Conflict
from btledger.domain.ledger import Ledger
from btledger.projections.readmodel import ReadModel
from tests.reliability.harness import (
    REPO,
    Victim,
    add_results,
    clean_rebuild,
    differences,
    holds_open,
    result_snapshot,
    results_recorded,
    schemas,
    synthetic_outcome,
    synthetic_spec,
    table_rows,
    wait_until_gone,
)

SEED = int(os.environ.get("BTLEDGER_CRASH_SEED", "7207"))
POLL_S = 0.01


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: how its moment was chosen, and how far the work had got."""

    mode: str
    before: int  # results (batch) or position (projection) when the process started
    at: int  # ... when it was killed


# --- the batch -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchPlan:
    strategies: tuple[str, ...]
    timeframes: tuple[str, ...]
    risks: tuple[float, ...]
    kills: int
    #: The last kills wait until every result is committed, then hit the final projection into DuckDB.
    tail_kills: int
    workers: int

    def data(self) -> dict[str, object]:
        return {
            "strategies": list(self.strategies),
            "tickers": ["EURUSD"],
            "timeframes": list(self.timeframes),
            "risks": list(self.risks),
            "date_from": "2017-05-01",
            "date_to": "2018-02-01",
        }

    def args(self) -> list[str]:
        flags = [f"--strategy={s}" for s in self.strategies] + [f"--timeframe={t}" for t in self.timeframes]
        flags += [f"--risk={r}" for r in self.risks]
        flags += ["--ticker=EURUSD", "--from=2017-05-01", "--to=2018-02-01", f"--workers={self.workers}", "--json"]
        return ["-m", "btledger", "run", *flags]


SHORT_BATCH = BatchPlan(
    strategies=("SmaCross", "DonchianBreakout", "RsiMeanReversion"),
    timeframes=("H1", "H4"),
    risks=(0.5, 1.0, 1.5, 2.0, 2.5),
    kills=10,
    tail_kills=2,
    workers=1,
)
LONG_BATCH = BatchPlan(
    strategies=("SmaCross", "DonchianBreakout", "RsiMeanReversion", "RandomTrader"),
    timeframes=("H1", "H4", "D1"),
    risks=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0),
    kills=30,
    tail_kills=4,
    workers=2,
)


def kill_batch_repeatedly(
    plan: BatchPlan, home: Path, workdir: Path, rng: random.Random
) -> tuple[list[Kill], list[dict[tuple[str, int], str]]]:
    """Start the batch and SIGKILL it at `plan.kills` seeded points, restarting each time.

    Returns the kills and, per kill, the committed results right after it."""
    total = len(parse(RunBatch, plan.data()).specs())
    readmodel = home / "readmodel.duckdb"
    kills: list[Kill] = []
    snapshots: list[dict[tuple[str, int], str]] = []
    attempts = 0
    while len(kills) < plan.kills:
        attempts += 1
        assert attempts <= 3 * plan.kills, f"too many runs finished before their kill point (seed {SEED})"
        before = results_recorded(home)
        # Every draw happens every time, so one seed gives one sequence of kill points.
        mode = rng.choices(["results", "delay"], weights=[3, 1])[0]
        more, settle, delay, tail_delay = (
            rng.randint(1, 2),
            rng.uniform(0, 0.25),
            rng.uniform(0.05, 3.0),
            rng.uniform(0, 0.3),
        )
        if len(kills) >= plan.kills - plan.tail_kills or total - before <= 2:
            mode = "projection"
        victim = Victim.start(plan.args(), home, workdir)
        # A kill point is bounded by results committed, not by time alone: on a fast machine a backtest of
        # this batch takes 20-70 ms, so a pause in seconds would run through most of the batch (it did, and
        # the batch was done before enough kills had hit it).
        settle_until: float | None = None
        while victim.alive():
            now, recorded = time.monotonic(), results_recorded(home)
            if mode == "results":
                if settle_until is None and recorded >= before + more:
                    settle_until = now + settle
                # Inside the next run, or just after its save: the pause ends at the next committed result.
                if settle_until is not None and (now >= settle_until or recorded > before + more):
                    break
            if mode == "delay" and (now - victim.started >= delay or recorded > before):
                break  # in the start (imports, config, forking the pool) or the first run
            if mode == "projection" and recorded >= total and holds_open(victim.pid, readmodel):
                time.sleep(tail_delay)
                break
            time.sleep(POLL_S)
        if not victim.alive():  # it finished before its kill point: a completed run, not a kill
            code, _, err = victim.finish()
            assert code == 0, f"the batch failed on its own (seed {SEED}):\n{err}"
            continue
        workers = victim.kill()
        orphans = wait_until_gone(workers)
        assert not orphans, f"worker processes {orphans} outlived the SIGKILLed batch (seed {SEED})"
        kills.append(Kill(mode, before, results_recorded(home)))
        snapshots.append(result_snapshot(home))
    return kills, snapshots


@pytest.mark.parametrize(
    "plan", [pytest.param(SHORT_BATCH, id="short"), pytest.param(LONG_BATCH, id="long", marks=pytest.mark.slow)]
)
def test_a_batch_killed_at_random_points_records_each_combination_exactly_once(
    plan: BatchPlan, btledger_home: Path, tmp_path: Path
) -> None:
    home = btledger_home
    expected = {backtest_id(spec) for spec in parse(RunBatch, plan.data()).specs()}
    total = len(expected)

    kills, snapshots = kill_batch_repeatedly(plan, home, tmp_path, random.Random(SEED))
    code, out, err = Victim.start(plan.args(), home, tmp_path).finish()
    assert code == 0 and "Traceback" not in err, err

    # The kills hit the batch while it had work to do (not only restarts of a finished one).
    assert len(kills) >= 10
    mid_batch = [k for k in kills if k.at < total]
    assert len(mid_batch) >= (plan.kills - plan.tail_kills) // 2, kills
    assert any(k.at > k.before for k in kills), "no kill came after a result was committed"

    # The last run reports every combination: recorded now, or skipped as recorded by a killed run.
    report = json.loads(out)
    assert {UUID(r["id"]) for r in report["results"]} == expected
    assert report["summary"]["failed"] == 0
    assert report["summary"]["recorded"] + report["summary"]["skipped"] == total

    # Event store: one ResultRecorded per combination; nothing committed before a kill was lost or changed.
    final = result_snapshot(home)
    per_aggregate = Counter(UUID(oid) for oid, _ in final)
    assert set(per_aggregate) == expected
    assert set(per_aggregate.values()) == {1}, {k: n for k, n in per_aggregate.items() if n != 1}
    for kill, snapshot in zip(kills, snapshots, strict=True):
        assert snapshot.items() <= final.items(), f"results committed before {kill} changed or vanished"
    ledger = open_ledger(home)
    for identity in expected:
        assert [e.event_type for e in ledger.history(identity)] == ["Registered", "ResultRecorded"]

    # Read models: each result once, with its trades; equal to a clean rebuild.
    with ReadModel.open(home / "readmodel.duckdb") as readmodel:
        assert readmodel.position() == ledger.head()
        cur = readmodel.cursor()
        rows = cur.execute("SELECT id, trades FROM backtests").fetchall()
        assert len(rows) == total and {UUID(i) for i, _ in rows} == expected
        trade_rows = dict(cur.execute("SELECT backtest_id, count(*) FROM trades GROUP BY ALL").fetchall())
        for identity, trades in rows:
            outcome = ledger.get(UUID(identity)).outcome
            assert outcome is not None
            assert trade_rows.get(identity, 0) == len(outcome.trades["size"]) == trades == outcome.metrics["trades"]
        assert cur.execute("SELECT count(*), count(DISTINCT position) FROM ledger_events").fetchone() == (
            ledger.head(),
            ledger.head(),
        )
        assert cur.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)
        actual = table_rows(readmodel)
    clean = clean_rebuild(ledger, tmp_path)
    assert differences(actual, clean) == {}
    assert actual == clean


# --- the projection --------------------------------------------------------------------------------

HEAVY_TRADES = 250
CATCH_UP_BATCH = 20


@dataclass(frozen=True)
class ProjectionPlan:
    first_results: int  # in the ledger before anything is projected
    more_results: int  # appended before the catch-up kills
    catch_up_kills: int
    rebuild_kills: int


SHORT_PROJECTION = ProjectionPlan(first_results=240, more_results=200, catch_up_kills=6, rebuild_kills=4)
LONG_PROJECTION = ProjectionPlan(first_results=600, more_results=600, catch_up_kills=20, rebuild_kills=10)


def decide(ledger: Ledger, first: int, count: int, salt: int) -> None:
    """Decisions on results first..first+count: favourites, deletions, restores, robustness tests, reruns."""
    for index in range(first, first + count):
        identity = backtest_id(synthetic_spec(index))
        try:
            if index % 5 == salt % 5:
                ledger.toggle_favorite(identity)
            if index % 7 == salt % 7:
                ledger.delete(identity, reason=f"crash test {salt}")
            if index % 21 == salt % 21:
                ledger.restore(identity)
            if index % 11 == salt % 11:
                ledger.record_robustness_test(
                    identity,
                    test_id=f"t{salt}-{index}",
                    kind="montecarlo",
                    parameters={"paths": 100},
                    seed=index,
                    summary={"ruin_probability": 0.1},
                    metrics={"p5_return_pct": -1.5, "median_return_pct": 2.5},
                )
            if index % 13 == salt % 13:  # a rerun: a second result for the same key
                ledger.record_outcome(synthetic_spec(index), synthetic_outcome(index + 1000, HEAVY_TRADES // 2))
        except Conflict:  # e.g. a favourite toggle on a result deleted just before: refused, as it should be
            pass


def catch_up_until_killed(home: Path, kill_after: int | None, settle: float) -> tuple[list[int], bool]:
    """Run the catch-up child in step mode; once it reports a position >= kill_after, let it go on and
    SIGKILL it `settle` s later (inside or just after the next batch: it cannot get further).

    Returns the positions it reported and whether it was killed (False: it finished)."""
    env = {**os.environ, "BTLEDGER_HOME": str(home)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.catch_up_child", str(CATCH_UP_BATCH), "--step"],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    positions: list[int] = []
    killed = False
    for line in child.stdout:
        if line.strip() == "done":
            break
        positions.append(int(line))
        child.stdin.write("go\n")
        child.stdin.flush()
        if kill_after is not None and positions[-1] >= kill_after:
            time.sleep(settle)
            child.send_signal(signal.SIGKILL)
            killed = True
            break
    child.stdin.close()
    child.stdout.close()
    code = child.wait(timeout=120)
    assert code == (-signal.SIGKILL if killed else 0), f"the catch-up child exited with {code}"
    return positions, killed


def rebuild_until_killed(home: Path, workdir: Path, delay: float) -> tuple[bool, float | None]:
    """Run `btledger rebuild`; SIGKILL it `delay` s after it opened the read model file.

    Returns whether it was killed and, if it finished, the seconds it reported."""
    victim = Victim.start(["-m", "btledger", "rebuild", "--json"], home, workdir)
    opened_at: float | None = None
    while victim.alive():
        if opened_at is None and holds_open(victim.pid, home / "readmodel.duckdb"):
            opened_at = time.monotonic()
        if opened_at is not None and time.monotonic() - opened_at >= delay:
            break
        time.sleep(POLL_S / 2)
    if victim.alive():
        victim.kill()
        return True, None
    code, out, err = victim.finish()
    assert code == 0 and "Traceback" not in err, err
    return False, float(json.loads(out)["seconds"])


def expected_live(ledger: Ledger) -> dict[str, tuple[bool, int]]:
    """The live results the ledger implies: id → (favourite, trade count)."""
    live = {}
    for identity in ledger.backtest_ids():
        backtest = ledger.get(identity)
        if backtest.status == "recorded" and backtest.outcome is not None:
            live[str(identity)] = (backtest.favorite, len(backtest.outcome.trades["size"]))
    return live


@pytest.mark.parametrize(
    "plan",
    [pytest.param(SHORT_PROJECTION, id="short"), pytest.param(LONG_PROJECTION, id="long", marks=pytest.mark.slow)],
)
def test_catch_ups_and_rebuilds_killed_at_random_points_apply_every_event_exactly_once(
    plan: ProjectionPlan, btledger_home: Path, tmp_path: Path
) -> None:
    home, rng = btledger_home, random.Random(SEED + 1)
    ledger = open_ledger(home)
    add_results(ledger, 0, plan.first_results, HEAVY_TRADES)
    decide(ledger, 0, plan.first_results, salt=1)

    # A rebuild of a missing read model, uninterrupted: how long a rebuild takes here, to aim the kills.
    killed, seconds = rebuild_until_killed(home, tmp_path, delay=float("inf"))
    assert not killed and seconds is not None
    committed = ledger.head()

    # Catch-ups of the events appended since, killed after random committed positions.
    add_results(ledger, plan.first_results, plan.more_results, HEAVY_TRADES)
    decide(ledger, 0, plan.first_results + plan.more_results, salt=2)
    ledger.delete_strategy("DonchianBreakout")  # one save deleting many results at once
    targets = sorted(rng.sample(range(committed + 1, ledger.head() - 3 * CATCH_UP_BATCH), plan.catch_up_kills))
    kills: list[Kill] = []
    for target in targets:
        settle = rng.uniform(0, 0.05)
        if target <= committed:
            target = committed + 1
        positions, killed = catch_up_until_killed(home, target, settle)
        assert positions == sorted(set(positions)), "positions went backwards or repeated within a run"
        assert not positions or positions[0] > committed, "a restart re-applied a committed batch"
        assert killed, f"the catch-up finished before its kill point (seed {SEED})"
        kills.append(Kill("catch-up", committed, positions[-1] if positions else committed))
        committed = max([committed, *positions])

    # Rebuilds killed at random moments after they opened the read model (the live schema must survive).
    attempts = 0
    rebuilds_killed = 0
    while rebuilds_killed < plan.rebuild_kills:
        attempts += 1
        assert attempts <= 3 * plan.rebuild_kills, f"too many rebuilds finished before their kill point (seed {SEED})"
        killed, _ = rebuild_until_killed(home, tmp_path, delay=rng.uniform(0, 1.2 * seconds))
        if killed:
            rebuilds_killed += 1
            kills.append(Kill("rebuild", committed, committed))
        else:
            committed = ledger.head()  # a finished rebuild moved the live schema to the head

    # More events, then a catch-up that is left to finish: it resumes after the last committed position.
    decide(ledger, 0, plan.first_results + plan.more_results, salt=3)
    positions, killed = catch_up_until_killed(home, None, 0)
    assert not killed and positions and positions[0] > committed and positions[-1] == ledger.head()
    assert len(kills) >= 10, kills

    live = expected_live(ledger)
    with ReadModel.open(home / "readmodel.duckdb") as readmodel:
        assert readmodel.position() == ledger.head()
        assert len(schemas(readmodel)) == 1, "a killed rebuild's schema was left behind"
        cur = readmodel.cursor()
        favorites = dict(cur.execute("SELECT id, favorite FROM backtests").fetchall())
        trade_counts = dict(cur.execute("SELECT backtest_id, count(*) FROM trades GROUP BY ALL").fetchall())
        assert {i: (favorite, trade_counts.get(i, 0)) for i, favorite in favorites.items()} == live
        assert cur.execute("SELECT count(*), count(DISTINCT position) FROM ledger_events").fetchone() == (
            ledger.head(),
            ledger.head(),
        )
        assert cur.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)
        incremental = table_rows(readmodel)
    clean = clean_rebuild(ledger, tmp_path)
    assert differences(incremental, clean) == {}
    assert incremental == clean

    # A rebuild left to finish after all those kills gives the same tables again.
    killed, _ = rebuild_until_killed(home, tmp_path, delay=float("inf"))
    assert not killed
    with ReadModel.open(home / "readmodel.duckdb") as readmodel:
        assert len(schemas(readmodel)) == 1
        assert table_rows(readmodel) == clean


def test_synthetic_keys_are_distinct() -> None:
    """The projection test's keys are distinct for every index it uses (else its results would be reruns)."""
    count = LONG_PROJECTION.first_results + LONG_PROJECTION.more_results
    assert len({backtest_id(synthetic_spec(i)) for i in range(count)}) == count
