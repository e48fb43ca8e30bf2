"""Luck test against a hand-computed 10-trade example, plus edge cases and validation."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from btledger.engine.robustness import RobustnessInputError, luck_test

# Ten trades in exit order. Best: trade 2 (+50 %), worst: trade 6 (−50 %).
RETURNS = [10.0, 50.0, -10.0, 20.0, 25.0, -50.0, -20.0, 5.0, 0.0, 10.0]


def trades(returns_pct: list[float], exit_bars: list[int] | None = None) -> dict[str, list[float] | list[int]]:
    return {
        "return_pct": returns_pct,
        # net_pnl has the return's sign; a 0 % trade has net_pnl 0 and is not a win.
        "net_pnl": [r * 3 for r in returns_pct],
        "exit_bar": exit_bars if exit_bars is not None else [10 * (i + 1) for i in range(len(returns_pct))],
    }


@pytest.mark.parametrize("percent", [10.0, 5.0])  # 5 % of 10 = 0.5 rounds half up to 1 (banker's gave 0)
def test_hand_computed_example(percent: float) -> None:
    result = luck_test(trades(RETURNS), initial_cash=1000.0, percent=percent)
    # Without trades 2 and 6, from 1000: ×1.1 ×0.9 ×1.2 ×1.25 ×0.8 ×1.05 ×1.0 ×1.1
    curve = [1000.0, 1100.0, 990.0, 1188.0, 1485.0, 1188.0, 1247.4, 1247.4, 1372.14]
    r2 = statistics.correlation(list(range(9)), curve) ** 2
    s = result.summary
    assert s["return_pct"] == pytest.approx(37.214)  # the seed's 1372.14 / 1100 − 1 = 24.7 % dropped trade 1
    assert s["drawdown_pct"] == pytest.approx(20.0)  # 1485 → 1188
    assert s["return_dd"] == pytest.approx(37.214 / 20.0)
    assert s["stability_ratio"] == pytest.approx(r2)
    assert s["stability_weighted_rar"] == pytest.approx(37.214 / 21.0 * math.log(9) * r2)
    assert s["win_rate"] == pytest.approx(62.5)  # 5 of the 8 remaining have net_pnl > 0
    assert s["trades"] == 8.0
    assert s["trades_removed_each_end"] == 1.0
    # All ten trades: 1000 → 1100 → 1650 → 1485 → 1782 → 2227.5 → 1113.75 → 891 → 935.55 → 935.55 → 1029.105
    assert s["baseline_return_pct"] == pytest.approx(2.9105)
    assert s["baseline_drawdown_pct"] == pytest.approx(60.0)
    assert result.metrics["final_equity"] == pytest.approx(1372.14)
    assert result.metrics["removed_top_1"] == 2.0
    assert result.metrics["removed_bottom_1"] == 6.0
    assert result.kind == "luck"
    assert result.seed == 0
    assert result.parameters == {"percent": percent, "initial_cash": 1000.0}
    json.dumps(result.to_json(), allow_nan=False)


def test_two_per_end_are_ranked() -> None:
    result = luck_test(trades(RETURNS), initial_cash=1000.0, percent=15.0)  # 1.5 → 2
    m = result.metrics
    assert (m["removed_top_1"], m["removed_top_2"]) == (2.0, 5.0)  # +50, +25
    assert (m["removed_bottom_1"], m["removed_bottom_2"]) == (6.0, 7.0)  # −50, −20
    assert m["trades"] == 6.0


def test_equity_follows_exit_order_not_row_order() -> None:
    # Rows 1 and 2 swapped in the table but exit_bar keeps the real order: same curve, numbers follow rows.
    rows = [RETURNS[1], RETURNS[0], *RETURNS[2:]]
    bars = [20, 10, *[10 * (i + 1) for i in range(2, 10)]]
    shuffled = luck_test(trades(rows, bars), initial_cash=1000.0, percent=10.0)
    assert shuffled.summary["return_pct"] == pytest.approx(37.214)
    assert shuffled.summary["drawdown_pct"] == pytest.approx(20.0)
    assert shuffled.metrics["removed_top_1"] == 1.0


def test_a_first_losing_trade_counts_as_drawdown() -> None:
    result = luck_test(trades([-10.0, 30.0, 5.0, -40.0]), initial_cash=500.0, percent=25.0)  # k = 1
    # Remaining in exit order: −10 %, +5 %: 500 → 450 → 472.5.
    assert result.summary["return_pct"] == pytest.approx(-5.5)
    assert result.summary["drawdown_pct"] == pytest.approx(10.0)
    assert result.metrics["final_equity"] == pytest.approx(472.5)


def test_ties_are_broken_by_trade_number_and_flat_curves_are_none() -> None:
    result = luck_test(trades([0.0] * 4), initial_cash=100.0, percent=25.0)
    assert result.metrics["removed_top_1"] == 1.0
    assert result.metrics["removed_bottom_1"] == 4.0
    s = result.summary
    assert (s["return_pct"], s["drawdown_pct"], s["return_dd"]) == (0.0, 0.0, None)
    assert s["stability_ratio"] is None
    assert s["stability_weighted_rar"] is None
    assert s["win_rate"] == 0.0


def test_removing_every_trade_leaves_the_initial_cash() -> None:
    result = luck_test(trades([3.0, -1.0]), initial_cash=100.0, percent=25.0)  # 0.5 → 1 per end
    s = result.summary
    assert s["trades"] == 0.0
    assert (s["return_pct"], s["drawdown_pct"], s["return_dd"], s["win_rate"]) == (0.0, 0.0, None, None)
    assert (s["stability_ratio"], s["stability_weighted_rar"]) == (None, 0.0)
    assert result.metrics["final_equity"] == 100.0


def test_reproducible() -> None:
    assert luck_test(trades(RETURNS), initial_cash=1000.0) == luck_test(trades(RETURNS), initial_cash=1000.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"percent": 0}, "percent"),
        ({"percent": 50}, "percent"),
        ({"percent": -3}, "percent"),
        ({"percent": float("nan")}, "percent"),
        ({"initial_cash": 0}, "initial_cash"),
    ],
)
def test_validation_errors_name_the_field(kwargs: dict[str, float], field: str) -> None:
    arguments = {"initial_cash": 1000.0, "percent": 5.0, **kwargs}
    with pytest.raises(RobustnessInputError, match=rf"^{field}: "):
        luck_test(trades(RETURNS), **arguments)


def test_no_trades_is_rejected() -> None:
    with pytest.raises(RobustnessInputError, match=r"^trades: "):
        luck_test(trades([]), initial_cash=1000.0)


@pytest.mark.parametrize(
    ("returns", "percent", "message"),
    [
        # 5 % of 7 = 0.35 rounds to 0; 50 / 7 = 7.14… is not enough (0.9998 + rounding), 7.15 is.
        ([1.0] * 7, 5.0, "percent: 5 % of 7 trades removes none at either end; use at least 7.15"),
        ([1.0] * 9, 5.0, "percent: 5 % of 9 trades removes none at either end; use at least 5.56"),
        ([1.0], 25.0, "percent: 25 % of 1 trade removes none; the luck test needs at least 2 trades"),
    ],
)
def test_a_percent_that_removes_no_trade_is_refused(returns: list[float], percent: float, message: str) -> None:
    with pytest.raises(RobustnessInputError) as refused:
        luck_test(trades(returns), initial_cash=1000.0, percent=percent)
    assert str(refused.value) == message


def test_the_percent_suggested_is_the_least_that_removes_a_trade_at_each_end() -> None:
    for n in range(2, 200):
        with pytest.raises(RobustnessInputError) as refused:
            luck_test(trades([1.0] * n), initial_cash=1000.0, percent=0.01)
        least = float(str(refused.value).rsplit(" ", 1)[-1])
        result = luck_test(trades([1.0] * n), initial_cash=1000.0, percent=least)
        assert result.metrics["trades_removed_each_end"] == 1.0, n
        with pytest.raises(RobustnessInputError):  # a hundredth less removes none
            luck_test(trades([1.0] * n), initial_cash=1000.0, percent=least - 0.01)
