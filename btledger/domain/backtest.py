"""The Backtest aggregate: one backtest key and everything that ever happened to its result.

Its id is derived from the key (uuid5 of `RunSpec.canonical()`), so the same run is found without a
query and two concurrent first recordings of one key clash on version 1 (optimistic concurrency).
Each event is a small immutable class with explicit fields holding plain values; the method it
decorates is the pure function that applies it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from btledger.engine.result import BacktestOutcome, JsonScalar, RunSpec

BACKTEST_NAMESPACE = uuid5(NAMESPACE_URL, "https://btledger.invalid/backtests")

#: Reason carried by each Deleted event that DeleteStrategy appends.
STRATEGY_DELETED = "strategy deleted"
#: A deletion's reason is a note for the history, not a document.
MAX_REASON_LENGTH = 500


def backtest_id(spec: RunSpec) -> UUID:
    """The aggregate id of a backtest key."""
    return uuid5(BACKTEST_NAMESPACE, spec.canonical())


class Backtest(Aggregate):
    """A backtest key with its current result, favourite flag, deletion state and robustness tests."""

    class Registered(Aggregate.Created):
        strategy: str
        params: dict[str, JsonScalar]
        ticker: str
        timeframe: str
        risk: float
        date_from: date
        date_to: date
        initial_cash: float
        method: str

    @event(Registered)
    def __init__(
        self,
        strategy: str,
        params: dict[str, JsonScalar],
        ticker: str,
        timeframe: str,
        risk: float,
        date_from: date,
        date_to: date,
        initial_cash: float,
        method: str,
    ) -> None:
        self.spec = RunSpec(
            strategy=strategy,
            params=params,
            ticker=ticker,
            timeframe=timeframe,
            risk=risk,
            date_from=date_from,
            date_to=date_to,
            initial_cash=initial_cash,
            method=method,
        )
        self.outcome: BacktestOutcome | None = None
        self.last_error: str | None = None
        self.favorite = False
        self.deleted = False
        self.robustness_tests: dict[str, dict[str, Any]] = {}

    @classmethod
    def register(cls, spec: RunSpec) -> Backtest:
        return cls._create(
            cls.Registered,
            id=backtest_id(spec),
            strategy=spec.strategy,
            params=dict(spec.params),
            ticker=spec.ticker,
            timeframe=spec.timeframe,
            risk=float(spec.risk),
            date_from=spec.date_from,
            date_to=spec.date_to,
            initial_cash=float(spec.initial_cash),
            method=spec.method,
        )

    # --- results -------------------------------------------------------------------------------

    class ResultRecorded(Aggregate.Event):
        """A completed run. Version 2 added `currency` and `bars`, version 3 `margin_cancelled_orders`
        (older events are upcast)."""

        class_version = 3

        metrics: dict[str, JsonScalar]
        trade_performance: dict[str, JsonScalar]
        trades: dict[str, list[JsonScalar]]
        data_source: str
        data_fingerprint: str
        bars: int
        strategy_fingerprint: str
        versions: dict[str, str]
        costs: dict[str, JsonScalar]
        currency: str
        wall_time_s: float
        margin_cancelled_orders: int | None
        plot_path: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # v1 results were always in the account currency (USD) and did not count bars.
            state.setdefault("currency", "USD")
            trades = state.get("trades") or {}
            state.setdefault("bars", 0 if not trades else -1)

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            # Cancellations went uncounted before v3: unknown, not none.
            state.setdefault("margin_cancelled_orders", None)

    @event(ResultRecorded)
    def _record_result(
        self,
        metrics: dict[str, JsonScalar],
        trade_performance: dict[str, JsonScalar],
        trades: dict[str, list[JsonScalar]],
        data_source: str,
        data_fingerprint: str,
        bars: int,
        strategy_fingerprint: str,
        versions: dict[str, str],
        costs: dict[str, JsonScalar],
        currency: str,
        wall_time_s: float,
        margin_cancelled_orders: int | None,
        plot_path: str | None,
    ) -> None:
        self.outcome = BacktestOutcome(
            metrics=metrics,
            trade_performance=trade_performance,
            trades=trades,
            data_source=data_source,
            data_fingerprint=data_fingerprint,
            bars=bars,
            strategy_fingerprint=strategy_fingerprint,
            versions=versions,
            costs=costs,
            currency=currency,
            wall_time_s=wall_time_s,
            margin_cancelled_orders=margin_cancelled_orders,
            plot_path=plot_path,
        )
        self.last_error = None
        # A new result replaces the old one: robustness tests of the old result no longer apply, and a
        # deleted key run again (only with `rerun`) is live again.
        self.robustness_tests = {}
        self.deleted = False

    def record_result(self, outcome: BacktestOutcome) -> None:
        self._record_result(**outcome.to_json())

    class RunFailed(Aggregate.Event):
        error: str

    @event(RunFailed)
    def record_failure(self, error: str) -> None:
        self.last_error = error

    # --- decisions -----------------------------------------------------------------------------

    class FavoriteToggled(Aggregate.Event):
        """Carries the resulting value, so the history reads without replay."""

        favorite: bool

    @event(FavoriteToggled)
    def _set_favorite(self, favorite: bool) -> None:
        self.favorite = favorite

    def toggle_favorite(self) -> bool:
        self._set_favorite(favorite=not self.favorite)
        return self.favorite

    class Deleted(Aggregate.Event):
        reason: str

    @event(Deleted)
    def delete(self, reason: str) -> None:
        self.deleted = True

    def delete_at(self, reason: str, timestamp: datetime) -> None:
        """Delete as part of one change to many results, all at its one moment (DeleteStrategy): a ranking
        asked as of any time then sees all of them deleted, or none."""
        self.trigger_event(self.Deleted, reason=reason, timestamp=timestamp)

    class Restored(Aggregate.Event):
        pass

    @event(Restored)
    def restore(self) -> None:
        self.deleted = False

    class RobustnessTestRecorded(Aggregate.Event):
        test_id: str
        kind: str
        parameters: dict[str, JsonScalar]
        seed: int
        summary: dict[str, JsonScalar]
        metrics: dict[str, JsonScalar]

    @event(RobustnessTestRecorded)
    def record_robustness_test(
        self,
        test_id: str,
        kind: str,
        parameters: dict[str, JsonScalar],
        seed: int,
        summary: dict[str, JsonScalar],
        metrics: dict[str, JsonScalar],
    ) -> None:
        self.robustness_tests[test_id] = {
            "kind": kind,
            "parameters": parameters,
            "seed": seed,
            "summary": summary,
            "metrics": metrics,
        }

    # --- derived state -------------------------------------------------------------------------

    @property
    def status(self) -> str:
        """`recorded` (a live result), `deleted`, `failed` (last attempt failed, no result) or `pending`."""
        if self.deleted:
            return "deleted"
        if self.outcome is not None:
            return "recorded"
        if self.last_error is not None:
            return "failed"
        return "pending"

    @property
    def deletable(self) -> bool:
        """A live result, or a key whose runs all failed: deleting the latter stops batches retrying it."""
        return self.status in ("recorded", "failed")

    @property
    def settled(self) -> bool:
        """A batch runs a settled key again only when asked to rerun: it holds a live result, or it was
        deleted (with a result or not). A failed key is not settled: every batch tries it again."""
        return self.status in ("recorded", "deleted")
