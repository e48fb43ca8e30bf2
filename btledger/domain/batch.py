"""RunBatch: plan the combinations, run what is missing on the worker pool, record every outcome.

The ledger decides what runs (a live result is skipped unless `rerun`; a deleted one, with a result or
only failed runs, needs `rerun`; a failed one is tried again), the engine's pool computes in worker
processes, and each outcome is appended as it arrives, one save per combination, so a batch killed
half-way keeps what it recorded and the same batch run again records each combination exactly once.
Several batches (a plan) run as one: one numbering, one stream of jobs for the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol
from uuid import UUID

from btledger.domain.backtest import Backtest, backtest_id
from btledger.domain.commands import RunBatch, plan_specs
from btledger.domain.ledger import Ledger
from btledger.domain.plots import plot_path
from btledger.engine.result import BacktestOutcome, JsonScalar, RunSpec

if TYPE_CHECKING:
    from btledger.engine.interrupt import Interrupt

Status = Literal["queued", "running", "recorded", "skipped", "failed"]


@dataclass(frozen=True)
class Progress:
    """One state change of one combination."""

    index: int
    total: int
    spec: RunSpec
    id: UUID
    status: Status
    message: str | None = None
    metrics: dict[str, JsonScalar] | None = None
    position: int | None = None
    trade_performance: dict[str, JsonScalar] | None = None
    #: The result's orders cancelled for lack of margin (None: no result, or one recorded before they were counted).
    margin_cancelled_orders: int | None = None

    def combination_json(self) -> dict[str, object]:
        """Which result and combination this is, as every JSON view of a batch's progress shows it."""
        return {
            "id": str(self.id),
            "status": self.status,
            "strategy": self.spec.strategy,
            "ticker": self.spec.ticker,
            "timeframe": self.spec.timeframe,
            "risk": self.spec.risk,
            "date_from": self.spec.date_from.isoformat(),
            "date_to": self.spec.date_to.isoformat(),
        }

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "total": self.total,
            **self.combination_json(),
            "message": self.message,
            "metrics": self.metrics,
            "margin_cancelled_orders": self.margin_cancelled_orders,
        }


@dataclass
class BatchReport:
    results: list[Progress] = field(default_factory=list)
    last_position: int = 0

    @property
    def summary(self) -> dict[str, int]:
        counts = {"recorded": 0, "skipped": 0, "failed": 0}
        for result in self.results:
            counts[result.status] += 1
        return counts


class RunsBacktests(Protocol):
    """The engine's worker pool as the batch sees it."""

    def run(
        self,
        jobs: Iterable[tuple[RunSpec, Path | None]],
        on_start: Callable[[RunSpec], None] | None = None,
        interrupt: Interrupt | None = None,
    ) -> Iterator[tuple[RunSpec, BacktestOutcome | None, str | None]]: ...


def _skipped(index: int, total: int, spec: RunSpec, backtest: Backtest, meanwhile: bool) -> Progress:
    """A combination not run, or not recorded, because its key is settled (see `Backtest.settled`): its
    result's figures, if it has one. `meanwhile`: settled by another writer since the batch was planned."""
    if backtest.status == "deleted":
        reason = f"deleted{' meanwhile' if meanwhile else ''}; rerun (--rerun in the CLI) runs it again"
    else:
        done = "recorded meanwhile by another run" if meanwhile else "already recorded"
        reason = f"{done}; rerun (--rerun in the CLI) records a new result"
    outcome = backtest.outcome
    if outcome is None:
        return Progress(index, total, spec, backtest.id, "skipped", reason)
    return Progress(
        index,
        total,
        spec,
        backtest.id,
        "skipped",
        reason,
        outcome.metrics,
        trade_performance=outcome.trade_performance,
        margin_cancelled_orders=outcome.margin_cancelled_orders,
    )


def run_batches(
    ledger: Ledger,
    commands: Sequence[RunBatch],
    pool: RunsBacktests,
    home: Path,
    on_progress: Callable[[Progress], None] = lambda _: None,
    interrupt: Interrupt | None = None,
) -> BatchReport:
    """Run one batch, or several as one (e.g. each ticker over its own date range), and return every
    combination's final state, calling `on_progress` on each change. Combinations are numbered in order
    across the batches and share the pool, so no worker waits for a batch's last job before starting the
    next batch's first. Setting `interrupt` stops the batch at once: the pool raises `Interrupted`.

    Raises `InvalidInput` (field `batches[i]`) before anything runs when a combination is in two batches.
    """
    batch_of = plan_specs(commands)
    specs = list(batch_of)
    total = len(specs)
    report = BatchReport(last_position=ledger.head())
    index_of: dict[RunSpec, int] = {}
    jobs: list[tuple[RunSpec, Path | None]] = []

    id_of = {spec: backtest_id(spec) for spec in specs}
    recorded = ledger.recorded_ids(set(id_of.values()))
    for index, spec in enumerate(specs):
        identity = id_of[spec]
        command = commands[batch_of[spec]]
        existing = ledger.find(spec) if identity in recorded else None
        if existing is not None and existing.settled and not command.rerun:
            done = _skipped(index, total, spec, existing, meanwhile=False)
            report.results.append(done)
            on_progress(done)
            continue
        index_of[spec] = index
        jobs.append((spec, plot_path(home, command.plot, identity)))
        on_progress(Progress(index, total, spec, identity, "queued"))

    def started(spec: RunSpec) -> None:
        on_progress(Progress(index_of[spec], total, spec, id_of[spec], "running"))

    for spec, outcome, error in pool.run(jobs, on_start=started, interrupt=interrupt):
        index = index_of[spec]
        new = id_of[spec] not in recorded
        # Without rerun, a result another writer recorded (or a deletion it made) since the plan was made
        # stands: this outcome is dropped.
        if_absent = not commands[batch_of[spec]].rerun
        if outcome is not None:
            appended = ledger.record_outcome(spec, outcome, new=new, if_absent=if_absent)
        else:
            appended = ledger.record_failure(spec, error or "unknown error", new=new, if_absent=if_absent)
        if appended is None:
            done = _skipped(index, total, spec, ledger.get(id_of[spec]), meanwhile=True)
        elif outcome is not None:
            identity, position = appended
            done = Progress(
                index,
                total,
                spec,
                identity,
                "recorded",
                None,
                outcome.metrics,
                position,
                outcome.trade_performance,
                outcome.margin_cancelled_orders,
            )
        else:
            identity, position = appended
            done = Progress(index, total, spec, identity, "failed", error, None, position)
        if done.position is not None:
            report.last_position = done.position
        report.results.append(done)
        on_progress(done)

    report.results.sort(key=lambda p: p.index)
    return report
