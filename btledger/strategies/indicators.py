"""Indicators for strategies, in pandas/numpy (no TA-Lib), shaped for `Strategy.I`: arrays in, array out.

Averages of true range and of RSI gains/losses use Wilder's smoothing (an exponential average with
alpha = 1/n), as TA-Lib does; TA-Lib seeds it with a simple mean of the first n values while
`ewm(adjust=False)` starts from the first value, so the first few dozen values differ slightly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray


def sma(values: ArrayLike, n: int) -> NDArray[np.float64]:
    """Simple moving average over `n` bars (NaN until `n` bars exist)."""
    return pd.Series(values, dtype="float64").rolling(n).mean().to_numpy()


def _wilder(values: pd.Series, n: int) -> pd.Series:
    return values.ewm(alpha=1 / n, adjust=False, min_periods=n).mean()


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, n: int = 14) -> NDArray[np.float64]:
    """Average true range over `n` bars, Wilder-smoothed."""
    high_s, low_s = pd.Series(high, dtype="float64"), pd.Series(low, dtype="float64")
    previous = pd.Series(close, dtype="float64").shift()
    true_range = pd.concat([high_s - low_s, (high_s - previous).abs(), (low_s - previous).abs()], axis=1)
    return _wilder(true_range.max(axis=1), n).to_numpy()


def rsi(close: ArrayLike, n: int = 14) -> NDArray[np.float64]:
    """Relative strength index (0..100) over `n` bars, Wilder-smoothed."""
    change = pd.Series(close, dtype="float64").diff()
    gain = _wilder(change.clip(lower=0), n)
    loss = _wilder(-change.clip(upper=0), n)
    return (100 - 100 / (1 + gain / loss)).to_numpy()


def highest(values: ArrayLike, n: int) -> NDArray[np.float64]:
    """Highest value of the `n` bars before each bar (the current bar excluded, so a close can break it)."""
    return pd.Series(values, dtype="float64").rolling(n).max().shift().to_numpy()


def lowest(values: ArrayLike, n: int) -> NDArray[np.float64]:
    """Lowest value of the `n` bars before each bar (the current bar excluded)."""
    return pd.Series(values, dtype="float64").rolling(n).min().shift().to_numpy()
