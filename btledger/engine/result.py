"""The engine's input and output: what one backtest is (its key) and what it produced.

Everything here holds plain JSON values only (str, int, float, bool, None, lists and dicts of them),
so an outcome can cross a process boundary cheaply and be stored as an event payload unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from typing import Any

JsonScalar = str | int | float | bool | None

#: Metric columns of the `backtests` table, in contract order (see README, "Tables").
METRIC_COLUMNS: tuple[str, ...] = (
    "stability_ratio",
    "trades",
    "return_pct",
    "drawdown_pct",
    "return_dd",
    "win_rate",
    "duration_days",
    "exposure_time",
    "kelly_criterion",
    "winrate_p_value",
    "sharpe_ratio",
    "jarque_bera_stat",
    "jarque_bera_p_value",
    "skew",
    "kurtosis",
    "stability_weighted_rar",
)

#: Columns of the `trade_performance` table (besides backtest_id), the seed's BotTradePerformance in snake_case.
TRADE_PERFORMANCE_COLUMNS: tuple[str, ...] = (
    "mean_return_pct",
    "std_return_pct",
    "mean_trade_duration",
    "std_trade_duration",
    "mean_winning_return_pct",
    "std_winning_return_pct",
    "mean_losing_return_pct",
    "std_losing_return_pct",
    "long_winrate",
    "long_mean_return_pct",
    "long_std_return_pct",
    "win_long_mean_return_pct",
    "win_long_std_return_pct",
    "lose_long_mean_return_pct",
    "lose_long_std_return_pct",
    "short_winrate",
    "short_mean_return_pct",
    "short_std_return_pct",
    "win_short_mean_return_pct",
    "win_short_std_return_pct",
    "lose_short_mean_return_pct",
    "lose_short_std_return_pct",
    "profit_factor",
    "win_rate",
    "consecutive_wins",
    "consecutive_losses",
    "long_count",
    "short_count",
)

#: Columns of one trade, as stored column-wise in a result and projected into the `trades` table.
TRADE_COLUMNS: tuple[str, ...] = (
    "size",
    "entry_bar",
    "exit_bar",
    "entry_price",
    "exit_price",
    "sl",
    "tp",
    "pnl",
    "commission",
    "net_pnl",
    "return_pct",
    "entry_time",
    "exit_time",
    "duration_days",
    "equity_at_exit",
    "tag",
)


@dataclass(frozen=True)
class RunSpec:
    """The key of one backtest: everything that decides its outcome besides data and code.

    Two specs with equal `canonical()` strings are the same backtest (same ledger aggregate).
    `risk` is a percent of equity risked per trade (1 = 1 %).
    """

    strategy: str
    ticker: str
    timeframe: str
    risk: float
    date_from: date
    date_to: date
    initial_cash: float
    method: str = "pa"
    params: dict[str, JsonScalar] = field(default_factory=dict)

    def canonical(self) -> str:
        """A stable text form of the key (sorted, floats normalised) from which the id is derived."""
        return json.dumps(
            {
                "strategy": self.strategy,
                "params": {k: self.params[k] for k in sorted(self.params)},
                "ticker": self.ticker,
                "timeframe": self.timeframe,
                "risk": float(self.risk),
                "date_from": self.date_from.isoformat(),
                "date_to": self.date_to.isoformat(),
                "initial_cash": float(self.initial_cash),
                "method": self.method,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    def __hash__(self) -> int:
        # The generated hash fails on the `params` dict; this one agrees with the generated __eq__.
        return hash(
            (
                self.strategy,
                self.ticker,
                self.timeframe,
                self.risk,
                self.date_from,
                self.date_to,
                self.initial_cash,
                self.method,
                frozenset(self.params.items()),
            )
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["date_from"] = self.date_from.isoformat()
        data["date_to"] = self.date_to.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        return cls(
            strategy=data["strategy"],
            ticker=data["ticker"],
            timeframe=data["timeframe"],
            risk=float(data["risk"]),
            date_from=date.fromisoformat(str(data["date_from"])),
            date_to=date.fromisoformat(str(data["date_to"])),
            initial_cash=float(data["initial_cash"]),
            method=data.get("method", "pa"),
            params=dict(data.get("params") or {}),
        )


@dataclass(frozen=True)
class BacktestOutcome:
    """What one run produced, ready to be recorded as an event.

    `metrics` has exactly the keys of METRIC_COLUMNS, `trade_performance` those of
    TRADE_PERFORMANCE_COLUMNS, and `trades` one list per TRADE_COLUMNS entry (all of equal length;
    times as ISO-8601 UTC strings). A metric with no defined value (e.g. return/drawdown at zero
    drawdown) is None, never NaN or ±inf. `margin_cancelled_orders` counts the orders the broker
    cancelled for lack of margin (see `margin_cancels`); None for a result recorded before it was counted.
    """

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
    # Defaulted for the aggregate's snapshots taken before it was counted (its events are upcast).
    margin_cancelled_orders: int | None = None
    plot_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        # Shallow on purpose: the values are already plain JSON, and `asdict` would deep-copy every
        # trade value (it dominated the cost of recording a 200-trade result).
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BacktestOutcome:
        return cls(**data)
