"""Every metric of a backtest, computed in this one module from its trades and its bar-level equity.

The formulas are the seed's (inventory §2), with its inconsistencies removed. Decisions:

Trades (`trade_table`, columns TRADE_COLUMNS):

- `pnl` is gross (price change × size), `commission` is entry plus exit, `net_pnl = pnl − commission`.
  (backtesting.py 0.6.6's own `PnL` column is already net of commission.)
- `return_pct = net_pnl / equity before the trade × 100`, where the equity before the trade is the
  account equity at the close of the bar before the entry bar: the equity the strategy sized the
  trade from. For trades that do not overlap this equals the seed's "previous trade's exit equity"
  (initial cash for the first), without the seed's dependence on trade order.
- `duration_days` is fractional days (exit − entry time), not the seed's floor, so intraday trades
  keep their duration. `equity_at_exit` is the account equity at the close of the exit bar.

One definition of a winning trade everywhere: `net_pnl > 0` (net of commissions); every other trade,
including an exact zero, is a loser. Win rate, Kelly, the p-value, the winning/losing segments, profit
factor and streaks all use it. Long means `size > 0`, short `size < 0`.

Metrics (`backtest_metrics`, keys METRIC_COLUMNS); "None" is stored where the value is undefined:

- `return_pct` = (last equity − first equity) / first equity × 100.
- `drawdown_pct` = max over bars of (1 − equity / running peak) × 100, a positive number.
- `return_dd` = return_pct / drawdown_pct; None when the drawdown is 0 (the seed stored ±inf or 0).
- `trades`, `duration_days` (days from first to last bar, whole days), `exposure_time` (percent of
  bars from some trade's entry bar to its exit bar inclusive, as backtesting.py).
- `win_rate` = winners / trades × 100; None without trades.
- `kelly_criterion` = W − (1 − W) × mean loss / mean win (W the win fraction, means of |net_pnl|);
  1.0 when every trade wins (the second term vanishes); None without trades or without a winner.
- `winrate_p_value` = P(X ≥ winners), X ~ Binomial(trades, 0.5) (one-sided: no better than a coin);
  1.0 without trades.
- `sharpe_ratio` = (annualised return − risk-free rate) / annualised volatility, both as backtesting.py
  0.6.6 computes them from the last equity of each calendar day (Monday-to-Sunday week, month, year for
  such bars; 252 periods a year, 365 with weekend bars, 52 weekly, 12 monthly; geometric mean return).
  backtesting.py's `run` fixes the rate at 0; here the configured rate is applied. None when the
  volatility is 0 or undefined.
- `stability_ratio` = R² of an ordinary least-squares line through the equity against the bar index
  (direction-agnostic, as in the seed); None when the equity is constant.
- `jarque_bera_stat`, `jarque_bera_p_value`, `skew` (biased), `kurtosis` (biased, excess), as scipy's
  `jarque_bera`, `skew`, `kurtosis` define them, of the per-trade equity returns: equity at each exit
  over equity at the previous exit (initial equity before the first), minus 1. One return per trade,
  the first included (the seed dropped it). None with fewer than 3 returns or when they are all equal.
- `stability_weighted_rar` = return_pct / (1 + drawdown_pct) × ln(1 + trades) × stability_ratio;
  0.0 without trades (ln 1 = 0), None when the stability ratio is None otherwise.

Trade performance (`trade_performance`, keys TRADE_PERFORMANCE_COLUMNS): means and sample standard
deviations (ddof 1) of `return_pct` over all trades, winners, losers, longs, shorts, long and short
winners and losers, and of `duration_days`; a mean is None for an empty group, a deviation for fewer
than 2 trades. `long_winrate`/`short_winrate` are percents of winners among longs/shorts, None without
any. `profit_factor` = Σ net_pnl of winners / |Σ net_pnl of losers| (money-weighted and net, unlike the
seed's gross price returns); None when there is no losing money (no losers, or losers summing to 0).
`consecutive_wins`/`consecutive_losses` are the longest runs in exit order (0 without any).

Everything is computed with numpy alone (importing scipy.stats costs seconds per process); the tests
check it against scipy and backtesting.py's own statistics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from btledger.engine.result import TRADE_COLUMNS, JsonScalar

#: Trades column-wise: TRADE_COLUMNS to arrays (a `trade_table`), or a DataFrame with those columns.
Trades = Mapping[str, Any]

_DAY_NS = 86_400 * 10**9


def _value(x: float) -> float | None:
    """A finite float, or None for NaN/±inf."""
    x = float(x)
    return x if math.isfinite(x) else None


def _floats(trades: Trades, name: str) -> np.ndarray:
    return np.asarray(trades[name], dtype="float64")


def _mean(values: np.ndarray) -> float | None:
    return _value(values.mean()) if len(values) else None


def _std(values: np.ndarray) -> float | None:
    return _value(values.std(ddof=1)) if len(values) >= 2 else None


def _win_rate(won: np.ndarray) -> float | None:
    return float(won.mean() * 100) if len(won) else None


def _longest_run(flags: np.ndarray) -> int:
    longest = current = 0
    for flag in flags.tolist():
        current = current + 1 if flag else 0
        longest = max(longest, current)
    return longest


def trade_table(bt_trades: pd.DataFrame, equity: pd.Series) -> dict[str, np.ndarray]:
    """backtesting.py's trade frame (`stats._trades`) as arrays keyed by TRADE_COLUMNS, in that order.

    `equity` is the bar-level equity curve (`stats._equity_curve.Equity`) of the same run.
    """
    curve = equity.to_numpy(dtype="float64")
    entry_bar = bt_trades["EntryBar"].to_numpy(dtype="int64")
    exit_bar = bt_trades["ExitBar"].to_numpy(dtype="int64")
    net = bt_trades["PnL"].to_numpy(dtype="float64")
    commission = bt_trades["Commission"].to_numpy(dtype="float64")
    entry_time = bt_trades["EntryTime"].to_numpy(dtype="datetime64[ns]")  # UTC
    exit_time = bt_trades["ExitTime"].to_numpy(dtype="datetime64[ns]")
    before = curve[np.maximum(entry_bar - 1, 0)]
    return {
        "size": bt_trades["Size"].to_numpy(dtype="float64"),
        "entry_bar": entry_bar,
        "exit_bar": exit_bar,
        "entry_price": bt_trades["EntryPrice"].to_numpy(dtype="float64"),
        "exit_price": bt_trades["ExitPrice"].to_numpy(dtype="float64"),
        "sl": bt_trades["SL"].to_numpy(dtype="float64"),
        "tp": bt_trades["TP"].to_numpy(dtype="float64"),
        "pnl": net + commission,
        "commission": commission,
        "net_pnl": net,
        "return_pct": net / before * 100,
        "entry_time": entry_time,
        "exit_time": exit_time,
        "duration_days": (exit_time - entry_time).astype("int64") / _DAY_NS,
        "equity_at_exit": curve[exit_bar],
        "tag": bt_trades["Tag"].to_numpy(),
    }


def _period_returns(equity: pd.Series) -> tuple[np.ndarray, int]:
    """Returns between the last equities of successive calendar periods, and periods per year.

    As backtesting.py 0.6.6 (`_stats.compute_stats`): days, or weeks / months / years when the median
    spacing of the last 100 bars is 7 / 31 / 365 days; 252 periods a year, 365 if over 60 % of 2/7 of
    the bars fall on weekends. Grouped with numpy (pandas' resample costs a millisecond per run).
    """
    stamps = pd.DatetimeIndex(equity.index).as_unit("ns").asi8
    spacing = int(np.median(np.diff(stamps[-100:])) // _DAY_NS) if len(stamps) > 1 else 0
    days = stamps // _DAY_NS
    weekends = np.isin((days + 3) % 7, (5, 6)).mean() > 2 / 7 * 0.6  # 1970-01-01 was a Thursday (3)
    periods = {7: 52, 31: 12, 365: 1}.get(spacing, 365 if weekends else 252)
    if spacing == 7:
        keys = (days + 3) // 7  # Monday-to-Sunday weeks
    elif spacing in (31, 365):
        keys = stamps.astype("datetime64[ns]").astype("datetime64[M]" if spacing == 31 else "datetime64[Y]")
        keys = keys.astype("int64")
    else:
        keys = days
    curve = equity.to_numpy(dtype="float64")
    last = curve[np.flatnonzero(np.diff(keys, append=keys[-1] + 1))] if len(keys) else curve
    return np.diff(last) / last[:-1], periods


def sharpe_ratio(equity: pd.Series, risk_free_rate: float) -> float | None:
    """Annualised Sharpe ratio of a bar-level equity curve with a DatetimeIndex (see module docstring)."""
    returns, periods = _period_returns(equity)
    if len(returns) < 2:
        return None
    growth = 1 + returns
    mean = math.exp(np.log(growth).mean()) - 1 if np.all(growth > 0) else 0.0
    annual_return = (1 + mean) ** periods - 1
    variance = (returns.var(ddof=1) + (1 + mean) ** 2) ** periods - (1 + mean) ** (2 * periods)
    volatility = math.sqrt(variance) if variance > 0 else 0.0
    return _value((annual_return - risk_free_rate) / volatility) if volatility > 0 else None


def _r_squared(values: np.ndarray) -> float | None:
    if len(values) < 2 or np.ptp(values) == 0:
        return None
    # Vector dot products, not np.corrcoef's matrix product, which may start BLAS threads in workers.
    x = np.arange(len(values), dtype="float64")
    x -= x.mean()
    y = values - values.mean()
    return _value(np.dot(x, y) ** 2 / (np.dot(x, x) * np.dot(y, y)))


def _binomial_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), summed in log space (no overflow for any n)."""
    if k <= 0:
        return 1.0
    log_factorial = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1)))))
    i = np.arange(k, n + 1)
    log_terms = log_factorial[n] - log_factorial[i] - log_factorial[n - i] - n * math.log(2)
    top = log_terms.max()
    return min(1.0, float(math.exp(top) * np.exp(log_terms - top).sum()))


def _distribution(returns: np.ndarray) -> dict[str, float | None]:
    if len(returns) < 3 or np.ptp(returns) == 0:
        return dict.fromkeys(("jarque_bera_stat", "jarque_bera_p_value", "skew", "kurtosis"))
    deviations = returns - returns.mean()
    m2, m3, m4 = (np.mean(deviations**power) for power in (2, 3, 4))
    skew = m3 / m2**1.5
    kurtosis = m4 / m2**2 - 3
    statistic = len(returns) / 6 * (skew**2 + kurtosis**2 / 4)
    # The Jarque-Bera statistic is chi-squared with 2 degrees of freedom, whose survival is exp(-x/2).
    return {
        "jarque_bera_stat": _value(statistic),
        "jarque_bera_p_value": _value(math.exp(-statistic / 2)),
        "skew": _value(skew),
        "kurtosis": _value(kurtosis),
    }


def backtest_metrics(trades: Trades, equity: pd.Series, risk_free_rate: float) -> dict[str, JsonScalar]:
    """The METRIC_COLUMNS of a run from its trades (see `Trades`) and bar-level equity (DatetimeIndex)."""
    curve = equity.to_numpy(dtype="float64")
    net = _floats(trades, "net_pnl")
    n = len(net)
    won = net > 0
    wins = int(won.sum())

    return_pct = (curve[-1] - curve[0]) / curve[0] * 100
    drawdown_pct = float(np.max(1 - curve / np.maximum.accumulate(curve))) * 100
    stability = _r_squared(curve)

    in_market = np.zeros(len(curve) + 1)
    np.add.at(in_market, np.asarray(trades["entry_bar"], dtype="int64"), 1)
    np.add.at(in_market, np.asarray(trades["exit_bar"], dtype="int64") + 1, -1)
    exposure = float((np.cumsum(in_market[:-1]) > 0).mean()) * 100

    if n == 0 or wins == 0:
        kelly = None
    elif wins == n:
        kelly = 1.0
    else:
        win_fraction = wins / n
        kelly = _value(win_fraction - (1 - win_fraction) * -net[~won].mean() / net[won].mean())

    exits = _floats(trades, "equity_at_exit")
    per_trade = exits / np.concatenate(([curve[0]], exits[:-1])) - 1

    if n == 0:
        weighted = 0.0
    elif stability is None:
        weighted = None
    else:
        weighted = _value(return_pct / (1 + drawdown_pct) * math.log(1 + n) * stability)

    index = pd.DatetimeIndex(equity.index)
    return {
        "stability_ratio": stability,
        "trades": n,
        "return_pct": _value(return_pct),
        "drawdown_pct": drawdown_pct,
        "return_dd": _value(return_pct / drawdown_pct) if drawdown_pct > 0 else None,
        "win_rate": _win_rate(won),
        "duration_days": int((index[-1] - index[0]).days),
        "exposure_time": exposure,
        "kelly_criterion": kelly,
        "winrate_p_value": _binomial_tail(wins, n),
        "sharpe_ratio": sharpe_ratio(equity, risk_free_rate),
        **_distribution(per_trade),
        "stability_weighted_rar": weighted,
    }


def trade_performance(trades: Trades) -> dict[str, JsonScalar]:
    """The TRADE_PERFORMANCE_COLUMNS of a run from its trades (see `Trades`)."""
    returns = _floats(trades, "return_pct")
    durations = _floats(trades, "duration_days")
    net = _floats(trades, "net_pnl")
    won = net > 0
    long = _floats(trades, "size") > 0
    short = ~long
    losses = -net[~won].sum()

    def rate(group: np.ndarray) -> float | None:
        return _win_rate(won[group])

    def pair(prefix: str, mask: np.ndarray) -> dict[str, float | None]:
        return {f"{prefix}_mean_return_pct": _mean(returns[mask]), f"{prefix}_std_return_pct": _std(returns[mask])}

    return {
        "mean_return_pct": _mean(returns),
        "std_return_pct": _std(returns),
        "mean_trade_duration": _mean(durations),
        "std_trade_duration": _std(durations),
        "mean_winning_return_pct": _mean(returns[won]),
        "std_winning_return_pct": _std(returns[won]),
        "mean_losing_return_pct": _mean(returns[~won]),
        "std_losing_return_pct": _std(returns[~won]),
        "long_winrate": rate(long),
        **pair("long", long),
        **pair("win_long", won & long),
        **pair("lose_long", ~won & long),
        "short_winrate": rate(short),
        **pair("short", short),
        **pair("win_short", won & short),
        **pair("lose_short", ~won & short),
        "profit_factor": _value(net[won].sum() / losses) if losses > 0 else None,
        "win_rate": _win_rate(won),
        "consecutive_wins": _longest_run(won),
        "consecutive_losses": _longest_run(~won),
        "long_count": int(long.sum()),
        "short_count": int(short.sum()),
    }


def trades_json(trades: Trades) -> dict[str, list[JsonScalar]]:
    """Trades column-wise in plain JSON: floats (None for a missing SL/TP), bar numbers as ints, times as
    ISO-8601 UTC strings to the second (`2017-05-02T10:00:00+00:00`), tags as str or None."""
    columns: dict[str, list[JsonScalar]] = {}
    for name in TRADE_COLUMNS:
        values = trades[name]
        if name in ("entry_time", "exit_time"):
            # Aware times convert to UTC; naive ones are UTC already (`trade_table`).
            seconds = np.asarray(values, dtype="datetime64[s]")
            columns[name] = np.char.add(np.datetime_as_string(seconds, unit="s"), "+00:00").tolist()
        elif name in ("entry_bar", "exit_bar"):
            columns[name] = np.asarray(values, dtype="int64").tolist()
        elif name == "tag":
            columns[name] = [None if pd.isna(v) else str(v) for v in values]
        else:
            numbers = np.asarray(values, dtype="float64")
            finite = np.isfinite(numbers).tolist()
            columns[name] = [v if ok else None for v, ok in zip(numbers.tolist(), finite, strict=True)]
    return columns
