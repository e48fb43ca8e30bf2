"""Monte Carlo: distribution facts checked against closed forms, reproducibility, validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from btledger.engine.robustness import RobustnessInputError, montecarlo
from btledger.engine.robustness.montecarlo import Method, bucket_ids, simulate_paths


def trades(returns_pct: list[float], sizes: list[float] | None = None) -> dict[str, list[float]]:
    return {
        "return_pct": returns_pct,
        "size": sizes if sizes is not None else [1.0] * len(returns_pct),
        "net_pnl": [r * 10 for r in returns_pct],
    }


@pytest.mark.parametrize("method", ["bootstrap", "normal"])
@pytest.mark.parametrize("step", [2.0, -3.0])
def test_identical_returns_give_the_deterministic_compounding_on_every_path(method: Method, step: float) -> None:
    result = montecarlo(trades([step] * 4), paths=200, trades_per_path=7, method=method, seed=1)
    growth = [(1 + step / 100) ** i for i in range(8)]
    expected_return = (growth[-1] - 1) * 100
    expected_drawdown = 0.0 if step > 0 else (1 - growth[-1]) * 100
    m = result.metrics
    for stat in ("mean", "min", "p5", "p50", "p95", "max"):
        assert m[f"return_{stat}"] == pytest.approx(expected_return, abs=1e-9)
        assert m[f"drawdown_{stat}"] == pytest.approx(expected_drawdown, abs=1e-9)
    assert m["return_std"] == pytest.approx(0.0, abs=1e-9)
    # 7 losses of 3 % leave 0.97**7 ≈ 0.808 of the cash: ruined at a 10 % threshold, not at 20 %.
    assert m["risk_of_ruin_pct"] == (100.0 if step < 0 else 0.0)
    if step < 0:
        at_20 = montecarlo(trades([step] * 4), paths=50, trades_per_path=7, ruin_threshold_pct=20, seed=1)
        assert at_20.summary["risk_of_ruin_pct"] == 0.0


def test_bootstrap_draws_each_trade_with_equal_frequency() -> None:
    returns = [10.0, -10.0, 5.0, 1.0]
    paths = simulate_paths(
        np.array(returns),
        bucket_ids(np.array([1.0, 1.0, -1.0, -1.0]), np.array(returns)),
        paths=40_000,
        trades_per_path=1,
        ruin_threshold_pct=10.0,
        method="bootstrap",
        rng=np.random.default_rng(5),
    )
    values, counts = np.unique(np.round(paths.final_return_pct, 9), return_counts=True)
    assert sorted(values.tolist()) == sorted(returns)
    assert counts / counts.sum() == pytest.approx([0.25] * 4, abs=0.01)
    # Ruin is "to or below" 90 % of the initial cash: exactly the −10 % draws.
    assert paths.ruined.mean() == pytest.approx(counts[values == -10.0][0] / counts.sum())


@pytest.mark.parametrize("method", ["bootstrap", "normal"])
def test_mean_final_growth_matches_the_product_of_expected_steps(method: Method) -> None:
    # Steps are independent, so E[Π(1 + r)] = (1 + E[r])**T for either method (bucket means are preserved).
    returns = [4.0, -2.0, 3.0, -1.0, 6.0, -5.0, 2.0]
    sizes = [1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 1.0]
    result = montecarlo(trades(returns, sizes), paths=50_000, trades_per_path=10, method=method, seed=11)
    expected = ((1 + np.mean(returns) / 100) ** 10 - 1) * 100
    assert result.metrics["return_mean"] == pytest.approx(expected, abs=0.1)


def test_normal_method_bucket_probabilities_follow_the_data() -> None:
    # One long winner (+10) and three short losers (−2, −4, −6): P(long win) = 1/4, and its std is 0.
    returns = [10.0, -2.0, -4.0, -6.0]
    paths = simulate_paths(
        np.array(returns),
        bucket_ids(np.array([1.0, -1.0, -1.0, -1.0]), np.array(returns)),
        paths=40_000,
        trades_per_path=1,
        ruin_threshold_pct=50.0,
        method="normal",
        rng=np.random.default_rng(3),
    )
    finals = paths.final_return_pct
    assert np.isfinite(finals).all()
    assert np.mean(np.isclose(finals, 10.0)) == pytest.approx(0.25, abs=0.01)
    losers = finals[~np.isclose(finals, 10.0)]
    assert losers.mean() == pytest.approx(-4.0, abs=0.05)
    assert losers.std(ddof=1) == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize("method", ["bootstrap", "normal"])
def test_single_trade_buckets_produce_no_nan(method: Method) -> None:
    # Every bucket (long/short × win/loss) holds exactly one trade: the seed's std was NaN for each.
    result = montecarlo(trades([5.0, -3.0, 2.0, -1.0], [1.0, 1.0, -1.0, -1.0]), paths=500, method=method, seed=2)
    values = list(result.metrics.values()) + list(result.summary.values())
    assert all(v is not None and math.isfinite(v) for v in values)
    assert result.metrics["long_win_trades"] == 1.0
    assert result.metrics["short_loss_probability"] == 0.25


def test_a_loss_beyond_everything_stops_equity_at_zero() -> None:
    result = montecarlo(trades([-150.0]), paths=10, trades_per_path=3, ruin_threshold_pct=100, seed=0)
    assert result.summary["return_p50"] == -100.0
    assert result.summary["drawdown_p95"] == 100.0
    assert result.summary["risk_of_ruin_pct"] == 100.0


def test_summary_statistics_agree_with_pandas_describe() -> None:
    rng = np.random.default_rng(8)
    returns = rng.normal(0.3, 2.0, 40)
    sizes = rng.choice([1.0, -1.0], 40)
    result = montecarlo(trades(returns.tolist(), sizes.tolist()), paths=300, seed=4)
    paths = simulate_paths(
        returns,
        bucket_ids(sizes, returns * 10),
        paths=300,
        trades_per_path=40,
        ruin_threshold_pct=10.0,
        method="bootstrap",
        rng=np.random.default_rng(4),
    )
    for prefix, values in (("return", paths.final_return_pct), ("drawdown", paths.max_drawdown_pct)):
        described = pd.Series(values).describe(percentiles=[0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95])
        for label, value in described.items():
            key = f"{prefix}_" + (f"p{label[:-1]}" if label.endswith("%") else label)
            assert result.metrics[key] == pytest.approx(value)


def test_drawdown_peak_starts_at_initial_cash() -> None:
    # A single −20 % step from the initial cash is a 20 % drawdown (the seed's peak also started there).
    result = montecarlo(trades([-20.0]), paths=10, trades_per_path=1, seed=0)
    assert result.summary["drawdown_p50"] == pytest.approx(20.0)


def test_same_seed_same_result_and_plain_json() -> None:
    data = trades([1.0, -2.0, 3.5, -0.5, 2.0], [1.0, -1.0, 1.0, 1.0, -1.0])
    first = montecarlo(data, paths=1000, seed=42, method="normal")
    again = montecarlo(data, paths=1000, seed=42, method="normal")
    other = montecarlo(data, paths=1000, seed=43, method="normal")
    assert first == again
    assert first != other
    encoded = json.dumps(first.to_json(), allow_nan=False)
    assert json.loads(encoded) == first.to_json()
    assert first.kind == "montecarlo"
    assert first.parameters == {"paths": 1000, "trades_per_path": 5, "ruin_threshold_pct": 10.0, "method": "normal"}
    assert all(type(v) is float for v in first.metrics.values())


def test_without_seed_a_seed_is_drawn_and_reproduces_the_result() -> None:
    data = trades([1.0, -2.0, 3.0])
    first = montecarlo(data, paths=100)
    assert first == montecarlo(data, paths=100, seed=first.seed)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"paths": 0}, "paths"),
        ({"paths": -5}, "paths"),
        ({"paths": 1.5}, "paths"),
        ({"trades_per_path": 0}, "trades_per_path"),
        ({"ruin_threshold_pct": 0}, "ruin_threshold_pct"),
        ({"ruin_threshold_pct": 101}, "ruin_threshold_pct"),
        ({"method": "student"}, "method"),
        ({"seed": -1}, "seed"),
    ],
)
def test_validation_errors_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(RobustnessInputError) as caught:
        # Values of the wrong type on purpose (1.5 paths, method "student"): the check at run time is tested.
        montecarlo(trades([1.0, 2.0]), **kwargs)  # type: ignore[arg-type]
    assert str(caught.value).startswith(f"{field}: ")
    assert isinstance(caught.value, ValueError)


def test_no_trades_and_bad_columns_are_rejected() -> None:
    with pytest.raises(RobustnessInputError, match=r"^trades: "):
        montecarlo(trades([]), seed=1)
    with pytest.raises(RobustnessInputError, match=r"^trades: "):
        montecarlo({"return_pct": [1.0], "size": [1.0]}, seed=1)
    with pytest.raises(RobustnessInputError, match=r"^trades: "):
        montecarlo({"return_pct": [1.0, None], "size": [1.0, 1.0], "net_pnl": [1.0, 1.0]}, seed=1)
    assert str(RobustnessInputError("paths", "must be > 0")) == "paths: must be > 0"


def test_a_test_of_more_steps_than_one_request_may_take_is_refused() -> None:
    data = trades([1.0, -1.0])
    assert montecarlo(data, paths=100_000, trades_per_path=1_000, seed=0).parameters["paths"] == 100_000  # 1e8
    with pytest.raises(RobustnessInputError) as refused:
        montecarlo(data, paths=100_001, trades_per_path=1_000, seed=0)
    assert refused.value.field == "paths"
    assert "100,001 paths × 1,000 trades is 100,001,000 steps; at most 100,000,000" in str(refused.value)
