"""Data sources: sample resampling and errors, csv (generic and MetaTrader export), a MetaTrader5 stand-in."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from backtesting.test import EURUSD, GOOG

from btledger.config import CsvSource, Settings
from btledger.engine import data
from btledger.engine.data import fingerprint, load_frame, load_instrument
from btledger.engine.errors import DataError


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    data.clear_cache()
    yield
    data.clear_cache()


def test_sample_bars_are_utc_ohlcv_with_a_fingerprint() -> None:
    frame = load_frame("EURUSD", "H1", date(2017, 5, 1), date(2017, 5, 31))
    bars = frame.ohlcv
    assert list(bars.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert str(bars.index.tz) == "UTC"
    assert bars.index[0] >= pd.Timestamp("2017-05-01", tz="UTC")
    assert bars.index[-1] < pd.Timestamp("2017-06-01", tz="UTC")  # date_to is inclusive
    expected = EURUSD.loc["2017-05-01":"2017-05-31 23:59"]
    np.testing.assert_array_equal(bars["Close"].to_numpy(), expected["Close"].to_numpy())
    assert frame.bars == len(expected) and frame.source == "sample"
    assert len(frame.fingerprint) == 64 and frame.fingerprint == fingerprint(bars.copy())
    changed = bars.copy()
    changed.iloc[3, 3] += 1e-5
    assert fingerprint(changed) != frame.fingerprint


def test_resampling_aggregates_by_open_time() -> None:
    bars = load_frame("EURUSD", "H4", date(2017, 5, 1), date(2017, 6, 30)).ohlcv
    hourly = EURUSD.loc["2017-05-01":"2017-06-30 23:59"]
    groups = hourly.groupby(hourly.index.floor("4h"))
    assert len(bars) == groups.ngroups  # empty 4-hour slots (weekends) dropped
    np.testing.assert_array_equal(bars.index.tz_localize(None), groups.size().index)
    np.testing.assert_array_equal(bars["Open"], groups["Open"].first())
    np.testing.assert_array_equal(bars["High"], groups["High"].max())
    np.testing.assert_array_equal(bars["Low"], groups["Low"].min())
    np.testing.assert_array_equal(bars["Close"], groups["Close"].last())
    np.testing.assert_array_equal(bars["Volume"], groups["Volume"].sum())


def test_weekly_and_monthly_bars_open_on_monday_and_the_first() -> None:
    weekly = load_frame("GOOG", "W1", date(2010, 1, 1), date(2010, 12, 31)).ohlcv
    monthly = load_frame("GOOG", "MN1", date(2010, 1, 1), date(2010, 12, 31)).ohlcv
    assert set(weekly.index.day_of_week) == {0}
    assert list(monthly.index.day) == [1] * 12
    assert monthly["High"].iloc[0] == GOOG.loc["2010-01"]["High"].max()
    # Monthly BTCUSD is stamped at month end in backtesting.test; bars here are stamped at their open.
    btc = load_frame("BTCUSD", "MN1", date(2012, 1, 1), date(2012, 12, 31)).ohlcv
    assert btc.index[0] == pd.Timestamp("2012-01-01", tz="UTC") and len(btc) == 12


def test_bokeh_sample_stocks() -> None:
    frame = load_frame("MSFT", "D1", date(2005, 1, 1), date(2005, 12, 31))
    assert 240 < frame.bars < 260 and frame.ohlcv["Close"].between(20, 35).all()


@pytest.mark.parametrize(
    ("ticker", "timeframe", "date_from", "date_to", "field", "words"),
    [
        ("GOOG", "H1", date(2010, 1, 1), date(2011, 1, 1), "timeframe", "GOOG data is D1; cannot make finer H1"),
        ("BTCUSD", "D1", date(2015, 1, 1), date(2016, 1, 1), "timeframe", "available: MN1"),
        ("GBPUSD", "H1", date(2017, 5, 1), date(2017, 6, 1), "ticker", "no sample data for 'GBPUSD'"),
        ("EURUSD", "H1", date(2019, 1, 1), date(2019, 2, 1), "date_from", "no EURUSD H1 bars"),
        ("EURUSD", "H1", date(2017, 6, 1), date(2017, 5, 1), "date_from", "must be before date_to"),
        ("EURUSD", "H3", date(2017, 5, 1), date(2017, 6, 1), "timeframe", "unknown timeframe 'H3'"),
    ],
)
def test_clear_errors(ticker: str, timeframe: str, date_from: date, date_to: date, field: str, words: str) -> None:
    with pytest.raises(DataError, match=words) as raised:
        load_frame(ticker, timeframe, date_from, date_to)
    assert isinstance(raised.value, ValueError) and raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


def test_csv_generic_equals_the_sample(tmp_path: Path) -> None:
    GOOG.loc["2008"].to_csv(tmp_path / "GOOG_D1.csv", index_label="Date")
    settings = Settings(data_source="csv", csv=CsvSource(folder=tmp_path))
    for timeframe in ("D1", "W1"):
        from_csv = load_frame("GOOG", timeframe, date(2008, 3, 1), date(2008, 9, 30), settings)
        sample = load_frame("GOOG", timeframe, date(2008, 3, 1), date(2008, 9, 30))
        assert from_csv.fingerprint == sample.fingerprint and from_csv.source == "csv"
    with pytest.raises(DataError, match=r"no AAPL_<TF>\.csv file"):
        load_frame("AAPL", "D1", date(2008, 3, 1), date(2008, 9, 30), settings)


def test_csv_folder_that_is_not_a_directory_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(data_source="csv", csv=CsvSource(folder="prices"))  # relative: to the working directory
    with pytest.raises(DataError) as raised:  # it blamed the ticker: "no GOOG_<TF>.csv file in prices"
        load_frame("GOOG", "D1", date(2008, 3, 1), date(2008, 9, 30), settings)
    assert raised.value.field == "data_source"
    assert str(raised.value).startswith("data_source: csv.folder 'prices' (in ")
    assert str(raised.value).endswith(f"settings.yaml) is not a directory: {tmp_path / 'prices'}")


def write_metatrader(path: Path, bars: pd.DataFrame, with_time: bool = True, encoding: str = "utf-8") -> None:
    export = pd.DataFrame(
        {
            "<DATE>": bars.index.strftime("%Y.%m.%d"),
            **({"<TIME>": bars.index.strftime("%H:%M:%S")} if with_time else {}),
            "<OPEN>": bars["Open"],
            "<HIGH>": bars["High"],
            "<LOW>": bars["Low"],
            "<CLOSE>": bars["Close"],
            "<TICKVOL>": bars["Volume"],
            "<VOL>": 0,
            "<SPREAD>": 12,
        }
    )
    export.to_csv(path, sep="\t", index=False, encoding=encoding, lineterminator="\r\n")


def test_csv_metatrader_export(tmp_path: Path) -> None:
    write_metatrader(tmp_path / "EURUSD_H1.csv", EURUSD.loc["2017-06"])
    write_metatrader(tmp_path / "GOOG_D1.csv", GOOG.loc["2008"], with_time=False)
    settings = Settings(data_source="csv", csv=CsvSource(folder=tmp_path, format="metatrader"))
    for ticker, timeframe, start, end in (
        ("EURUSD", "H4", date(2017, 6, 1), date(2017, 6, 30)),
        ("GOOG", "D1", date(2008, 1, 1), date(2008, 12, 31)),
    ):
        from_csv = load_frame(ticker, timeframe, start, end, settings)
        assert from_csv.fingerprint == load_frame(ticker, timeframe, start, end).fingerprint
    with pytest.raises(DataError, match=r"^data_source: cannot read .* as csv.format=generic"):
        load_frame(
            "EURUSD",
            "H1",
            date(2017, 6, 1),
            date(2017, 6, 30),
            Settings(data_source="csv", csv=CsvSource(folder=tmp_path)),
        )


def test_csv_in_utf16_as_metatrader_writes_it(tmp_path: Path) -> None:
    write_metatrader(tmp_path / "EURUSD_H1.csv", EURUSD.loc["2017-06"], encoding="utf-16")
    assert (tmp_path / "EURUSD_H1.csv").read_bytes()[:2] == b"\xff\xfe"  # little-endian, with its mark
    settings = Settings(data_source="csv", csv=CsvSource(folder=tmp_path, format="metatrader"))
    from_csv = load_frame("EURUSD", "H1", date(2017, 6, 1), date(2017, 6, 30), settings)
    assert from_csv.fingerprint == load_frame("EURUSD", "H1", date(2017, 6, 1), date(2017, 6, 30)).fingerprint


def test_csv_metatrader_weekly_bars_stamped_on_sunday_open_that_week(tmp_path: Path) -> None:
    weekly = load_frame("GOOG", "W1", date(2010, 1, 4), date(2010, 12, 26)).ohlcv
    write_metatrader(tmp_path / "GOOG_W1.csv", weekly.set_axis(weekly.index - pd.Timedelta(days=1)), with_time=False)
    settings = Settings(data_source="csv", csv=CsvSource(folder=tmp_path, format="metatrader"))
    from_csv = load_frame("GOOG", "W1", date(2010, 1, 4), date(2010, 12, 26), settings)
    assert from_csv.ohlcv.index[0] == pd.Timestamp("2010-01-04", tz="UTC")  # not the week before, 2009-12-28
    assert from_csv.fingerprint == fingerprint(weekly)


class StandInMetaTrader5:
    """The parts of the MetaTrader5 package the engine uses, answering from backtesting.test's EURUSD."""

    def __init__(self, initialize_ok: bool = True) -> None:
        self.initialize_ok = initialize_ok
        self.calls: list[tuple[object, ...]] = []

    def initialize(self, **kwargs: object) -> bool:
        self.calls.append(("initialize", kwargs))
        return self.initialize_ok

    def last_error(self) -> tuple[int, str]:
        return (-6, "Terminal: Authorization failed")

    def copy_rates_range(
        self, symbol: str, timeframe: int, date_from: datetime, date_to: datetime
    ) -> npt.NDArray[np.void]:
        self.calls.append(("copy_rates_range", symbol, timeframe, date_from, date_to))
        bars = EURUSD.loc[date_from.replace(tzinfo=None) : date_to.replace(tzinfo=None)]
        rates = np.zeros(
            len(bars),
            dtype=[
                ("time", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"), ("close", "<f8"),
                ("tick_volume", "<u8"), ("spread", "<i4"), ("real_volume", "<u8"),
            ],
        )  # fmt: skip
        rates["time"] = bars.index.as_unit("s").asi8
        for column in ("open", "high", "low", "close"):
            rates[column] = bars[column.title()]
        rates["tick_volume"] = bars["Volume"]
        rates["spread"] = 7
        return rates

    def symbol_info(self, symbol: str) -> SimpleNamespace | None:
        if symbol != "EURUSD":
            return None
        return SimpleNamespace(
            trade_contract_size=100000.0, volume_min=0.01, volume_max=50.0, volume_step=0.01,
            trade_tick_size=1e-05, trade_tick_value=1.0, currency_profit="USD", spread=7, point=1e-05, ask=1.1,
        )  # fmt: skip


MT5 = Settings(data_source="metatrader5")


def test_metatrader5_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in = StandInMetaTrader5()
    monkeypatch.setitem(sys.modules, "MetaTrader5", stand_in)
    frame = load_frame("EURUSD", "H1", date(2017, 6, 1), date(2017, 6, 30), MT5)
    assert frame.source == "metatrader5"
    assert frame.fingerprint == load_frame("EURUSD", "H1", date(2017, 6, 1), date(2017, 6, 30)).fingerprint
    _, symbol, timeframe, start, end = stand_in.calls[1]
    assert (symbol, timeframe) == ("EURUSD", 16385)
    assert start == pd.Timestamp("2017-06-01", tz="UTC") and end == pd.Timestamp("2017-06-30 23:59:59", tz="UTC")

    instrument = load_instrument("EURUSD", MT5)
    assert (instrument.max_lot, instrument.min_lot, instrument.contract_size) == (50.0, 0.01, 100000.0)
    assert instrument.spread == pytest.approx(7e-5 / 1.1) and instrument.leverage == 30  # leverage from config
    with pytest.raises(DataError, match=r"^ticker: MetaTrader5 does not know 'GBPUSD'"):
        load_instrument("GBPUSD", MT5)
    assert [call[0] for call in stand_in.calls].count("initialize") == 1  # one connection per process


class WeeklyStandInMetaTrader5(StandInMetaTrader5):
    """Answers W1 as a terminal does: GOOG's weeks, each stamped with the Sunday it opens on."""

    def copy_rates_range(
        self, symbol: str, timeframe: int, date_from: datetime, date_to: datetime
    ) -> npt.NDArray[np.void]:
        weekly = load_frame("GOOG", "W1", date(2009, 1, 1), date(2011, 12, 31)).ohlcv
        weekly = weekly.set_axis(weekly.index - pd.Timedelta(days=1))
        weeks = weekly.loc[date_from:date_to]
        rates = np.zeros(len(weeks), dtype=[("time", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"),
                                            ("close", "<f8"), ("tick_volume", "<u8")])  # fmt: skip
        rates["time"] = weeks.index.as_unit("s").asi8
        for column in ("open", "high", "low", "close"):
            rates[column] = weeks[column.title()]
        rates["tick_volume"] = weeks["Volume"]
        return rates


def test_metatrader5_weekly_bars_stamped_on_sunday_open_that_week(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "MetaTrader5", WeeklyStandInMetaTrader5())
    # From a Monday to a Sunday: the first week's bar is stamped the day before the range, the next one's
    # on its last day; each belongs to the week it opens.
    frame = load_frame("GOOG", "W1", date(2010, 1, 4), date(2010, 12, 26), MT5)
    sample = load_frame("GOOG", "W1", date(2010, 1, 4), date(2010, 12, 26))
    assert frame.ohlcv.index[0] == pd.Timestamp("2010-01-04", tz="UTC")
    assert frame.fingerprint == sample.fingerprint


def test_metatrader5_failures_are_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "MetaTrader5", StandInMetaTrader5(initialize_ok=False))
    with pytest.raises(DataError, match=r"^data_source: MetaTrader5 initialize failed: .*Authorization failed"):
        load_frame("EURUSD", "H1", date(2017, 6, 1), date(2017, 6, 30), MT5)
    monkeypatch.setitem(sys.modules, "MetaTrader5", None)  # not installed
    data.clear_cache()
    with pytest.raises(DataError, match=r"^data_source: metatrader5 needs the MetaTrader5 package"):
        load_frame("EURUSD", "H1", date(2017, 6, 1), date(2017, 6, 30), MT5)
