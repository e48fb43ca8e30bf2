"""Audit: re-run a recorded result and say whether it reproduces.

A result reproduces when the same key on data with the same fingerprint, with strategy code of the
same fingerprint and the same costs (instruments config), gives every metric again, and as many orders
cancelled for lack of margin (checked when the result counted them: results recorded before they were
counted hold None). Changed data, code or costs are reported as such, not as a mismatch: the ledger
cannot expect the same numbers from different inputs. (The risk-free rate in settings is not recorded
with a result: changed, it shows as a mismatch of the Sharpe ratio.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal
from uuid import UUID

from btledger.domain.errors import Conflict
from btledger.domain.ledger import Ledger
from btledger.engine.errors import SpecError
from btledger.engine.result import BacktestOutcome, JsonScalar, RunSpec

#: An input of a result that a re-run found different: the same numbers cannot be expected of it.
Change = Literal["data_changed", "strategy_changed", "costs_changed"]
Verdict = Literal["reproduced", "mismatch", Change]

#: Relative tolerance for float metrics: a re-run is deterministic, this only absorbs libm noise.
REL_TOL = 1e-9


@dataclass(frozen=True)
class Verification:
    id: UUID
    verdict: Verdict
    recorded_data_fingerprint: str
    current_data_fingerprint: str
    recorded_strategy_fingerprint: str
    current_strategy_fingerprint: str
    mismatches: list[dict[str, JsonScalar]] = field(default_factory=list)
    metrics_checked: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "id": str(self.id),
            "verdict": self.verdict,
            "metrics_checked": self.metrics_checked,
            "mismatches": self.mismatches,
            "recorded_data_fingerprint": self.recorded_data_fingerprint,
            "current_data_fingerprint": self.current_data_fingerprint,
            "recorded_strategy_fingerprint": self.recorded_strategy_fingerprint,
            "current_strategy_fingerprint": self.current_strategy_fingerprint,
        }


def _same(a: JsonScalar, b: JsonScalar) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
    return a == b


def changed_input(recorded: BacktestOutcome, current: BacktestOutcome) -> Change | None:
    """Which input of `recorded` its re-run `current` found changed (data, else strategy code, else costs);
    None when it ran on the same ones."""
    if current.data_fingerprint != recorded.data_fingerprint:
        return "data_changed"
    if current.strategy_fingerprint != recorded.strategy_fingerprint:
        return "strategy_changed"
    if current.costs != recorded.costs:
        return "costs_changed"
    return None


def verify(ledger: Ledger, backtest: UUID, run: Callable[[RunSpec], BacktestOutcome]) -> Verification:
    """Re-run `backtest`'s key with `run` and compare with the recorded result."""
    aggregate = ledger.get(backtest)
    recorded = aggregate.outcome
    if recorded is None:
        raise Conflict(f"backtest {backtest} has no recorded result to verify", field="id")
    try:
        current = run(aggregate.spec)
    except SpecError as error:
        # Parameters it ran with, refused now: bounds or rules its strategy declared since (SmaCross
        # n_fast=50, n_slow=20). Its code changed, so it cannot be re-run as it was.
        if error.field == "params":
            fingerprint = _strategy_fingerprint(aggregate.spec)
            if fingerprint != recorded.strategy_fingerprint:
                return _unrunnable(backtest, aggregate.spec, recorded, fingerprint)
        raise
    mismatches: list[dict[str, JsonScalar]] = []
    verdict: Verdict | None = changed_input(recorded, current)
    if verdict is None:
        for section in ("metrics", "trade_performance"):
            old, new = getattr(recorded, section), getattr(current, section)
            for name in sorted(set(old) | set(new)):
                if not _same(old.get(name), new.get(name)):
                    mismatches.append(
                        {"metric": f"{section}.{name}", "recorded": old.get(name), "recomputed": new.get(name)}
                    )
        cancels, recounted = recorded.margin_cancelled_orders, current.margin_cancelled_orders
        if cancels is not None and cancels != recounted:
            mismatches.append({"metric": "margin_cancelled_orders", "recorded": cancels, "recomputed": recounted})
        verdict = "mismatch" if mismatches else "reproduced"
    return Verification(
        id=backtest,
        verdict=verdict,
        recorded_data_fingerprint=recorded.data_fingerprint,
        current_data_fingerprint=current.data_fingerprint,
        recorded_strategy_fingerprint=recorded.strategy_fingerprint,
        current_strategy_fingerprint=current.strategy_fingerprint,
        mismatches=mismatches,
        metrics_checked=len(recorded.metrics)
        + len(recorded.trade_performance)
        + (recorded.margin_cancelled_orders is not None),
    )


def _strategy_fingerprint(spec: RunSpec) -> str:
    from btledger.engine import get_strategy

    return get_strategy(spec.strategy).fingerprint


def _unrunnable(backtest: UUID, spec: RunSpec, recorded: BacktestOutcome, strategy_fingerprint: str) -> Verification:
    """The verdict on a result that its changed strategy (now of `strategy_fingerprint`) cannot re-run:
    what changed, data or code."""
    from btledger.engine import load_frame

    data_fingerprint = load_frame(spec.ticker, spec.timeframe, spec.date_from, spec.date_to).fingerprint
    return Verification(
        id=backtest,
        verdict="data_changed" if data_fingerprint != recorded.data_fingerprint else "strategy_changed",
        recorded_data_fingerprint=recorded.data_fingerprint,
        current_data_fingerprint=data_fingerprint,
        recorded_strategy_fingerprint=recorded.strategy_fingerprint,
        current_strategy_fingerprint=strategy_fingerprint,
    )
