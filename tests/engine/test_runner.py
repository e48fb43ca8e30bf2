"""run_backtest on real sample data, checked against backtesting.py's own statistics and the trades."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest
from scipy import stats

from btledger.config import Settings, load_instruments
from btledger.engine import SpecError, get_strategy, registry, run_backtest
from btledger.engine.costs import costs_for
from btledger.engine.data import load_frame
from btledger.engine.result import (
    METRIC_COLUMNS,
    TRADE_COLUMNS,
    TRADE_PERFORMANCE_COLUMNS,
    BacktestOutcome,
    RunSpec,
)
from btledger.engine.sizing import RiskSizedStrategy
from tests.engine.test_registry import register
from tests.typed import SpecFields, number, text

EURUSD = RunSpec("SmaCross", "EURUSD", "H1", 1.0, date(2017, 5, 1), date(2018, 2, 1), 100_000.0)
NO_RF = Settings(risk_free_rate=0.0)


def bare_stats(spec: RunSpec, **params: object) -> pd.Series:
    """The same run straight through backtesting.py, for its equity curve and statistics."""
    instruments = load_instruments()
    costs = costs_for(spec.ticker, instruments.instruments[spec.ticker], instruments, "USD")
    frame = load_frame(spec.ticker, spec.timeframe, spec.date_from, spec.date_to)
    strategy = get_strategy(spec.strategy).cls
    if issubclass(strategy, RiskSizedStrategy):
        params |= {"risk": spec.risk, "lots": costs.lots}
    backtest = Backtest(
        frame.ohlcv,
        strategy,
        cash=spec.initial_cash,
        spread=costs.spread,
        commission=costs.commission,
        margin=costs.margin,
        finalize_trades=True,
    )
    return backtest.run(**params)


@pytest.fixture(scope="module")
def eurusd() -> tuple[BacktestOutcome, pd.Series]:
    return run_backtest(EURUSD, settings=NO_RF), bare_stats(EURUSD)


def test_metrics_agree_with_backtesting_and_independent_formulas(eurusd: tuple[BacktestOutcome, pd.Series]) -> None:
    outcome, bare = eurusd
    m = outcome.metrics
    assert list(m) == list(METRIC_COLUMNS)
    assert m["trades"] == bare["# Trades"] > 50
    assert m["return_pct"] == pytest.approx(bare["Return [%]"])
    assert m["drawdown_pct"] == pytest.approx(-bare["Max. Drawdown [%]"])
    assert m["return_dd"] == pytest.approx(bare["Return [%]"] / -bare["Max. Drawdown [%]"])
    assert m["exposure_time"] == pytest.approx(bare["Exposure Time [%]"])
    assert m["win_rate"] == pytest.approx(bare["Win Rate [%]"])  # its PnL is net of commission too
    assert m["kelly_criterion"] == pytest.approx(bare["Kelly Criterion"])
    assert m["sharpe_ratio"] == pytest.approx(bare["Sharpe Ratio"])  # both at rf = 0
    assert m["duration_days"] == bare["Duration"].days
    equity = bare["_equity_curve"]["Equity"].to_numpy()
    r2 = stats.linregress(np.arange(len(equity)), equity).rvalue ** 2
    assert m["stability_ratio"] == pytest.approx(r2)
    assert m["stability_weighted_rar"] == pytest.approx(
        number(m["return_pct"]) / (1 + number(m["drawdown_pct"])) * np.log(1 + number(m["trades"])) * r2
    )
    assert outcome.bars == len(equity)


def test_trades_reconcile_with_equity_and_costs(eurusd: tuple[BacktestOutcome, pd.Series]) -> None:
    outcome, bare = eurusd
    t = {
        k: np.array(v, dtype=float if k not in ("entry_time", "exit_time", "tag") else object)
        for k, v in outcome.trades.items()
    }
    assert list(outcome.trades) == list(TRADE_COLUMNS)
    equity = bare["_equity_curve"]["Equity"].to_numpy()
    # Every trade is closed (finalize_trades), so the net P&Ls add up to the final equity.
    assert t["net_pnl"].sum() == pytest.approx(equity[-1] - EURUSD.initial_cash)
    assert t["pnl"] - t["commission"] == pytest.approx(t["net_pnl"])
    # 7 USD per lot round-turn, 100000 units per lot.
    assert t["commission"] == pytest.approx(np.abs(t["size"]) * 7 / 100_000)
    assert t["pnl"] == pytest.approx(t["size"] * (t["exit_price"] - t["entry_price"]))
    entry, exit_ = t["entry_bar"].astype(int), t["exit_bar"].astype(int)
    assert t["equity_at_exit"] == pytest.approx(equity[exit_])
    assert t["return_pct"] == pytest.approx(t["net_pnl"] / equity[entry - 1] * 100)
    assert np.all(np.abs(t["size"]) % 1000 == 0) and np.all(np.abs(t["size"]) >= 1000)
    assert text(outcome.trades["entry_time"][0]).endswith("+00:00")

    tp = outcome.trade_performance
    assert list(tp) == list(TRADE_PERFORMANCE_COLUMNS)
    won = t["net_pnl"] > 0
    assert tp["profit_factor"] == pytest.approx(t["net_pnl"][won].sum() / -t["net_pnl"][~won].sum())
    assert number(tp["long_count"]) + number(tp["short_count"]) == len(won)
    assert outcome.metrics["winrate_p_value"] == pytest.approx(
        stats.binomtest(int(won.sum()), len(won), 0.5, alternative="greater").pvalue
    )


def test_outcome_records_its_provenance(eurusd: tuple[BacktestOutcome, pd.Series]) -> None:
    outcome, _ = eurusd
    assert outcome.data_source == "sample"
    assert len(outcome.data_fingerprint) == len(outcome.strategy_fingerprint) == 64
    assert set(outcome.versions) >= {"backtesting", "pandas", "numpy", "btledger"}
    assert outcome.costs["margin"] == pytest.approx(1 / 30)
    assert outcome.costs["commission_model"] == "per_lot" and outcome.costs["fractional_unit"] == 1.0
    assert outcome.currency == "USD" and outcome.wall_time_s > 0 and outcome.plot_path is None
    json.dumps(outcome.to_json(), allow_nan=False)


def test_risk_free_rate_reaches_the_sharpe_ratio(eurusd: tuple[BacktestOutcome, pd.Series]) -> None:
    outcome, bare = eurusd
    with_rf = run_backtest(EURUSD, settings=Settings(risk_free_rate=0.05))
    expected = (bare["Return (Ann.) [%]"] - 5.0) / bare["Volatility (Ann.) [%]"]
    assert with_rf.metrics["sharpe_ratio"] == pytest.approx(expected)
    assert number(with_rf.metrics["sharpe_ratio"]) < number(outcome.metrics["sharpe_ratio"])


@pytest.mark.parametrize(
    ("ticker", "timeframe", "date_from"),
    [("GOOG", "D1", date(2004, 1, 1)), ("AAPL", "W1", date(2000, 1, 1)), ("MSFT", "MN1", date(2000, 1, 1))],
)
def test_sharpe_periods_match_backtesting(ticker: str, timeframe: str, date_from: date) -> None:
    spec = RunSpec("SmaCross", ticker, timeframe, 1.0, date_from, date(2013, 3, 1), 100_000.0, params={"n_slow": 20})
    bare = bare_stats(spec, n_slow=20)
    assert run_backtest(spec, settings=NO_RF).metrics["sharpe_ratio"] == pytest.approx(bare["Sharpe Ratio"])


def test_a_run_without_trades_stores_no_nan() -> None:
    # 30 daily bars never fill a 50-bar SMA.
    spec = RunSpec("SmaCross", "GOOG", "D1", 1.0, date(2010, 1, 1), date(2010, 2, 15), 100_000.0)
    outcome = run_backtest(spec)
    m = outcome.metrics
    assert m["trades"] == 0 and m["return_pct"] == 0.0 and m["drawdown_pct"] == 0.0
    assert m["return_dd"] is None and m["win_rate"] is None and m["winrate_p_value"] == 1.0
    assert all(len(column) == 0 for column in outcome.trades.values())
    json.dumps(outcome.to_json(), allow_nan=False)


def test_fractional_instrument_trades_below_one_lot() -> None:
    spec = RunSpec(
        "RandomTrader",
        "BTCUSD",
        "MN1",
        0.001,
        date(2012, 1, 1),
        date(2024, 12, 31),
        100_000.0,
        params={"prob_trade": 1.0, "seed": 3},
    )
    outcome = run_backtest(spec)
    sizes = np.abs(np.array(outcome.trades["size"]))
    assert outcome.costs["fractional_unit"] == 0.01
    assert len(sizes) > 10
    assert sizes.min() == pytest.approx(0.01)  # the minimum lot, not 1 BTC (the seed's clamp)
    assert np.allclose(sizes * 100, np.round(sizes * 100))
    entry, exit_ = np.array(outcome.trades["entry_price"]), np.array(outcome.trades["exit_price"])
    # 0.1 % of notional round-turn, half on each side's price.
    assert outcome.trades["commission"] == pytest.approx(sizes * (entry + exit_) * 0.1 / 200)


def test_plot_is_written_titled_by_its_key(tmp_path: Path) -> None:
    """Its title names the run, not the file backtesting.py was given (a path, escaped for HTML)."""
    spec = RunSpec(
        "DonchianBreakout", "GOOG", "D1", 1.0, date(2012, 1, 1), date(2013, 1, 1), 50_000.0, params={"exit_period": 5}
    )
    target = tmp_path / "plots & <drafts>" / "goog.html"
    outcome = run_backtest(spec, plot_path=target)
    assert outcome.plot_path == str(target)
    html = target.read_text(encoding="utf-8")
    assert "bokeh" in html.lower()
    titles = re.findall(r"<title>(.*?)</title>", html, flags=re.DOTALL)
    assert titles == ["DonchianBreakout(exit_period=5) GOOG D1 risk 1.0 2012-01-01→2013-01-01 — btledger"]
    assert "goog.html" not in html and "drafts" not in html

    plain = tmp_path / "plain.html"
    run_backtest(dataclasses.replace(spec, params={}, risk=2.5), plot_path=plain)
    assert "<title>DonchianBreakout GOOG D1 risk 2.5 2012-01-01→2013-01-01 — btledger</title>" in plain.read_text(
        encoding="utf-8"
    )


def test_a_plot_title_is_written_as_html_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user strategy's text parameter may hold markup: the title shows it, the page does not read it."""
    registry.registry.cache_clear()
    try:
        register(monkeypatch, "Documented")
        spec = RunSpec("Documented", "GOOG", "D1", 1.0, date(2012, 1, 1), date(2013, 1, 1), 50_000.0)
        target = tmp_path / "documented.html"
        run_backtest(dataclasses.replace(spec, params={"label": "</title><b>A&B"}), plot_path=target)
    finally:
        registry.registry.cache_clear()
    html = target.read_text(encoding="utf-8")
    assert re.findall(r"<title>(.*?)</title>", html, flags=re.DOTALL) == [
        "Documented(label=&lt;/title&gt;&lt;b&gt;A&amp;B) GOOG D1 risk 1.0 2012-01-01→2013-01-01 — btledger"
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"strategy": "Nope"}, "strategy"),
        ({"ticker": "NOPE"}, "ticker"),
        ({"ticker": "GBPUSD"}, "ticker"),  # configured, but no sample data
        ({"timeframe": "H2"}, "timeframe"),
        ({"timeframe": "M15"}, "timeframe"),  # finer than the hourly sample
        ({"date_from": date(2018, 2, 1), "date_to": date(2017, 5, 1)}, "date_from"),
        ({"date_from": date(2030, 1, 1), "date_to": date(2030, 2, 1)}, "date_from"),
        ({"risk": 150.0}, "risk"),
        ({"risk": 0.0}, "risk"),
        ({"initial_cash": 0.0}, "initial_cash"),
        ({"params": {"n_fastest": 3}}, "params"),
        ({"params": {"n_fast": "ten"}}, "params"),
    ],
)
def test_invalid_specs_name_the_field(change: SpecFields, field: str) -> None:
    spec = dataclasses.replace(EURUSD, **change)
    with pytest.raises(SpecError) as raised:
        run_backtest(spec)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


def test_risk_message() -> None:
    with pytest.raises(ValueError, match=r"^risk: must be in \(0, 100\], got 150$"):
        run_backtest(RunSpec(**{**EURUSD.__dict__, "risk": 150.0}))
