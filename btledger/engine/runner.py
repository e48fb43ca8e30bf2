"""Run one backtest: a `RunSpec` in, a plain-JSON `BacktestOutcome` out.

The strategy comes from the registry, the bars from the configured data source, costs and lot limits
from the instruments config (or the terminal, with `metatrader5`). The run uses backtesting.py's
`Backtest`, or `FractionalBacktest` for instruments traded in fractions of a unit, with margin =
1 / leverage, the category commission, the relative spread, `finalize_trades=True` (trades still open
at the end are closed on the last bar and counted) and no other option changed. Metrics come from
`btledger.engine.metrics`; backtesting.py's own statistics are skipped (`lean_stats`) unless a plot
needs them. Orders the broker cancels for lack of margin are counted (`margin_cancels`), not warned of.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
import warnings
from functools import cache
from html import escape
from importlib.metadata import version
from pathlib import Path

from backtesting import Backtest
from backtesting.lib import FractionalBacktest

from btledger.config import Settings, load_instruments, load_settings
from btledger.engine.costs import costs_for
from btledger.engine.data import load_frame, load_instrument
from btledger.engine.errors import SpecError
from btledger.engine.lean_stats import lean_stats
from btledger.engine.margin_cancels import counting_margin_cancels
from btledger.engine.metrics import backtest_metrics, trade_performance, trade_table, trades_json
from btledger.engine.registry import get_strategy
from btledger.engine.result import BacktestOutcome, RunSpec
from btledger.engine.sizing import RiskSizedStrategy


@cache
def library_versions() -> dict[str, str]:
    """Versions of the libraries that decide a result."""
    return {name: version(name) for name in ("backtesting", "pandas", "numpy", "scipy", "btledger")}


def plot_title(spec: RunSpec) -> str:
    """The title of a run's plot: `SmaCross(n_fast=5) EURUSD H1 risk 1.0 2017-04-19→2018-02-08 — btledger`."""
    params = ", ".join(f"{name}={value}" for name, value in sorted(spec.params.items()))
    return (
        f"{spec.strategy}{f'({params})' if params else ''} {spec.ticker} {spec.timeframe} risk {float(spec.risk)} "
        f"{spec.date_from}→{spec.date_to} — btledger"
    )


def _retitle(path: Path, title: str) -> None:
    """Give the HTML file `path` the <title> `title`. backtesting.py's `plot` takes no title: it titles the
    page with the file's name (bokeh's `output_file(filename, title=filename)`), which is a scratch path
    for a plot rendered on demand, so the written page's first (its head's) <title> is replaced."""
    html = path.read_text(encoding="utf-8")
    titled = re.sub(r"<title>.*?</title>", lambda _: f"<title>{escape(title)}</title>", html, count=1, flags=re.DOTALL)
    path.write_text(titled, encoding="utf-8")


def run_backtest(spec: RunSpec, *, settings: Settings | None = None, plot_path: Path | None = None) -> BacktestOutcome:
    """Run `spec` and return its outcome; with `plot_path`, also write backtesting.py's HTML plot there.

    Raises `SpecError` (a `ValueError` whose message starts with the field name, e.g.
    `"risk: must be in (0, 100], got 150"`) for an unknown strategy, ticker or timeframe, a strategy
    parameter it does not have or a value outside its declared bounds, `date_from >= date_to`, risk
    outside (0, 100], cash <= 0, or no data.
    """
    started = time.perf_counter()
    settings = settings or load_settings()
    strategy = get_strategy(spec.strategy)
    # The strategy's parameters, then (for a risk-sized one) the engine's, `lots` a LotLimits.
    params: dict[str, object] = dict(strategy.resolve_params(spec.params))
    if not 0 < spec.risk <= 100:
        raise SpecError("risk", f"must be in (0, 100], got {spec.risk:g}")
    if not (math.isfinite(spec.initial_cash) and spec.initial_cash > 0):
        raise SpecError("initial_cash", f"must be > 0, got {spec.initial_cash:g}")
    instrument = load_instrument(spec.ticker, settings)
    costs = costs_for(spec.ticker, instrument, load_instruments(), settings.account_currency)
    frame = load_frame(spec.ticker, spec.timeframe, spec.date_from, spec.date_to, settings)

    options = {
        "cash": spec.initial_cash,
        "spread": costs.spread,
        "commission": costs.commission,
        "margin": costs.margin,
        "finalize_trades": True,
    }
    fractional_unit = costs.lots.fractional_unit
    if fractional_unit < 1:
        backtest: Backtest = FractionalBacktest(frame.ohlcv, strategy.cls, fractional_unit=fractional_unit, **options)
    else:
        backtest = Backtest(frame.ohlcv, strategy.cls, **options)
    if issubclass(strategy.cls, RiskSizedStrategy):
        params |= {"risk": spec.risk, "lots": costs.lots}
    # Every metric comes from `metrics`: backtesting.py's own statistics are built only for a plot.
    with lean_stats() if plot_path is None else contextlib.nullcontext(), counting_margin_cancels() as cancels:
        stats = backtest.run(**params)

    equity = stats["_equity_curve"]["Equity"]
    trades = trade_table(stats["_trades"], equity)
    if plot_path is not None:
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # bokeh warns that numpy datetimes carry no timezone; the index is UTC by construction.
            warnings.filterwarnings("ignore", message="no explicit representation of timezones")
            backtest.plot(results=stats, filename=str(plot_path), open_browser=False)
        _retitle(plot_path, plot_title(spec))
    return BacktestOutcome(
        metrics=backtest_metrics(trades, equity, settings.risk_free_rate),
        trade_performance=trade_performance(trades),
        trades=trades_json(trades),
        data_source=frame.source,
        data_fingerprint=frame.fingerprint,
        bars=frame.bars,
        strategy_fingerprint=strategy.fingerprint,
        versions=library_versions(),
        costs=costs.to_json(),
        currency=costs.currency,
        wall_time_s=time.perf_counter() - started,
        margin_cancelled_orders=cancels.count,
        plot_path=str(plot_path) if plot_path is not None else None,
    )
