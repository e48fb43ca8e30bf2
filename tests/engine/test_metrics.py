"""Metric functions on synthetic trades and equity, checked against values computed here with numpy/scipy."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from btledger.engine.metrics import backtest_metrics, sharpe_ratio, trade_performance, trades_json
from btledger.engine.result import METRIC_COLUMNS, TRADE_COLUMNS, TRADE_PERFORMANCE_COLUMNS

CASH = 10_000.0


def synthetic(
    net_pnls: list[float], sizes: list[float] | None = None, bars_per_trade: int = 5
) -> tuple[pd.DataFrame, pd.Series]:
    """Sequential trades, each `bars_per_trade` bars long starting at bar 1, equity stepping at each exit."""
    n = len(net_pnls)
    sizes = sizes or [1.0] * n
    bars = max(10, n * bars_per_trade + 2)
    index = pd.date_range("2020-01-01", periods=bars, freq="D", tz="UTC")
    curve = np.full(bars, CASH)
    rows = []
    equity = CASH
    for i, (pnl, size) in enumerate(zip(net_pnls, sizes, strict=True)):
        entry, exit_ = 1 + i * bars_per_trade, (i + 1) * bars_per_trade
        before = equity
        equity += pnl
        curve[exit_:] = equity
        rows.append(
            {
                "size": size,
                "entry_bar": entry,
                "exit_bar": exit_,
                "entry_price": 100.0,
                "exit_price": 100.0 + pnl / size,
                "sl": math.nan,
                "tp": 110.0,
                "pnl": pnl + 1.0,
                "commission": 1.0,
                "net_pnl": pnl,
                "return_pct": pnl / before * 100,
                "entry_time": index[entry],
                "exit_time": index[exit_],
                "duration_days": float(exit_ - entry),
                "equity_at_exit": equity,
                "tag": None,
            }
        )
    trades = pd.DataFrame(rows, columns=list(TRADE_COLUMNS))
    return trades, pd.Series(curve, index=index)


def expected_distribution(trades: pd.DataFrame) -> dict[str, float]:
    exits = trades["equity_at_exit"].to_numpy()
    r = exits / np.r_[CASH, exits[:-1]] - 1
    jb = stats.jarque_bera(r)
    return {
        "skew": stats.skew(r),
        "kurtosis": stats.kurtosis(r, fisher=True),
        "jarque_bera_stat": jb.statistic,
        "jarque_bera_p_value": jb.pvalue,
    }


def test_mixed_trades_match_independent_formulas() -> None:
    pnls = [120.0, -80.0, -40.0, 300.0, 50.0, 60.0, -200.0, 10.0]
    sizes = [1.0, -2.0, 1.0, -1.0, 3.0, 1.0, -1.0, 1.0]
    trades, equity = synthetic(pnls, sizes)
    m = backtest_metrics(trades, equity, risk_free_rate=0.0)
    assert list(m) == list(METRIC_COLUMNS)

    curve = equity.to_numpy()
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p <= 0]
    peak = np.maximum.accumulate(curve)
    drawdown = ((peak - curve) / peak).max() * 100
    ret = (curve[-1] / CASH - 1) * 100
    r2 = stats.linregress(np.arange(len(curve)), curve).rvalue ** 2
    w = len(wins) / len(pnls)
    assert m["trades"] == 8
    assert m["return_pct"] == pytest.approx(ret)
    assert m["drawdown_pct"] == pytest.approx(drawdown)
    assert m["return_dd"] == pytest.approx(ret / drawdown)
    assert m["win_rate"] == pytest.approx(w * 100)
    assert m["kelly_criterion"] == pytest.approx(w - (1 - w) / (np.mean(wins) / -np.mean(losses)))
    assert m["winrate_p_value"] == pytest.approx(stats.binomtest(len(wins), 8, 0.5, alternative="greater").pvalue)
    assert m["stability_ratio"] == pytest.approx(r2)
    assert m["stability_weighted_rar"] == pytest.approx(ret / (1 + drawdown) * math.log(9) * r2)
    assert m["duration_days"] == len(curve) - 1
    in_market = sum(e - s + 1 for s, e in zip(trades.entry_bar, trades.exit_bar, strict=True))
    assert m["exposure_time"] == pytest.approx(in_market / len(curve) * 100)
    for key, value in expected_distribution(trades).items():
        assert m[key] == pytest.approx(value), key

    tp = trade_performance(trades)
    assert list(tp) == list(TRADE_PERFORMANCE_COLUMNS)
    returns = trades["return_pct"].to_numpy()
    won = np.array(pnls) > 0
    long = np.array(sizes) > 0
    assert tp["mean_return_pct"] == pytest.approx(returns.mean())
    assert tp["std_return_pct"] == pytest.approx(returns.std(ddof=1))
    assert tp["mean_winning_return_pct"] == pytest.approx(returns[won].mean())
    assert tp["std_losing_return_pct"] == pytest.approx(returns[~won].std(ddof=1))
    assert tp["long_winrate"] == pytest.approx((won & long).sum() / long.sum() * 100)
    assert tp["short_winrate"] == pytest.approx((won & ~long).sum() / (~long).sum() * 100)
    assert tp["win_short_mean_return_pct"] == pytest.approx(returns[won & ~long].mean())
    assert tp["lose_long_mean_return_pct"] == pytest.approx(returns[~won & long].mean())
    assert tp["lose_long_std_return_pct"] is None  # a single losing long
    assert tp["profit_factor"] == pytest.approx(sum(wins) / -sum(losses))
    runs = [(k, len(list(g))) for k, g in itertools.groupby(won)]
    assert tp["consecutive_wins"] == max(n for k, n in runs if k)
    assert tp["consecutive_losses"] == max(n for k, n in runs if not k)
    assert (tp["long_count"], tp["short_count"]) == (long.sum(), (~long).sum())
    assert tp["mean_trade_duration"] == pytest.approx(4.0)


def test_no_trades() -> None:
    trades, equity = synthetic([])
    m = backtest_metrics(trades, equity, risk_free_rate=0.02)
    assert m["trades"] == 0 and m["return_pct"] == 0 and m["drawdown_pct"] == 0
    assert m["winrate_p_value"] == 1.0
    assert m["stability_weighted_rar"] == 0.0
    assert m["exposure_time"] == 0.0
    for key in ("return_dd", "win_rate", "kelly_criterion", "sharpe_ratio", "stability_ratio", "skew", "kurtosis"):
        assert m[key] is None, key
    tp = trade_performance(trades)
    assert tp["consecutive_wins"] == tp["consecutive_losses"] == tp["long_count"] == tp["short_count"] == 0
    assert all(tp[k] is None for k in TRADE_PERFORMANCE_COLUMNS if not k.endswith(("count", "wins", "losses")))


def test_one_winning_trade() -> None:
    trades, equity = synthetic([250.0])
    m = backtest_metrics(trades, equity, risk_free_rate=0.0)
    assert m["win_rate"] == 100.0
    assert m["kelly_criterion"] == 1.0
    assert m["winrate_p_value"] == pytest.approx(0.5)
    assert m["drawdown_pct"] == 0.0 and m["return_dd"] is None  # never ±inf
    assert m["jarque_bera_stat"] is None and m["skew"] is None
    tp = trade_performance(trades)
    assert tp["mean_return_pct"] == pytest.approx(2.5) and tp["std_return_pct"] is None
    assert tp["profit_factor"] is None  # no losing money: undefined, not 0 (seed) nor inf
    assert tp["short_winrate"] is None


def test_all_winners_have_zero_drawdown() -> None:
    trades, equity = synthetic([10.0, 20.0, 30.0, 40.0])
    m = backtest_metrics(trades, equity, risk_free_rate=0.0)
    assert m["drawdown_pct"] == 0.0 and m["return_dd"] is None
    assert m["kelly_criterion"] == 1.0
    assert m["winrate_p_value"] == pytest.approx(1 / 16)
    assert m["winrate_p_value"] == pytest.approx(stats.binom.sf(3, 4, 0.5))
    ret = (CASH + 100) / CASH * 100 - 100
    r2 = stats.linregress(np.arange(len(equity)), equity.to_numpy()).rvalue ** 2
    assert m["stability_weighted_rar"] == pytest.approx(ret * math.log(5) * r2)
    tp = trade_performance(trades)
    assert tp["consecutive_wins"] == 4 and tp["consecutive_losses"] == 0
    assert tp["profit_factor"] is None and tp["mean_losing_return_pct"] is None


def test_all_losers() -> None:
    trades, equity = synthetic([-10.0, -20.0, -5.0])
    m = backtest_metrics(trades, equity, risk_free_rate=0.0)
    assert m["win_rate"] == 0.0
    assert m["kelly_criterion"] is None  # no winner: W − (1 − W)·loss/win divides by zero
    assert m["winrate_p_value"] == 1.0
    assert m["return_dd"] == pytest.approx(-1.0)  # every step is a new low: drawdown == loss
    tp = trade_performance(trades)
    assert tp["profit_factor"] == 0.0
    assert tp["consecutive_losses"] == 3 and tp["consecutive_wins"] == 0
    assert tp["mean_winning_return_pct"] is None


def test_zero_net_pnl_is_a_loss_everywhere() -> None:
    trades, equity = synthetic([0.0, 5.0])
    m = backtest_metrics(trades, equity, risk_free_rate=0.0)
    tp = trade_performance(trades)
    assert m["win_rate"] == tp["win_rate"] == 50.0
    assert tp["consecutive_losses"] == 1 and tp["profit_factor"] is None


def test_sharpe_applies_the_risk_free_rate() -> None:
    rng = np.random.default_rng(1)
    index = pd.bdate_range("2021-01-01", periods=300, tz="UTC")
    equity = pd.Series(CASH * np.cumprod(1 + rng.normal(0.001, 0.01, len(index))), index=index)
    r = equity.pct_change().dropna().to_numpy()
    g = stats.gmean(1 + r) - 1
    annual = (1 + g) ** 252 - 1
    vol = math.sqrt((r.var(ddof=1) + (1 + g) ** 2) ** 252 - (1 + g) ** 504)
    for rf in (0.0, 0.02, 0.05):
        assert sharpe_ratio(equity, rf) == pytest.approx((annual - rf) / vol)


def test_trades_json_is_plain() -> None:
    trades, _ = synthetic([5.0, -3.0])
    columns = trades_json(trades)
    assert list(columns) == list(TRADE_COLUMNS)
    assert columns["sl"] == [None, None] and columns["tp"] == [110.0, 110.0]
    assert columns["entry_time"][0] == "2020-01-02T00:00:00+00:00"
    assert all(type(v) is int for v in columns["entry_bar"])
    assert all(type(v) is float for v in columns["net_pnl"])


@pytest.mark.parametrize(("wins", "n"), [(0, 0), (0, 7), (3, 7), (7, 7), (480, 1000), (900, 1000), (30, 5000)])
def test_winrate_p_value_is_the_binomial_tail(wins: int, n: int) -> None:
    pnls = [1.0] * wins + [-1.0] * (n - wins)
    trades, equity = synthetic(pnls, bars_per_trade=1)
    expected = stats.binom.sf(wins - 1, n, 0.5) if n else 1.0
    assert backtest_metrics(trades, equity, 0.0)["winrate_p_value"] == pytest.approx(expected, rel=1e-9, abs=1e-300)
