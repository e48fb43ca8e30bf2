"""Random test: is the strategy better than a random trader that trades like it?

Three steps, each usable on its own:

1. `profile_strategy(trades, bars)`: the behaviour the random trader copies. Probability of entering on a
   flat bar = trades / (bars − bars spent in a trade), since the random trader only enters when flat
   (trades / bars would under-trade it by the strategy's exposure); long share = longs / trades (size > 0
   is long); holding period in bars
   (exit_bar − entry_bar): every trade's, their mean and std (ddof 1; 0 for a single trade).
   `StrategyProfile.params()` gives the RandomTrader parameters (`prob_trade`, `prob_long`, `hold_bars`:
   the holding periods, each random trade's drawn from them with replacement, and `exit_at_stop` false:
   the trader sizes each trade from its ATR stop as the strategies do, but only its holding period ends it).
2. `run_random_strategies(run_random, params, seeds)`: one run per seed of an injected callable
   ``run_random(params, seed) -> trades`` (the engine's RandomTrader through the same data, costs and
   sizing); `random_test` derives the seeds from its own.
3. `bootstrap_compare(...)`: `iterations` times, draw n_real trades with replacement from the real trades
   and n_real from the pooled random trades; equity = initial × cumprod(1 + r / 100). Per sample: return %
   (relative to the initial cash), max drawdown % (positive, peak starting at the initial cash),
   return/drawdown, win rate % (net_pnl > 0). For each metric, per-iteration differences are oriented so
   that a positive difference means "real better": real − random for return, return/drawdown and win
   rate, but random − real for drawdown (a smaller drawdown is better). Reported per metric:
   `<m>_mean_diff`, `<m>_std_diff` (population std), `<m>_z_score` = mean / std (None when std is 0) and
   `<m>_p_value` = share of iterations with difference ≤ 0, the one-sided probability that the real
   strategy is no better than random (small = real better). Return/drawdown is undefined for a sample
   without drawdown; its figures use only iterations where both samples have one
   (`return_dd_iterations`), and are None if there are none.

`random_test(...)` chains the three into one `RobustnessResult`. Its summary shows how closely the random
runs copied the strategy: `real_trades` next to `random_trades_per_run`, `real_mean_hold_bars` next to
`random_mean_hold_bars` (realised: exit bar − entry bar of the random trades). Its seed feeds one
``numpy.random.SeedSequence``: one child gives the random runs' seeds, another the bootstrap generator, so
the same seed (and the same deterministic `run_random`) reproduces the result exactly.

Fixes against the seed (`run_random_test`):

1. The holding period was computed but passed as `avg_trade_duration`/`std_trade_duration` while the
   random trader read `avg_position_hold`/`std_position_hold`, so it always held for Normal(2, 1.5) bars;
   `StrategyProfile.params()` now emits names the trader reads (since fix 9, its holding periods).
2. The random backtests were unseeded and only the bootstrap was seeded (with the global
   ``np.random.seed(42)``); every part now derives from the test's seed, through local generators.
3. Sample return was measured from the first simulated equity point, dropping the first trade; it is now
   relative to the initial cash, and the drawdown peak starts there too.
4. Win rate was the share of returns > 0 as a fraction; it is now the % of trades with net_pnl > 0 (the
   project's single definition), resampled together with each trade's return.
5. Return/drawdown divided by a zero drawdown (±inf, NaN poisoning the means); undefined samples are
   now left out of that metric and counted, and a zero std gives a None z-score instead of inf/NaN.
6. The bootstrap is vectorised over all iterations (the seed looped in Python).
7. Input is validated (bars, runs, iterations, no trades, random runs without trades) with errors that
   name the field; iterations × trades is at most `MAX_STEPS`, as Monte Carlo's paths × trades.
8. The entry probability was trades / bars although the random trader enters only when flat, so it
   traded less often than the strategy; it is now trades / flat bars.
9. The random trades were shorter and more frequent than the strategy's, so the per-trade returns compared
   were not like for like: the trader's own stop (1.5 ATR, tighter than the strategies' 2) ended most
   trades early, and a hold drawn as max(1, round(Normal(mean, std))) was skewed upwards for a large std
   (holding periods are right-skewed: std ≈ mean). On the sample data (SmaCross EURUSD H1: 110 trades held
   15.4 bars on average) the random runs made 125 trades per run held 9.2 bars; DonchianBreakout GOOG D1
   (75 trades, 20.5 bars): 112 held 10.9. The trader now draws each hold from the strategy's own holding
   periods and exits by it only, its stop sizing the trade: 109 trades per run held 15.2 bars, and 76
   held 19.8, within the runs' sampling error. The summary shows the realised figures next to the real.
10. The random trader sized its trades from its own 1.5-ATR stop, the strategies from theirs (2 ATRs), so
    its trades were a third larger: without the stop exit its per-trade returns spread 1.3 to 1.9 times
    as wide as the strategy's on the sample data. The domain's runner passes the tested strategy's own
    `sl_atr` and `atr_period` (0.9 to 1.3 times then, the rest being the strategy's exits).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from btledger.engine.result import BacktestOutcome
from btledger.engine.robustness.common import (
    RobustnessInputError,
    RobustnessResult,
    Trades,
    check_steps,
    column,
    curve_stats,
    growth_factors,
    json_float,
    positive_int,
    require_trades,
    resolve_seed,
    row_blocks,
    trade_columns,
)

#: run_random(params, seed) -> the trades of one random backtest (a trades mapping or an outcome).
RandomRun = Callable[[dict[str, Any], int], BacktestOutcome | Trades]

#: Compared metrics, in report order.
COMPARED: tuple[str, ...] = ("return", "drawdown", "return_dd", "win_rate")


@dataclass(frozen=True)
class StrategyProfile:
    """How often, in which direction and for how long the strategy trades."""

    prob_trade: float
    prob_long: float
    mean_hold_bars: float
    std_hold_bars: float
    #: Every trade's holding period (exit bar − entry bar), in trade order.
    hold_bars: tuple[int, ...]

    def params(self) -> dict[str, Any]:
        """Parameters of the RandomTrader strategy, under the names it reads: each random trade's holding
        period is drawn from the strategy's own, and only that period ends it (its stop just sizes it)."""
        # Here, not at the top: the trader's module imports backtesting.py, which reading a test's figures needs not.
        from btledger.strategies.random_trader import format_hold_bars

        return {
            "prob_trade": self.prob_trade,
            "prob_long": self.prob_long,
            "hold_bars": format_hold_bars(np.asarray(self.hold_bars, dtype=np.int64)),
            "exit_at_stop": False,
        }


def profile_strategy(trades: BacktestOutcome | Trades, bars: int) -> StrategyProfile:
    """The strategy's trade frequency, long share and holding period (columns size, entry_bar, exit_bar)."""
    columns = trade_columns(trades)
    bars = positive_int("bars", bars)
    sizes = column(columns, "size")
    require_trades(sizes.size)
    held = _held_bars(columns, "trades")
    if held.size != sizes.size:
        raise RobustnessInputError("trades", "columns size, entry_bar and exit_bar differ in length")
    # Entries happen on flat bars only; overlapping trades could count more bars held than there are.
    flat_bars = max(float(bars - held.sum()), float(sizes.size))
    return StrategyProfile(
        prob_trade=min(1.0, sizes.size / flat_bars),
        prob_long=float((sizes > 0).mean()),
        mean_hold_bars=float(held.mean()),
        std_hold_bars=float(held.std(ddof=1)) if held.size > 1 else 0.0,
        hold_bars=tuple(held.astype(np.int64).tolist()),
    )


def _held_bars(columns: Trades, field: str) -> np.ndarray:
    held = column(columns, "exit_bar") - column(columns, "entry_bar")
    if held.size and not (np.all(held >= 0) and np.all(held == np.round(held))):
        raise RobustnessInputError(field, "exit_bar − entry_bar must be a whole number of bars ≥ 0")
    return held


def run_random_strategies(run_random: RandomRun, params: dict[str, Any], seeds: Sequence[int]) -> list[Trades]:
    """One call of `run_random` per seed (each with its own copy of `params`); returns each run's trades."""
    return [trade_columns(run_random(dict(params), int(run_seed))) for run_seed in seeds]


def _sample_metrics(
    returns_pct: np.ndarray, wins: np.ndarray, picked: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return %, drawdown %, return/drawdown (NaN at zero drawdown) and win rate % per resampled row."""
    growth = np.cumprod(growth_factors(returns_pct)[picked], axis=1)
    return_pct, drawdown_pct = curve_stats(growth)
    with np.errstate(divide="ignore", invalid="ignore"):
        return_dd = np.where(drawdown_pct > 0, return_pct / drawdown_pct, np.nan)
    win_rate = wins[picked].mean(axis=1) * 100.0
    return return_pct, drawdown_pct, return_dd, win_rate


def bootstrap_compare(
    real_returns_pct: np.ndarray,
    real_net_pnl: np.ndarray,
    random_returns_pct: np.ndarray,
    random_net_pnl: np.ndarray,
    *,
    iterations: int,
    rng: np.random.Generator,
) -> dict[str, float | None]:
    """Bootstrap comparison of real against random trades; see the module docstring for the figures."""
    iterations = positive_int("iterations", iterations)
    n_real, n_random = real_returns_pct.size, random_returns_pct.size
    require_trades(n_real)
    require_trades(n_random)
    real_wins, random_wins = real_net_pnl > 0, random_net_pnl > 0
    real_parts: list[tuple[np.ndarray, ...]] = []
    random_parts: list[tuple[np.ndarray, ...]] = []
    for rows in row_blocks(iterations, n_real):
        real_parts.append(_sample_metrics(real_returns_pct, real_wins, rng.integers(0, n_real, (rows, n_real))))
        random_parts.append(_sample_metrics(random_returns_pct, random_wins, rng.integers(0, n_random, (rows, n_real))))
    figures: dict[str, float | None] = {}
    for i, name in enumerate(COMPARED):
        real = np.concatenate([part[i] for part in real_parts])
        random = np.concatenate([part[i] for part in random_parts])
        diff = random - real if name == "drawdown" else real - random
        if name == "return_dd":
            defined = np.isfinite(diff)
            real, random, diff = real[defined], random[defined], diff[defined]
            figures["return_dd_iterations"] = float(diff.size)
        figures.update(_diff_figures(name, real, random, diff))
    return figures


def _diff_figures(name: str, real: np.ndarray, random: np.ndarray, diff: np.ndarray) -> dict[str, float | None]:
    if diff.size == 0:
        keys = ("real_mean", "random_mean", "mean_diff", "std_diff", "z_score", "p_value")
        return {f"{name}_{key}": None for key in keys}
    mean, std = float(diff.mean()), float(diff.std())
    return {
        f"{name}_real_mean": json_float(real.mean()),
        f"{name}_random_mean": json_float(random.mean()),
        f"{name}_mean_diff": json_float(mean),
        f"{name}_std_diff": json_float(std),
        f"{name}_z_score": json_float(mean / std) if std > 0 else None,
        f"{name}_p_value": float((diff <= 0).mean()),
    }


def random_test(
    trades: BacktestOutcome | Trades,
    *,
    bars: int,
    run_random: RandomRun,
    runs: int = 10,
    iterations: int = 1000,
    seed: int | None = None,
) -> RobustnessResult:
    """Profile the strategy, run `runs` random traders like it and bootstrap-compare the trades.

    `bars` is the number of price bars the backtest ran over; `trades` needs the columns size, entry_bar,
    exit_bar, return_pct and net_pnl, and each random run's result all but size.
    """
    columns = trade_columns(trades)
    profile = profile_strategy(columns, bars)
    runs = positive_int("runs", runs)
    iterations = positive_int("iterations", iterations)
    seed = resolve_seed(seed)
    real_returns, real_net = column(columns, "return_pct"), column(columns, "net_pnl")
    if not real_returns.size == real_net.size == len(columns["size"]):
        raise RobustnessInputError("trades", "columns size, return_pct and net_pnl differ in length")
    # Each iteration resamples as many trades as the result has, from the real and from the random pool:
    # a result of many trades made 100,000 iterations a request of minutes. Checked before any random run.
    check_steps("iterations", iterations, "iterations", real_returns.size, "resampled trades")

    runs_seeds, bootstrap_seeds = np.random.SeedSequence(seed).spawn(2)
    random_runs = run_random_strategies(run_random, profile.params(), runs_seeds.generate_state(runs).tolist())
    random_returns = np.concatenate([column(run, "return_pct") for run in random_runs])
    random_net = np.concatenate([column(run, "net_pnl") for run in random_runs])
    random_held = np.concatenate([_held_bars(run, "run_random") for run in random_runs])
    if random_returns.size == 0:
        raise RobustnessInputError("runs", "the random runs produced no trades")
    if not random_returns.size == random_net.size == random_held.size:
        raise RobustnessInputError("run_random", "columns return_pct, net_pnl, entry_bar and exit_bar differ in length")

    comparison = bootstrap_compare(
        real_returns,
        real_net,
        random_returns,
        random_net,
        iterations=iterations,
        rng=np.random.default_rng(bootstrap_seeds),
    )
    # How closely the random trader copied the strategy: its realised trades per run and holding period
    # next to the strategy's, for the user to judge the benchmark by.
    likeness: dict[str, float | None] = {
        "real_trades": float(real_returns.size),
        "random_trades_per_run": random_returns.size / runs,
        "real_mean_hold_bars": profile.mean_hold_bars,
        "random_mean_hold_bars": float(random_held.mean()),
    }
    metrics: dict[str, float | None] = {
        "profile_prob_trade": profile.prob_trade,
        "profile_prob_long": profile.prob_long,
        "profile_avg_position_hold": profile.mean_hold_bars,
        "profile_std_position_hold": profile.std_hold_bars,
        "random_trades": float(random_returns.size),
        "random_std_hold_bars": float(random_held.std(ddof=1)) if random_held.size > 1 else 0.0,
        **likeness,
        **comparison,
    }
    summary = {
        **{f"{name}_{stat}": metrics[f"{name}_{stat}"] for name in COMPARED for stat in ("p_value", "z_score")},
        **likeness,
    }
    return RobustnessResult(
        kind="random",
        parameters={"bars": bars, "runs": runs, "iterations": iterations},
        seed=seed,
        summary=summary,
        metrics=metrics,
    )
