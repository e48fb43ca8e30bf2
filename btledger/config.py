"""Settings, instruments and timeframes: YAML files loaded into validated pydantic models.

The shipped defaults live in `btledger/configs/`. A user overrides any of them by putting a file of
the same name in `$BTLEDGER_HOME/configs/` (default `./var/configs/`). A wrong key or value is a
`ConfigError` naming the file, the key and the problem.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PACKAGED_CONFIGS = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A configuration file is missing, malformed or holds an invalid value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CsvSource(_Strict):
    folder: Path = Path("data")
    #: "generic" (Date/Open/High/Low/Close/Volume header) or "metatrader" (tab-separated <DATE> <TIME> ...).
    format: Literal["generic", "metatrader"] = "generic"


class MetaTrader5Source(_Strict):
    path: str | None = None
    login: int | None = None
    password: str | None = None
    server: str | None = None
    timeout_ms: int = 60_000


#: The most worker processes a batch may ask for. Each worker is one single-threaded process with its own
#: pipe, so past the core count more only compete for the cores, and a mistyped count (100000) would
#: exhaust the process and file limits. A fixed number, not a multiple of this machine's cores, so a
#: settings file valid on one machine is valid on every other; 256 covers the largest servers' cores.
MAX_WORKERS = 256


def check_workers(workers: int | None) -> None:
    """Refuse a worker count asked for outside 1 to `MAX_WORKERS` (0 or None: settings, else one per core)."""
    if workers is not None and workers < 0:
        # A negative count used to make a pool of no workers: every batch then "finished" having run nothing.
        raise ValueError(
            f"workers: must be at least 1 (0 or none: settings' workers, else one per core), got {workers}"
        )
    if workers is not None and workers > MAX_WORKERS:
        raise ValueError(f"workers: must be at most {MAX_WORKERS}, got {workers}")


class Settings(_Strict):
    data_source: Literal["sample", "csv", "metatrader5"] = "sample"
    csv: CsvSource = CsvSource()
    metatrader5: MetaTrader5Source = MetaTrader5Source()
    risk_free_rate: float = Field(0.02, ge=-1, le=1, description="Annual rate, a fraction (0.02 = 2 %).")
    initial_cash: float = Field(100_000, gt=0)
    account_currency: str = Field("USD", min_length=3, max_length=3)
    workers: int = Field(0, ge=0, le=MAX_WORKERS, description="Worker processes for batches; 0 = one per core.")


class Category(_Strict):
    #: >= 1: money per lot round-turn; < 1: percent of notional round-turn (half at entry, half at exit).
    commission: float = Field(0.0, ge=0)


class Instrument(_Strict):
    category: str
    leverage: float = Field(1.0, gt=0)
    #: Relative spread (fraction of price) paid once per trade.
    spread: float = Field(0.0, ge=0, lt=1)
    contract_size: float = Field(1.0, gt=0)
    min_lot: float = Field(1.0, gt=0)
    max_lot: float = Field(1_000_000.0, gt=0)
    lot_step: float = Field(1.0, gt=0)
    tick_size: float = Field(0.01, gt=0)
    tick_value: float = Field(0.01, gt=0, description="Money value of one tick for one lot, quote currency.")
    quote_currency: str = Field("USD", min_length=3, max_length=3)
    #: Overrides the category's commission (same >= 1 / < 1 rule), money in the quote currency.
    commission: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _lots_ordered(self) -> Instrument:
        if self.min_lot > self.max_lot:
            raise ValueError(f"min_lot ({self.min_lot}) is greater than max_lot ({self.max_lot})")
        return self

    @model_validator(mode="after")
    def _one_unit_moves_one_money_unit(self) -> Instrument:
        # backtesting.py books P&L as units × price change, so one unit must be worth one quote-currency
        # unit per 1.0 of price; otherwise every P&L, margin and risk-based size would be off by the ratio.
        expected = self.tick_size * self.contract_size
        if abs(self.tick_value - expected) > 1e-9 * max(1.0, expected):
            raise ValueError(f"tick_value ({self.tick_value}) must equal tick_size × contract_size ({expected:g})")
        return self


class Instruments(_Strict):
    categories: dict[str, Category]
    instruments: dict[str, Instrument]

    @model_validator(mode="after")
    def _categories_known(self) -> Instruments:
        for ticker, instrument in self.instruments.items():
            if instrument.category not in self.categories:
                raise ValueError(
                    f"instruments.{ticker}.category: unknown category {instrument.category!r} "
                    f"(known: {', '.join(sorted(self.categories))})"
                )
        return self


TimeframeName = Literal["M1", "M5", "M15", "M30", "H1", "H4", "D1", "W1", "MN1"]


class Timeframe(_Strict):
    name: TimeframeName
    minutes: int = Field(gt=0)
    mt5_constant: int
    selected: bool = False


class Timeframes(_Strict):
    timeframes: list[Timeframe]

    @model_validator(mode="after")
    def _unique(self) -> Timeframes:
        names = [tf.name for tf in self.timeframes]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"timeframes: {', '.join(twice)} listed twice")
        return self

    def by_name(self) -> dict[str, Timeframe]:
        return {tf.name: tf for tf in self.timeframes}

    @property
    def selected(self) -> list[str]:
        return [tf.name for tf in self.timeframes if tf.selected]


def home() -> Path:
    """The data directory: `$BTLEDGER_HOME`, or `./var`."""
    return Path(os.environ.get("BTLEDGER_HOME") or "var").resolve()


def config_path(name: str) -> Path:
    """The user's override of config `name` if present, else the packaged default."""
    user = home() / "configs" / name
    return user if user.exists() else PACKAGED_CONFIGS / name


#: libyaml's safe loader when PyYAML was built with it: 8× faster on instruments.yaml (33 → 4 ms),
#: which every command reads.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(ValueError):
    """A file is missing or not valid YAML; the message says which and where."""


def read_yaml(path: Path) -> Any:
    """The content of the YAML file at `path` (None when empty); raises YamlError."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except FileNotFoundError as exc:
        raise YamlError(f"{path}: file not found") from exc
    except OSError as exc:  # a directory, no permission
        raise YamlError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise YamlError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise YamlError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from exc


def _load(name: str, model: type[BaseModel]) -> Any:
    path = config_path(name)
    try:
        raw = read_yaml(path) or {}
    except YamlError as exc:
        raise ConfigError(str(exc)) from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_first_problem(exc)}") from exc


def _first_problem(exc: ValidationError) -> str:
    """The first error as `key: problem`. A check of ours speaks for itself: pydantic's "Value error, "
    prefix is dropped, and a check on the whole file names its own key (there is no `loc` to name)."""
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    problem = str(first["ctx"]["error"]) if first["type"] == "value_error" else first["msg"]
    return f"{key}: {problem}" if key else problem


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The parser's complaint on one line, with where it is (its own text spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + " ".join(problem.split())


@cache
def _cached(name: str, model: type[BaseModel], home_dir: Path) -> Any:
    return _load(name, model)


def load_settings() -> Settings:
    return _cached("settings.yaml", Settings, home())


def load_instruments() -> Instruments:
    return _cached("instruments.yaml", Instruments, home())


def load_timeframes() -> Timeframes:
    return _cached("timeframes.yaml", Timeframes, home())


def clear_config_cache() -> None:
    """Forget loaded configs (tests and long-lived servers that edit files call this)."""
    _cached.cache_clear()
