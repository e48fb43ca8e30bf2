"""Price data: one interface over three sources, chosen by `settings.data_source`.

`load_frame(ticker, timeframe, date_from, date_to)` returns a `Frame`: OHLCV bars (columns Open, High,
Low, Close, Volume as float64) on a UTC `DatetimeIndex` of bar open times, with a SHA-256 fingerprint of
that content.

Sources:

- `sample`: the datasets shipped inside backtesting.test (GOOG daily, EURUSD hourly, BTCUSD monthly)
  and bokeh-sampledata's daily stocks (AAPL, IBM, MSFT, FB).
- `csv`: a folder (`settings.csv.folder`) of `<TICKER>_<TF>.csv` files, either generic
  (`Date,Open,High,Low,Close,Volume`) or MetaTrader's tab-separated export
  (`<DATE> <TIME> <OPEN> <HIGH> <LOW> <CLOSE> <TICKVOL> <VOL> <SPREAD>`), per `settings.csv.format`;
  UTF-8, or UTF-16 with a byte-order mark (as MetaTrader writes them).
  A timeframe without its own file is made from the finest finer file of the same ticker.
- `metatrader5`: `copy_rates_range` of a running terminal. The package exists on Windows only and is
  imported on first use. Its bar times follow the broker's server clock, which they are labelled as
  UTC although it is often UTC+2/+3 (as in the seed).

Rules common to all sources:

- The range is inclusive: bars opening from `date_from` 00:00 UTC up to the end of `date_to`.
- Bars are cut to the range first and then aggregated to coarser timeframes (Open first, High max,
  Low min, Close last, Volume sum, labelled by their open time, empty bars dropped), so no bar holds
  data from outside the range. Asking for a finer timeframe than the data has is a `DataError`.
- Naive timestamps are taken as UTC.
- MetaTrader (a `metatrader` csv file, the terminal) stamps a weekly bar with the Sunday its week opens
  on; such a bar is labelled the Monday after, like every other weekly bar here.
- Frames are cached per process (keyed on every argument), since a batch runs many strategies and
  risks on the same data; callers must not modify a returned frame.
"""

from __future__ import annotations

import codecs
import hashlib
import importlib
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache, lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from btledger.config import Instrument, Settings, config_path, load_instruments, load_settings, load_timeframes
from btledger.engine.errors import DataError

OHLCV = ["Open", "High", "Low", "Close", "Volume"]

#: pandas resample rule per timeframe; weeks start on Monday, months on the 1st.
_RULES: dict[str, str] = {
    "M1": "1min",
    "M5": "5min",
    "M15": "15min",
    "M30": "30min",
    "H1": "1h",
    "H4": "4h",
    "D1": "1D",
    "W1": "W-MON",
    "MN1": "MS",
}
_AGGREGATION = {"Open": "first", "High": "max", "Low": "min", "Close": "last", "Volume": "sum"}

#: Sample tickers: (package, native timeframe).
SAMPLE_TICKERS: dict[str, tuple[str, str]] = {
    "GOOG": ("backtesting", "D1"),
    "EURUSD": ("backtesting", "H1"),
    "BTCUSD": ("backtesting", "MN1"),
    "AAPL": ("bokeh_sampledata", "D1"),
    "IBM": ("bokeh_sampledata", "D1"),
    "MSFT": ("bokeh_sampledata", "D1"),
    "FB": ("bokeh_sampledata", "D1"),
}


@dataclass(frozen=True, eq=False)
class Frame:
    """OHLCV bars of one ticker and timeframe over one date range, with where they came from.

    `fingerprint` is `fingerprint(ohlcv)`; `source` is the data source's name.
    """

    ohlcv: pd.DataFrame
    source: str
    fingerprint: str

    @property
    def bars(self) -> int:
        return len(self.ohlcv)


def fingerprint(ohlcv: pd.DataFrame) -> str:
    """SHA-256 (hex) of a frame's content.

    Hashed: the tag `btledger-ohlcv-v1`, the bar open times as int64 nanoseconds since the epoch (UTC),
    then each of Open, High, Low, Close, Volume as float64, all little-endian. Equal bars give equal
    fingerprints whatever the source or the index's time unit.
    """
    digest = hashlib.sha256(b"btledger-ohlcv-v1")
    index = pd.DatetimeIndex(ohlcv.index)
    digest.update(index.as_unit("ns").asi8.astype("<i8").tobytes())
    for column in OHLCV:
        digest.update(np.ascontiguousarray(ohlcv[column].to_numpy(dtype="<f8")).tobytes())
    return digest.hexdigest()


def load_frame(ticker: str, timeframe: str, date_from: date, date_to: date, settings: Settings | None = None) -> Frame:
    """Bars of `ticker` at `timeframe` opening from `date_from` through `date_to` (inclusive), from the
    configured data source.

    Raises `DataError` (a `ValueError`) naming the field at fault: an unknown ticker or timeframe, a
    finer timeframe than the data has, an empty range, or an unreachable source.
    """
    settings = settings or load_settings()
    known = load_timeframes().by_name()
    if timeframe not in known:
        raise DataError("timeframe", f"unknown timeframe {timeframe!r} (known: {', '.join(known)})")
    if date_from >= date_to:
        raise DataError("date_from", f"must be before date_to, got {date_from} >= {date_to}")
    return _load_cached(ticker, timeframe, date_from, date_to, settings)


@lru_cache(maxsize=128)
def _load_cached(ticker: str, timeframe: str, date_from: date, date_to: date, settings: Settings) -> Frame:
    start = pd.Timestamp(date_from, tz="UTC")
    end = pd.Timestamp(date_to, tz="UTC") + pd.Timedelta(days=1)
    if settings.data_source == "sample":
        bars = _from_native(*_sample(ticker), ticker, timeframe, start, end)
    elif settings.data_source == "csv":
        bars = _from_native(*_csv(ticker, timeframe, settings), ticker, timeframe, start, end)
    else:
        bars = _metatrader5_rates(ticker, timeframe, start, end, settings)
    if bars.empty:
        raise DataError("date_from", f"no {ticker} {timeframe} bars from {date_from} to {date_to}")
    return Frame(ohlcv=bars, source=settings.data_source, fingerprint=fingerprint(bars))


def resample(bars: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Aggregate `bars` into `timeframe` bars labelled by their open time, dropping empty ones."""
    grouped = bars.resample(_RULES[timeframe], label="left", closed="left")
    return grouped.agg(_AGGREGATION).dropna(subset=["Open"])


def _minutes() -> dict[str, int]:
    return {tf.name: tf.minutes for tf in load_timeframes().timeframes}


def _from_native(
    native: pd.DataFrame, native_tf: str, ticker: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    minutes = _minutes()
    if minutes[timeframe] < minutes[native_tf]:
        coarser = [tf for tf in _RULES if tf in minutes and minutes[tf] >= minutes[native_tf]]
        raise DataError(
            "timeframe",
            f"{ticker} data is {native_tf}; cannot make finer {timeframe} bars (available: {', '.join(coarser)})",
        )
    window = native.loc[(native.index >= start) & (native.index < end)]
    return window if timeframe == native_tf else resample(window, timeframe)


def _normalised(raw: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """`raw` as float64 OHLCV on a UTC index, re-labelled to `timeframe` bar open times (e.g. monthly
    bars stamped at month end move to the 1st)."""
    index = pd.DatetimeIndex(raw.index)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    bars = raw[OHLCV].astype("float64").set_axis(index.rename("Date")).sort_index()
    return resample(bars, timeframe)


def preload(settings: Settings) -> None:
    """Read ahead what any job on `settings`' data source needs, so processes forked afterwards have it:
    for the sample source, backtesting.py's datasets (its test module parses its CSVs on import, 50 ms)."""
    if settings.data_source == "sample":
        importlib.import_module("backtesting.test")


@cache
def _sample(ticker: str) -> tuple[pd.DataFrame, str]:
    if ticker not in SAMPLE_TICKERS:
        raise DataError("ticker", f"no sample data for {ticker!r} (sample tickers: {', '.join(SAMPLE_TICKERS)})")
    package, native_tf = SAMPLE_TICKERS[ticker]
    if package == "backtesting":
        raw = getattr(importlib.import_module("backtesting.test"), ticker)
    else:
        data = getattr(importlib.import_module("bokeh_sampledata.stocks"), ticker)
        raw = pd.DataFrame({column: data[column.lower()] for column in OHLCV}, index=pd.to_datetime(data["date"]))
    return _normalised(raw, native_tf), native_tf


def _csv(ticker: str, timeframe: str, settings: Settings) -> tuple[pd.DataFrame, str]:
    folder = settings.csv.folder
    if not folder.is_dir():  # a settings mistake, not a ticker's: say which setting and where it points
        raise DataError(
            "data_source",
            f"csv.folder {str(folder)!r} (in {config_path('settings.yaml')}) is not a directory: {folder.resolve()}",
        )
    minutes = _minutes()
    available = {
        path.stem.removeprefix(f"{ticker}_"): path
        for path in folder.glob(f"{ticker}_*.csv")
        if path.stem.removeprefix(f"{ticker}_") in minutes
    }
    if not available:
        raise DataError("ticker", f"no {ticker}_<TF>.csv file in {folder}")
    # The requested timeframe's own file, else the finest file (resampled up, or refused if coarser).
    native_tf = timeframe if timeframe in available else min(available, key=minutes.__getitem__)
    return _read_csv(available[native_tf], native_tf, settings.csv.format), native_tf


def _text_encoding(path: Path) -> str:
    """UTF-16 for a file that starts with its byte-order mark (MetaTrader writes its exports so), else UTF-8."""
    with path.open("rb") as file:
        start = file.read(2)
    return "utf-16" if start in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8"


def _read_csv(path: Path, timeframe: str, fmt: str) -> pd.DataFrame:
    encoding = _text_encoding(path)
    try:
        if fmt == "metatrader":
            raw = pd.read_csv(path, sep="\t", dtype={"<DATE>": str, "<TIME>": str}, encoding=encoding)
            stamps = raw["<DATE>"] + (" " + raw["<TIME>"] if "<TIME>" in raw else "")
            raw.index = pd.to_datetime(stamps, format="%Y.%m.%d %H:%M:%S" if "<TIME>" in raw else "%Y.%m.%d")
            raw = raw.rename(columns={f"<{c.upper()}>": c for c in OHLCV[:4]} | {"<TICKVOL>": "Volume"})
            raw = _weeks_from_monday(raw, timeframe)
        else:
            raw = pd.read_csv(path, index_col="Date", encoding=encoding)
            raw.index = pd.to_datetime(raw.index, utc=True)
        return _normalised(raw, timeframe)
    except (KeyError, ValueError) as exc:
        raise DataError("data_source", f"cannot read {path} as csv.format={fmt}: {exc}") from exc


def _weeks_from_monday(raw: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """MetaTrader's weekly bars, stamped with the Sunday their trading week opens on, moved to the Monday after:
    binned into Monday-to-Sunday weeks as they were, each would join (and be dated) the week before."""
    if timeframe != "W1":
        return raw
    index = pd.DatetimeIndex(raw.index)
    return raw.set_axis(index.where(index.day_of_week != 6, index + pd.Timedelta(days=1)))


def _metatrader5() -> ModuleType:
    try:
        return importlib.import_module("MetaTrader5")
    except ImportError as exc:
        raise DataError(
            "data_source",
            "metatrader5 needs the MetaTrader5 package (Windows only): install btledger[metatrader5]",
        ) from exc


@cache
def _connected_metatrader5(settings: Settings) -> ModuleType:
    # One terminal connection per process, kept for the worker's life.
    mt5 = _metatrader5()
    options = settings.metatrader5
    login = {
        key: value
        for key, value in {
            "path": options.path,
            "login": options.login,
            "password": options.password,
            "server": options.server,
            "timeout": options.timeout_ms,
        }.items()
        if value is not None
    }
    if not mt5.initialize(**login):
        raise DataError("data_source", f"MetaTrader5 initialize failed: {mt5.last_error()}")
    return mt5


def _metatrader5_rates(
    ticker: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp, settings: Settings
) -> pd.DataFrame:
    mt5 = _connected_metatrader5(settings)
    constant = load_timeframes().by_name()[timeframe].mt5_constant
    # A week's bar is stamped with its Sunday: from a Monday, ask from the day before so as to have it.
    ask_from = start - pd.Timedelta(days=1) if timeframe == "W1" else start
    # copy_rates_range includes `date_to`; stop one second before the next day.
    rates = mt5.copy_rates_range(
        ticker, constant, ask_from.to_pydatetime(), (end - timedelta(seconds=1)).to_pydatetime()
    )
    if rates is None:
        raise DataError("ticker", f"MetaTrader5 has no {ticker} {timeframe} rates: {mt5.last_error()}")
    raw = pd.DataFrame(
        {
            "Open": rates["open"],
            "High": rates["high"],
            "Low": rates["low"],
            "Close": rates["close"],
            "Volume": rates["tick_volume"],
        },
        index=pd.to_datetime(rates["time"], unit="s", utc=True),
    )
    bars = _normalised(_weeks_from_monday(raw, timeframe), timeframe)
    return bars.loc[(bars.index >= start) & (bars.index < end)]


def load_instrument(ticker: str, settings: Settings | None = None) -> Instrument:
    """The instrument config of `ticker`; with the `metatrader5` source, its lot limits, tick size,
    contract size, quote currency and current spread come from the terminal's `symbol_info`.

    Raises `DataError` for a ticker that the instruments config or the terminal does not know.
    """
    settings = settings or load_settings()
    instruments = load_instruments().instruments
    if ticker not in instruments:
        raise DataError("ticker", f"unknown ticker {ticker!r} (known: {', '.join(sorted(instruments))})")
    configured = instruments[ticker]
    if settings.data_source != "metatrader5":
        return configured
    mt5 = _connected_metatrader5(settings)
    info = mt5.symbol_info(ticker)
    if info is None:
        raise DataError("ticker", f"MetaTrader5 does not know {ticker!r}: {mt5.last_error()}")
    # trade_tick_value is in the deposit currency at today's rate; the quote-currency value is exact.
    return Instrument.model_validate(
        configured.model_dump()
        | {
            "contract_size": info.trade_contract_size,
            "min_lot": info.volume_min,
            "max_lot": info.volume_max,
            "lot_step": info.volume_step,
            "tick_size": info.trade_tick_size,
            "tick_value": info.trade_tick_size * info.trade_contract_size,
            "quote_currency": info.currency_profit,
            "spread": info.spread * info.point / info.ask if info.ask else configured.spread,
        }
    )


def clear_cache() -> None:
    """Forget loaded frames and the terminal connection (tests, and servers whose data files change)."""
    _load_cached.cache_clear()
    _sample.cache_clear()
    _connected_metatrader5.cache_clear()
