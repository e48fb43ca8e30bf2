"""What the three robustness tests share: the result type, input checks and equity-curve arithmetic.

Conventions used by every test:

- A winning trade is one with ``net_pnl > 0`` (the project's single definition).
- A long trade has ``size > 0``; every other trade is short.
- Equity curves are kept as *growth factors* (equity / initial cash), so the curve starts at 1.0 and the
  initial cash only scales, never changes, a percentage.
- A trade return below −100 % is floored at −100 %: an account cannot lose more than everything, so
  equity stops at 0 instead of turning negative and flipping the sign of later compounding.
- Drawdown is a positive magnitude in percent, measured from a running peak that starts at the initial
  cash (a curve that only falls from the first trade on still has a drawdown).
- Results hold plain JSON values: floats, ints, strings, and None wherever a figure is undefined
  (never NaN or ±inf).
"""

from __future__ import annotations

import math
import operator
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from btledger.domain.errors import InvalidInput
from btledger.engine.result import BacktestOutcome, JsonScalar

#: Trades as the engine stores them: one list per TRADE_COLUMNS entry.
Trades = Mapping[str, Sequence[Any]]

#: Percentiles reported for every distribution (as in the seed's describe()).
PERCENTILES: tuple[int, ...] = (5, 10, 25, 50, 75, 90, 95)

#: Most simulated trades one test may take (Monte Carlo: paths × trades per path; random test: iterations ×
#: the result's trades): about 1.5 s of Monte Carlo here (1e9 took 14.5 s). A server runs tests beside its
#: other changes, so one request must not hold it for minutes.
MAX_STEPS = 100_000_000

#: Elements per simulated block: bounds memory (≈8 MB per float64 array) and keeps blocks cache-friendly.
BLOCK_ELEMENTS = 1 << 20


class RobustnessInputError(InvalidInput):
    """A robustness test's input is invalid; the message starts with the field name ("paths: must be > 0")."""


@dataclass(frozen=True)
class RobustnessResult:
    """One robustness test's outcome, shaped for the `RobustnessTestRecorded` event.

    `summary` holds the headline figures, `metrics` the full long table (a superset of `summary`);
    both map a name to a float, or to None where the figure is undefined. The same inputs and `seed`
    give an identical result.
    """

    kind: str
    parameters: dict[str, JsonScalar]
    seed: int
    summary: dict[str, float | None]
    metrics: dict[str, float | None]

    def to_json(self) -> dict[str, Any]:
        """The keyword arguments of `Ledger.record_robustness_test` besides the backtest and test ids."""
        return asdict(self)


def trade_columns(source: BacktestOutcome | Trades) -> Trades:
    """The column-wise trades of an outcome, or `source` itself if it already is a trades mapping."""
    return source.trades if isinstance(source, BacktestOutcome) else source


def column(trades: Trades, name: str) -> np.ndarray:
    """One trade column as a float64 array; every value must be a finite number."""
    if name not in trades:
        raise RobustnessInputError("trades", f"missing column {name!r}")
    values = np.asarray(trades[name], dtype=np.float64)
    if not np.isfinite(values).all():
        raise RobustnessInputError("trades", f"column {name!r} must hold finite numbers only")
    return values


def require_trades(count: int) -> None:
    if count == 0:
        raise RobustnessInputError("trades", "the backtest has no trades")


def check_steps(field: str, count: int, what: str, trades: int, unit: str) -> None:
    """Refuse, naming `field`, `count` `what` (paths, iterations) × `trades` trades each past `MAX_STEPS`;
    `unit` names their product in the message (steps, resampled trades)."""
    if count * trades > MAX_STEPS:
        raise RobustnessInputError(
            field, f"{count:,} {what} × {trades:,} trades is {count * trades:,} {unit}; at most {MAX_STEPS:,} a test"
        )


def positive_int(field: str, value: int) -> int:
    """`value` as an int, which must be > 0 (bools and floats are rejected, not truncated)."""
    if isinstance(value, bool):
        raise RobustnessInputError(field, f"must be an integer, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise RobustnessInputError(field, f"must be an integer, got {value!r}") from None
    if number <= 0:
        raise RobustnessInputError(field, f"must be > 0, got {number}")
    return number


def finite_float(field: str, value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RobustnessInputError(field, f"must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise RobustnessInputError(field, f"must be finite, got {value!r}")
    return number


def resolve_seed(seed: int | None) -> int:
    """`seed`, checked; None draws a fresh one so the result still records a seed that reproduces it."""
    if seed is None:
        return secrets.randbits(32)
    if isinstance(seed, bool):
        raise RobustnessInputError("seed", f"must be an integer >= 0, got {seed!r}")
    try:
        number = operator.index(seed)
    except TypeError:
        raise RobustnessInputError("seed", f"must be an integer >= 0, got {seed!r}") from None
    if number < 0:
        raise RobustnessInputError("seed", f"must be an integer >= 0, got {number}")
    return number


def json_float(value: float | np.floating) -> float | None:
    """A plain float, or None for NaN/±inf."""
    number = float(value)
    return number if math.isfinite(number) else None


def row_blocks(rows: int, row_length: int) -> Iterator[int]:
    """Row counts of consecutive blocks covering `rows` rows of `row_length` elements each."""
    per_block = max(1, BLOCK_ELEMENTS // max(1, row_length))
    for start in range(0, rows, per_block):
        yield min(per_block, rows - start)


def growth_factors(returns_pct: np.ndarray) -> np.ndarray:
    """Per-trade equity multipliers 1 + r / 100, floored at 0 (see the module docstring)."""
    return np.maximum(1.0 + returns_pct / 100.0, 0.0)


def curve_stats(growth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Final return % and max drawdown % (positive) of growth curves along the last axis.

    `growth` holds equity / initial cash after each trade; the implicit starting point 1.0 is the first
    peak, so a loss on the very first trade counts as drawdown.
    """
    peak = np.maximum.accumulate(growth, axis=-1)
    np.maximum(peak, 1.0, out=peak)
    np.divide(growth, peak, out=peak)
    drawdown_pct = (1.0 - peak.min(axis=-1)) * 100.0
    return_pct = (growth[..., -1] - 1.0) * 100.0
    return return_pct, drawdown_pct


def describe(prefix: str, values: np.ndarray) -> dict[str, float | None]:
    """count, mean, std (ddof 1), min, percentiles and max of `values`, keyed `<prefix>_<stat>`."""
    stats: dict[str, float | None] = {
        f"{prefix}_count": float(values.size),
        f"{prefix}_mean": json_float(values.mean()),
        f"{prefix}_std": json_float(values.std(ddof=1)) if values.size > 1 else None,
        f"{prefix}_min": json_float(values.min()),
    }
    for pct, value in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True):
        stats[f"{prefix}_p{pct}"] = json_float(value)
    stats[f"{prefix}_max"] = json_float(values.max())
    return stats
