"""Luck test: drop the best and the worst trades and see what is left of the result.

Algorithm:

1. k = round-half-up(percent / 100 × n) trades are removed at each end (n trades; percent in (0, 50)):
   k = floor(percent × n / 100 + 0.5), so 5 % of 10 trades removes 1 trade at each end.
2. The trades are ranked by `return_pct`, best first; ties keep trade-number order (stable sort). The
   first k are the top trades, the last k the bottom trades.
3. The remaining trades are compounded in exit order (by `exit_bar`, ties by trade number) from the
   initial cash: equity_j = initial × Π(1 + r_i / 100). The curve starts at the initial cash.
4. Metrics on that curve: return % relative to the initial cash; max drawdown % (positive, running peak
   starting at the initial cash); return/drawdown (None at zero drawdown); stability ratio = R² of a
   least-squares line through the curve's points (initial cash at index 0, then one point per trade;
   None when the curve is flat or has a single point); stability-weighted RAR = (return / (1 +
   drawdown)) × ln(1 + trades remaining) × stability (0 when no trade remains); win rate = % of remaining trades with
   net_pnl > 0; final equity in account currency. The same figures over all trades are reported as
   `baseline_*` for comparison.
5. Removed trades are reported by trade number (1-based row of the trades as given) as metrics
   ``removed_top_<rank>`` (rank 1 = best) and ``removed_bottom_<rank>`` (rank 1 = worst).

The test draws no random numbers; its recorded seed is always 0.

Fixes against the seed (`run_luck_test`):

1. Return was measured from the equity after the first remaining trade, dropping that trade's
   contribution; it is now relative to the initial cash.
2. The drawdown peak started at the first remaining trade; it now starts at the initial cash (the same
   curve), so a first trade that loses counts as drawdown.
3. k used Python's banker's rounding (5 % of 10 trades removed nothing); it is now round-half-up.
4. Return/drawdown at zero drawdown was ±inf or NaN; it is None, and so are other undefined figures.
5. The stability-weighted RAR rounded an intermediate value before multiplying; no rounding now.
6. Ties in the return ranking were broken arbitrarily (unstable sort); now by trade number.
7. No flags are written on the original trades (the seed set TopBest/TopWorst and never reset them, so
   re-runs accumulated flags); the removed trades are part of the result instead.
8. Input is validated (percent in (0, 50), initial cash > 0, no trades) with errors that name the field.
9. A percent that removes no trade (the seed's default 5 % of fewer than 10 trades) reported the result
   itself as the test's; it is refused, naming the least percent that removes one trade at each end.
"""

from __future__ import annotations

import math

import numpy as np

from btledger.engine.result import BacktestOutcome
from btledger.engine.robustness.common import (
    RobustnessInputError,
    RobustnessResult,
    Trades,
    column,
    curve_stats,
    finite_float,
    growth_factors,
    json_float,
    require_trades,
    trade_columns,
)


def trades_to_remove(percent: float, n: int) -> int:
    """Trades removed at each end: percent / 100 × n rounded half up."""
    return math.floor(percent * n / 100.0 + 0.5)


def _removes_nothing(percent: float, n: int) -> str:
    """Why `percent` of `n` trades tests nothing, and the least percent that removes a trade at each end."""
    least = math.ceil(5000 / n) / 100  # percent × n / 100 + 0.5 >= 1, rounded up to a hundredth
    if least >= 50:
        return f"{percent:g} % of {n} trade removes none; the luck test needs at least 2 trades"
    return f"{percent:g} % of {n} trades removes none at either end; use at least {least:g}"


def stability_ratio(curve: np.ndarray) -> float | None:
    """R² of the least-squares line through (index, curve); None if undefined (flat or single point)."""
    if curve.size < 2:
        return None
    index = np.arange(curve.size, dtype=np.float64)
    x = index - index.mean()
    y = curve - curve.mean()
    sst = float(y @ y)
    if sst == 0.0:
        return None
    return float((x @ y) ** 2 / ((x @ x) * sst))


def curve_metrics(
    returns_pct: np.ndarray, net_pnl: np.ndarray, initial_cash: float, prefix: str
) -> dict[str, float | None]:
    """Return, drawdown, return/drawdown, stability, stability-weighted RAR, win rate and final equity of
    compounding `returns_pct` (in exit order) from the initial cash, keyed `<prefix><name>`."""
    n = returns_pct.size
    growth = np.concatenate(([1.0], np.cumprod(growth_factors(returns_pct))))
    final, drawdown = curve_stats(growth)
    return_pct, drawdown_pct = float(final), float(drawdown)
    stability = stability_ratio(growth)
    if n == 0:
        weighted: float | None = 0.0  # no trades, no return: as the engine's backtest metric
    elif stability is None:
        weighted = None
    else:
        weighted = json_float(return_pct / (1.0 + drawdown_pct) * math.log1p(n) * stability)
    return {
        f"{prefix}return_pct": json_float(return_pct),
        f"{prefix}drawdown_pct": json_float(drawdown_pct),
        f"{prefix}return_dd": json_float(return_pct / drawdown_pct) if drawdown_pct > 0 else None,
        f"{prefix}stability_ratio": stability,
        f"{prefix}stability_weighted_rar": weighted,
        f"{prefix}win_rate": float((net_pnl > 0).mean() * 100.0) if n else None,
        f"{prefix}trades": float(n),
        f"{prefix}final_equity": json_float(initial_cash * growth[-1]),
    }


def luck_test(trades: BacktestOutcome | Trades, *, initial_cash: float, percent: float = 5.0) -> RobustnessResult:
    """Run the luck test on a backtest's trades (columns `return_pct`, `net_pnl`, optionally `exit_bar`)."""
    columns = trade_columns(trades)
    percent = finite_float("percent", percent)
    if not 0.0 < percent < 50.0:
        raise RobustnessInputError("percent", f"must be in (0, 50), got {percent}")
    initial_cash = finite_float("initial_cash", initial_cash)
    if initial_cash <= 0.0:
        raise RobustnessInputError("initial_cash", f"must be > 0, got {initial_cash}")
    returns_pct = column(columns, "return_pct")
    net_pnl = column(columns, "net_pnl")
    n = returns_pct.size
    require_trades(n)
    exit_order = np.argsort(column(columns, "exit_bar"), kind="stable") if "exit_bar" in columns else np.arange(n)
    if not net_pnl.size == exit_order.size == n:
        raise RobustnessInputError("trades", "columns return_pct, net_pnl and exit_bar differ in length")

    k = trades_to_remove(percent, n)
    if k == 0:  # the "test" would report the result itself
        raise RobustnessInputError("percent", _removes_nothing(percent, n))
    ranked = np.argsort(-returns_pct, kind="stable")
    top, bottom = ranked[:k], ranked[n - k :][::-1]
    keep = np.ones(n, dtype=bool)
    keep[top] = False
    keep[bottom] = False
    remaining = exit_order[keep[exit_order]]

    metrics = curve_metrics(returns_pct[remaining], net_pnl[remaining], initial_cash, "")
    metrics["trades_removed_each_end"] = float(k)
    metrics.update(curve_metrics(returns_pct[exit_order], net_pnl[exit_order], initial_cash, "baseline_"))
    for rank, trade in enumerate(top, start=1):
        metrics[f"removed_top_{rank}"] = float(trade + 1)
    for rank, trade in enumerate(bottom, start=1):
        metrics[f"removed_bottom_{rank}"] = float(trade + 1)
    summary_keys = (
        "return_pct",
        "drawdown_pct",
        "return_dd",
        "stability_ratio",
        "stability_weighted_rar",
        "win_rate",
        "trades",
        "trades_removed_each_end",
        "baseline_return_pct",
        "baseline_drawdown_pct",
    )
    return RobustnessResult(
        kind="luck",
        parameters={"percent": percent, "initial_cash": initial_cash},
        seed=0,
        summary={key: metrics[key] for key in summary_keys},
        metrics=metrics,
    )
