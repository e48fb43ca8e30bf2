"""Monte Carlo robustness test timing: 10,000 paths × 500 trades against a 1 s target.

Prints the median wall time of a few seeded runs per method. The baseline is the seed application's
algorithm (a Python loop over paths × trades with one bucket pick and one Normal draw per step),
timed on a slice of the paths and scaled up linearly; it uses the standard library's `random`, which is
faster per call than the seed's numpy scalar draws, so the baseline is, if anything, an underestimate.

Usage: ``uv run python benchmarks/robustness.py [--json]``; `measure()` returns the same rows.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

import numpy as np
from report import emit

from btledger.engine.robustness import montecarlo

PATHS = 10_000
TRADES = 500
TARGET_S = 1.0
REPEATS = 5
BASELINE_PATHS = 100


def synthetic_trades(n: int = TRADES, seed: int = 0) -> dict[str, list[float]]:
    """A plausible trade list: ~45 % winners, mixed long/short, returns of a few tenths of a percent."""
    rng = np.random.default_rng(seed)
    returns = np.where(rng.random(n) < 0.45, rng.gamma(2.0, 0.6, n), -rng.gamma(2.0, 0.35, n))
    return {
        "return_pct": returns.tolist(),
        "size": np.where(rng.random(n) < 0.6, 1.0, -1.0).tolist(),
        "net_pnl": (returns * 100.0).tolist(),
    }


def seed_style_loop(
    trades: dict[str, list[float]], paths: int, ruin_fraction: float = 0.9
) -> tuple[list[float], list[float], list[bool]]:
    """The seed's `monte_carlo_simulation_v2`, minus its NaN bug: Python loops, Normal draw per step.

    Returns the per-path final return %, max drawdown % (negative, as the seed) and ruin flags."""
    buckets: dict[tuple[bool, bool], list[float]] = {(side, win): [] for side in (True, False) for win in (True, False)}
    for r, size, pnl in zip(trades["return_pct"], trades["size"], trades["net_pnl"], strict=True):
        buckets[(size > 0, pnl > 0)].append(r / 100.0)
    params = {
        key: (statistics.fmean(values) if values else 0.0, statistics.stdev(values) if len(values) > 1 else 0.0)
        for key, values in buckets.items()
    }
    n = len(trades["return_pct"])
    p_long = (len(buckets[(True, True)]) + len(buckets[(True, False)])) / n
    p_win = {
        side: len(buckets[(side, True)]) / max(1, len(buckets[(side, True)]) + len(buckets[(side, False)]))
        for side in (True, False)
    }
    finals, drawdowns, ruins = [], [], []
    for _ in range(paths):
        equity, peak, worst, ruined = 1.0, 1.0, 0.0, False
        for _ in range(n):
            side = random.random() < p_long
            mean, std = params[(side, random.random() < p_win[side])]
            equity *= 1.0 + random.gauss(mean, std)
            peak = max(peak, equity)
            worst = min(worst, (equity - peak) / peak)
            ruined = ruined or equity <= ruin_fraction
        finals.append((equity - 1.0) * 100.0)
        drawdowns.append(worst * 100.0)
        ruins.append(ruined)
    return finals, drawdowns, ruins


def _median_time(run: Any, repeats: int) -> float:
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure() -> list[dict[str, Any]]:
    """One row per Monte Carlo method: median seconds for PATHS × TRADES, seed-loop baseline, target."""
    trades = synthetic_trades()
    random.seed(0)
    baseline = _median_time(lambda _: seed_style_loop(trades, BASELINE_PATHS), 1) * PATHS / BASELINE_PATHS
    rows = []
    for method in ("bootstrap", "normal"):
        value = _median_time(lambda i, m=method: montecarlo(trades, paths=PATHS, method=m, seed=i), REPEATS)
        rows.append(
            {
                "name": f"montecarlo_{method}_{PATHS}x{TRADES}",
                "value": round(value, 4),
                "unit": "s",
                "baseline": round(baseline, 2),
                "ratio": round(baseline / value, 1),  # speed-up over the seed-style loop
                "target": TARGET_S,
                "met": value < TARGET_S,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    emit(measure(), args.json)


if __name__ == "__main__":
    main()
