"""Robustness tests of a backtest's trades: Monte Carlo, luck test and random test.

Pure algorithms, independent of storage: each takes the column-wise trades of a `BacktestOutcome` (or
the outcome itself) and returns a `RobustnessResult` (kind, parameters, seed, summary, metrics) of plain
JSON values, ready for ``Ledger.record_robustness_test(backtest_id, test_id=..., **result.to_json())``.
The same inputs and seed give an identical result. Every module's docstring lists its fixes against the
seed application.
"""

from btledger.engine.robustness.common import RobustnessInputError, RobustnessResult
from btledger.engine.robustness.luck import luck_test
from btledger.engine.robustness.montecarlo import montecarlo
from btledger.engine.robustness.random_test import (
    RandomRun,
    StrategyProfile,
    bootstrap_compare,
    profile_strategy,
    random_test,
    run_random_strategies,
)

__all__ = [
    "RandomRun",
    "RobustnessInputError",
    "RobustnessResult",
    "StrategyProfile",
    "bootstrap_compare",
    "luck_test",
    "montecarlo",
    "profile_strategy",
    "random_test",
    "run_random_strategies",
]
