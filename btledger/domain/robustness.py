"""RecordRobustnessTest: run a Monte Carlo, luck or random test on a live result and record it.

The test's parameters and seed travel in the event, so re-running with the same seed reproduces it
exactly. The random test runs `RandomTrader` through the same engine, costs, data and key as the
result it tests; only the strategy and its parameters differ.
"""

from __future__ import annotations

import dataclasses
import uuid
from contextlib import suppress
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from btledger.domain.commands import Number, WholeNumber, _Command, parse
from btledger.domain.errors import Conflict, InvalidInput
from btledger.domain.ledger import Ledger
from btledger.engine.result import RunSpec
from btledger.engine.robustness import RobustnessResult, luck_test, montecarlo, random_test

Kind = Literal["montecarlo", "luck", "random"]
KINDS: tuple[str, ...] = ("montecarlo", "luck", "random")

#: Largest seed accepted (numpy's generators take any non-negative int; JSON and DuckDB need int64).
MAX_SEED = 2**63 - 1


class MonteCarloTest(_Command):
    seed: WholeNumber | None = Field(None, ge=0, le=MAX_SEED)
    paths: WholeNumber = Field(10_000, gt=0, le=1_000_000)
    trades_per_path: WholeNumber | None = Field(None, gt=0, le=100_000)
    # 100 is ruin as being wiped out (equity 0), which the engine allows; NaN would read "less than 100".
    ruin_threshold_pct: Number = Field(
        10.0, gt=0, le=100, allow_inf_nan=False, description="Ruin = equity falls this % below cash."
    )
    method: Literal["bootstrap", "normal"] = "bootstrap"


class LuckTest(_Command):
    percent: Number = Field(
        5.0, gt=0, lt=50, allow_inf_nan=False, description="Share of trades removed at each end, in %."
    )


class RandomTest(_Command):
    seed: WholeNumber | None = Field(None, ge=0, le=MAX_SEED)
    runs: WholeNumber = Field(10, gt=0, le=200, description="Random-trader backtests to pool.")
    iterations: WholeNumber = Field(1000, gt=0, le=100_000, description="Bootstrap resamples.")


OPTIONS: dict[str, type[_Command]] = {"montecarlo": MonteCarloTest, "luck": LuckTest, "random": RandomTest}


def run_robustness_test(
    ledger: Ledger, backtest: UUID, kind: str, options: dict[str, Any]
) -> tuple[str, RobustnessResult, int]:
    """Validate, compute and record one test; returns its id, its result and the event's position."""
    if kind not in OPTIONS:
        raise InvalidInput("kind", f"unknown test {kind!r} (known: {', '.join(KINDS)})")
    command = parse(OPTIONS[kind], options)
    aggregate = ledger.get(backtest)
    outcome = aggregate.outcome
    if aggregate.status != "recorded" or outcome is None:
        raise Conflict(f"backtest {backtest} has no live result to test", field="id")
    if isinstance(command, MonteCarloTest):
        result = montecarlo(outcome, **command.model_dump())
    elif isinstance(command, LuckTest):
        result = luck_test(outcome, initial_cash=aggregate.spec.initial_cash, percent=command.percent)
    else:
        assert isinstance(command, RandomTest)
        result = random_test(
            outcome,
            bars=outcome.bars,
            run_random=_random_trader_runner(aggregate.spec),
            runs=command.runs,
            iterations=command.iterations,
            seed=command.seed,
        )
    test_id = str(uuid.uuid4())
    position = ledger.record_robustness_test(backtest, test_id=test_id, **result.to_json())
    return test_id, result, position


#: The ATR stop parameters the shipped strategies share; the random trader sizes from the tested one's.
_STOP_PARAMS = ("sl_atr", "atr_period")


def _random_trader_runner(spec: RunSpec) -> Any:
    """RandomTrader on the tested result's key: same ticker, timeframe, dates, risk, cash and costs, each
    trade sized from a stop as far as the strategy's own ATR stop (its `sl_atr` and `atr_period`, when it
    has them), so a random trade risks as much as a real one."""
    from btledger.engine import run_backtest

    stop = _recorded_stop(spec)

    def run(params: dict[str, Any], seed: int) -> dict[str, list[Any]]:
        random_spec = dataclasses.replace(spec, strategy="RandomTrader", params={**params, **stop, "seed": seed})
        return run_backtest(random_spec).trades

    return run


def _recorded_stop(spec: RunSpec) -> dict[str, Any]:
    """The tested result's `_STOP_PARAMS` that the random trader accepts, as the result ran with them.

    Its parameters are read as recorded, not checked again against its strategy's bounds and rules: a result
    recorded before those were declared (SmaCross n_fast=50, n_slow=20) ran, and can be tested. A value the
    trader refuses (a user strategy's sl_atr = 0, no stop) leaves the trader's own.
    """
    from btledger.engine import SpecError, get_strategy
    from btledger.engine.registry import registry

    entry = registry().get(spec.strategy)
    if entry is None:  # a strategy no longer installed: the trader's own stop
        return {}
    recorded = {**entry.params, **spec.params}
    trader = get_strategy("RandomTrader")
    stop: dict[str, Any] = {}
    for name in _STOP_PARAMS:
        if name in recorded:
            with suppress(SpecError):
                stop[name] = trader.resolve_params({name: recorded[name]})[name]
    return stop
