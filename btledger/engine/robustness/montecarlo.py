"""Monte Carlo test: resample a backtest's trade returns into many alternative equity paths.

Model (the seed's bucketed model): every trade falls in one of four buckets, long/short (size > 0 is
long) × win/loss (net_pnl > 0 is a win). Each simulated step picks long with probability
p_long = n_long / n, then a win with p_win|side = n_side_win / n_side, then draws a return from that
bucket; equity compounds ``equity *= 1 + r / 100`` from the initial cash. The two-stage pick is the same
as picking a bucket with probability n_bucket / n, i.e. the bucket of a uniformly drawn trade, which is
how it is drawn here (one integer per step).

Two ways to draw a return from the chosen bucket (`method`):

- ``"bootstrap"`` (default): one of the bucket's actual returns, uniformly. Combined with the bucket
  pick this is exactly the uniformly drawn trade's own return. No distributional assumption, no
  impossible draws (a winner never turns into a loser), and a one-trade bucket simply repeats its trade.
- ``"normal"``: the seed's Normal(bucket mean, bucket std, ddof 1), with std 0 for a one-trade bucket.

Per path: final return % = (equity_end / initial − 1) × 100; max drawdown % = largest fall from a running
peak that starts at the initial cash (a positive number); ruined = equity ever ≤ initial × (1 −
ruin_threshold_pct / 100). `ruin_threshold_pct` is the loss, in percent of the initial cash, that counts as
ruin: 10 means "equity fell to 90 % of the initial cash or below", which is what the seed's default config
value 90 (a threshold on remaining equity) meant; 100 means "wiped out". Risk of ruin = ruined paths /
paths × 100. Percentages are relative to the initial cash, so its amount does not change any figure.

Fixes against the seed (`monte_carlo_simulation_v2`):

1. A bucket holding one trade had std NaN, so every path that drew from it became NaN; now "bootstrap"
   repeats the trade and "normal" uses std 0.
2. Vectorised with numpy over blocks of paths (the seed looped in Python over paths × trades):
   10,000 paths × 500 trades take well under a second.
3. Seeded with ``numpy.random.default_rng(seed)``: the same seed reproduces the result exactly (the seed
   app was unseeded).
4. A step cannot lose more than the whole account: a return below −100 % (a "normal" draw, or a gap) is
   floored at −100 %, so equity stops at 0 instead of turning negative and flipping the compounding.
5. The ruin threshold is a loss percentage with documented semantics ("to or below"); the seed passed
   form percent / 100 as the fraction of equity *remaining*.
6. Drawdown is reported as a positive magnitude, like the backtest's `drawdown_pct`, and its peak starts
   at the initial cash. Risk of ruin is one figure, not a row of the drawdown column with the return
   column's value filled with 0.
7. Input is validated (paths, trades per path, threshold, no trades, non-finite returns) with errors that
   name the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from btledger.engine.result import BacktestOutcome
from btledger.engine.robustness.common import (
    RobustnessInputError,
    RobustnessResult,
    Trades,
    check_steps,
    column,
    curve_stats,
    describe,
    finite_float,
    growth_factors,
    json_float,
    positive_int,
    require_trades,
    resolve_seed,
    row_blocks,
    trade_columns,
)

Method = Literal["bootstrap", "normal"]
METHODS: tuple[Method, ...] = ("bootstrap", "normal")

#: Bucket names in bucket-id order: id = 2 × is_short + is_loss.
BUCKETS: tuple[str, ...] = ("long_win", "long_loss", "short_win", "short_loss")


@dataclass(frozen=True)
class MonteCarloPaths:
    """Per-path outcomes of a simulation, each an array of length `paths`."""

    final_return_pct: np.ndarray
    max_drawdown_pct: np.ndarray
    ruined: np.ndarray


def bucket_ids(sizes: np.ndarray, net_pnl: np.ndarray) -> np.ndarray:
    """0 long win, 1 long loss, 2 short win, 3 short loss for every trade."""
    return 2 * (sizes <= 0).astype(np.int64) + (net_pnl <= 0).astype(np.int64)


def simulate_paths(
    returns_pct: np.ndarray,
    buckets: np.ndarray,
    *,
    paths: int,
    trades_per_path: int,
    ruin_threshold_pct: float,
    method: Method,
    rng: np.random.Generator,
) -> MonteCarloPaths:
    """Simulate `paths` equity paths of `trades_per_path` steps each (inputs assumed validated)."""
    n = returns_pct.size
    factors = growth_factors(returns_pct)  # fix 4: a step loses at most everything
    if method == "normal":
        # Each trade carries its bucket's Normal parameters; fix 1: std stays 0 for a one-trade bucket.
        trade_mean = np.zeros(n)
        trade_std = np.zeros(n)
        for b in range(len(BUCKETS)):
            members = buckets == b
            group = returns_pct[members]
            if group.size:
                trade_mean[members] = group.mean()
            if group.size > 1:
                trade_std[members] = group.std(ddof=1)
    ruin_level = 1.0 - ruin_threshold_pct / 100.0
    finals, drawdowns, ruined = [], [], []
    for rows in row_blocks(paths, trades_per_path):
        shape = (rows, trades_per_path)
        # A uniformly drawn trade lies in bucket b with probability n_b / n: the seed's two-stage pick.
        picked = rng.integers(0, n, size=shape)
        if method == "bootstrap":
            growth = factors[picked]
        else:
            step_pct = trade_mean[picked] + trade_std[picked] * rng.standard_normal(shape)
            growth = growth_factors(step_pct)
        np.cumprod(growth, axis=1, out=growth)
        ruined.append(growth.min(axis=1) <= ruin_level)
        final, drawdown = curve_stats(growth)
        finals.append(final)
        drawdowns.append(drawdown)
    return MonteCarloPaths(np.concatenate(finals), np.concatenate(drawdowns), np.concatenate(ruined))


def montecarlo(
    trades: BacktestOutcome | Trades,
    *,
    paths: int = 10_000,
    trades_per_path: int | None = None,
    ruin_threshold_pct: float = 10.0,
    method: Method = "bootstrap",
    seed: int | None = None,
) -> RobustnessResult:
    """Run the Monte Carlo test on a backtest's trades (columns `return_pct`, `size`, `net_pnl`).

    `trades_per_path` defaults to the number of trades; `seed` None draws one (recorded in the result).
    """
    columns = trade_columns(trades)
    paths = positive_int("paths", paths)
    ruin_threshold_pct = finite_float("ruin_threshold_pct", ruin_threshold_pct)
    if not 0.0 < ruin_threshold_pct <= 100.0:
        raise RobustnessInputError("ruin_threshold_pct", f"must be in (0, 100], got {ruin_threshold_pct}")
    if method not in METHODS:
        raise RobustnessInputError("method", f"must be one of {', '.join(METHODS)}, got {method!r}")
    returns_pct = column(columns, "return_pct")
    require_trades(returns_pct.size)
    buckets = bucket_ids(column(columns, "size"), column(columns, "net_pnl"))
    if buckets.size != returns_pct.size:
        raise RobustnessInputError("trades", "columns return_pct, size and net_pnl differ in length")
    steps = returns_pct.size if trades_per_path is None else positive_int("trades_per_path", trades_per_path)
    check_steps("paths", paths, "paths", steps, "steps")
    seed = resolve_seed(seed)

    simulated = simulate_paths(
        returns_pct,
        buckets,
        paths=paths,
        trades_per_path=steps,
        ruin_threshold_pct=ruin_threshold_pct,
        method=method,
        rng=np.random.default_rng(seed),
    )
    metrics = {
        **describe("return", simulated.final_return_pct),
        **describe("drawdown", simulated.max_drawdown_pct),
        "risk_of_ruin_pct": json_float(simulated.ruined.mean() * 100.0),
        "trades": float(returns_pct.size),
    }
    counts = np.bincount(buckets, minlength=len(BUCKETS))
    for b, name in enumerate(BUCKETS):
        metrics[f"{name}_trades"] = float(counts[b])
        metrics[f"{name}_probability"] = float(counts[b] / returns_pct.size)
    summary_keys = (
        "return_mean",
        "return_p5",
        "return_p50",
        "return_p95",
        "drawdown_p50",
        "drawdown_p95",
        "risk_of_ruin_pct",
    )
    return RobustnessResult(
        kind="montecarlo",
        parameters={
            "paths": paths,
            "trades_per_path": steps,
            "ruin_threshold_pct": ruin_threshold_pct,
            "method": method,
        },
        seed=seed,
        summary={key: metrics[key] for key in summary_keys},
        metrics=metrics,
    )
