"""Commands: the validated input of every change to the ledger.

Each is a pydantic model; `parse(Command, data)` turns raw input (CLI flags, a JSON body) into a
command or raises `InvalidInput` naming the first offending field. Names are checked against the
strategy registry, the instruments config and the timeframes config, so nothing runs or is written
for a command that cannot succeed.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from btledger.config import ConfigError, load_instruments, load_settings, load_timeframes
from btledger.domain.errors import InvalidInput
from btledger.engine.errors import SpecError
from btledger.engine.registry import get_strategy, registry, strategy_names
from btledger.engine.result import JsonScalar, RunSpec

C = TypeVar("C", bound=BaseModel)


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _a_number(value: Any) -> Any:
    # pydantic's lax mode reads true as 1 and "1.3" as 1.3: a body that says that is wrong, not a number.
    if isinstance(value, bool | str):
        raise ValueError(f"expected a number, got {value!r}")
    return value


def _a_bool(value: Any) -> Any:
    # Not pydantic's StrictBool: Litestar validates bodies with strict=False, which overrides it.
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _a_day(value: Any) -> Any:
    # Lax mode reads 1104537600 as a unix time and "2005-01-01T00:00" as a day: only a day is one.
    if type(value) is date:
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return value
    raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}")


def _numbers(value: Any) -> Any:
    # Checked as a list, so that the error names the field (`risks`), not an item of it (`risks.0`).
    return [_a_number(item) for item in value] if isinstance(value, list) else value


#: A number given as one (int or float): not a bool, not text.
Number = Annotated[float, BeforeValidator(_a_number)]
#: A list of numbers, each given as one.
Numbers = Annotated[list[float], BeforeValidator(_numbers)]
#: A whole number given as one.
WholeNumber = Annotated[int, BeforeValidator(_a_number)]
#: true or false, given as one.
Flag = Annotated[bool, BeforeValidator(_a_bool)]
#: A calendar day, as a date or "YYYY-MM-DD" text.
Day = Annotated[date, BeforeValidator(_a_day)]


def _known(field: str, values: list[str], known: list[str]) -> list[str]:
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValueError(f"unknown {field} {unknown[0]!r} (known: {', '.join(sorted(known))})")
    return values


class RunBatch(_Command):
    """Run the cartesian product strategies × tickers × timeframes × risks over one date range."""

    strategies: list[str] = Field(min_length=1, max_length=100)
    tickers: list[str] = Field(min_length=1, max_length=1000)
    timeframes: list[str] = Field(min_length=1, max_length=20)
    risks: Numbers = Field(min_length=1, max_length=100)
    date_from: Day
    date_to: Day
    initial_cash: Number | None = Field(None, description="Default: settings.initial_cash.")
    method: str = Field("pa", min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")
    params: dict[str, JsonScalar] = Field(default_factory=dict, max_length=50)
    rerun: Flag = False
    plot: Literal["none", "temp", "persist"] = "none"
    #: Each strategy's `params` as a result's key holds them (`StrategyEntry.key_params`), set by `_params_known`.
    _key_params: dict[str, dict[str, JsonScalar]] = PrivateAttr(default_factory=dict)

    @field_validator("strategies")
    @classmethod
    def _strategies_known(cls, value: list[str]) -> list[str]:
        return _known("strategy", value, strategy_names())

    @field_validator("tickers")
    @classmethod
    def _tickers_known(cls, value: list[str]) -> list[str]:
        return _known("ticker", value, list(load_instruments().instruments))

    @field_validator("timeframes")
    @classmethod
    def _timeframes_known(cls, value: list[str]) -> list[str]:
        return _known("timeframe", value, list(load_timeframes().by_name()))

    @field_validator("risks")
    @classmethod
    def _risks_in_range(cls, value: list[float]) -> list[float]:
        for risk in value:
            if not (math.isfinite(risk) and 0 < risk <= 100):
                raise ValueError(f"must be in (0, 100] (a percent of equity per trade), got {risk}")
        return value

    @field_validator("initial_cash")
    @classmethod
    def _cash_positive(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"must be a positive number, got {value}")
        return value

    @field_validator("params")
    @classmethod
    def _params_finite(cls, value: dict[str, JsonScalar]) -> dict[str, JsonScalar]:
        for name, item in value.items():
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"parameter {name!r} must be finite, got {item}")
            if isinstance(item, int) and not isinstance(item, bool) and not -(2**63) <= item < 2**63:
                # e.g. `--param n_fast=999…9` (400 digits): accepted, stored, then failed in the engine
                raise ValueError(f"parameter {name!r} must fit in 64 bits, got an integer of {len(str(item))} digits")
        return value

    @model_validator(mode="after")
    def _dates_ordered(self) -> RunBatch:
        if self.date_from >= self.date_to:
            raise _FieldError("date_from", f"must be before date_to ({self.date_from} >= {self.date_to})")
        return self

    @model_validator(mode="after")
    def _params_known(self) -> RunBatch:
        # Checked here, not only by the engine: an unknown or mistyped parameter, or one outside the bounds its
        # strategy declares, would be appended as a RunFailed event per combination (and tried again by
        # every later run of the batch). The check gives each strategy's key params, which `specs()` uses.
        for strategy in dict.fromkeys(self.strategies):
            try:
                self._key_params[strategy] = get_strategy(strategy).key_params(self.params)
            except SpecError as error:
                raise _FieldError(error.field, str(error).removeprefix(f"{error.field}: ")) from None
        return self

    @model_validator(mode="after")
    def _not_too_many(self) -> RunBatch:
        if self.combinations > MAX_COMBINATIONS:
            raise _FieldError("batch", _too_many(self.combinations))
        return self

    @property
    def combinations(self) -> int:
        """How many combinations `specs()` gives."""
        return math.prod(len(set(names)) for names in (self.strategies, self.tickers, self.timeframes, self.risks))

    def specs(self) -> list[RunSpec]:
        """The combinations, deduplicated, in a stable order."""
        cash = self.initial_cash if self.initial_cash is not None else load_settings().initial_cash
        combos = itertools.product(
            dict.fromkeys(self.strategies),
            dict.fromkeys(self.tickers),
            dict.fromkeys(self.timeframes),
            dict.fromkeys(self.risks),
        )
        return [
            RunSpec(
                strategy=strategy,
                ticker=ticker,
                timeframe=timeframe,
                risk=float(risk),
                date_from=self.date_from,
                date_to=self.date_to,
                initial_cash=float(cash),
                method=self.method,
                params=dict(self._key_params[strategy]),
            )
            for strategy, ticker, timeframe, risk in combos
        ]


def params_from_text(strategies: Sequence[str], texts: dict[str, str]) -> dict[str, JsonScalar]:
    """A batch's parameters given as text (`btledger run --param NAME=VALUE`), each read as the type the
    batch's strategies declare for it (`StrategyEntry.param_from_text`): `hold_bars=5` is the text "5" for
    RandomTrader, `n_fast=5` the number 5 for SmaCross. `RunBatch` then checks the values as it checks a
    JSON body's; an unknown strategy, or a name none of the strategies has, is left for it to refuse.

    Raises InvalidInput (`params`) when the text reads as different values for two of the strategies (a
    text for one, a number for the other): a batch gives all its strategies one value.
    """
    entries = [entry for name in dict.fromkeys(strategies) if (entry := registry().get(name)) is not None]
    params: dict[str, JsonScalar] = {}
    for key, text in texts.items():
        readings = {entry.name: entry.param_from_text(key, text) for entry in entries if key in entry.params}
        by_repr = {repr(value): name for name, value in readings.items()}  # by repr: two readings of "nan" agree
        if len(by_repr) > 1:
            (one, first), (other, second) = list(by_repr.items())[:2]
            raise InvalidInput(
                "params",
                f"{key}={text} reads as {one} for {first} but as {other} for {second}: a batch gives its strategies "
                "one value (run them as separate batches)",
            )
        params[key] = next(iter(readings.values()), text)
    return params


#: Most batches one plan may hold.
MAX_PLAN_BATCHES = 1000
#: Most combinations one batch or plan may hold: a few hours of backtests on a workstation. Each is
#: planned, and followed by a job's progress, in memory; a larger study is several runs.
MAX_COMBINATIONS = 100_000


def _too_many(count: int) -> str:
    return f"{count:,} combinations (strategies × tickers × timeframes × risks); at most {MAX_COMBINATIONS:,} at once"


def parse_plan(data: Any) -> list[RunBatch]:
    """A plan, `{"batches": [batch, ...]}` with each batch as `RunBatch` takes it, as its commands; raises
    InvalidInput naming the batch and its field (`batches[1].date_from`)."""
    if not isinstance(data, dict) or set(data) != {"batches"}:
        raise InvalidInput("plan", "expected a mapping with one key, batches (a list of batches)")
    batches = data["batches"]
    if not isinstance(batches, list) or not 1 <= len(batches) <= MAX_PLAN_BATCHES:
        raise InvalidInput("batches", f"expected a list of 1 to {MAX_PLAN_BATCHES} batches")
    commands = []
    for number, batch in enumerate(batches):
        if not isinstance(batch, dict):
            raise InvalidInput(f"batches[{number}]", f"expected a mapping of batch fields, got {type(batch).__name__}")
        try:
            commands.append(parse(RunBatch, batch))
        except InvalidInput as error:
            raise InvalidInput(f"batches[{number}].{error.field}", error.problem) from None
    if (count := sum(command.combinations for command in commands)) > MAX_COMBINATIONS:
        raise InvalidInput("batches", _too_many(count))
    plan_specs(commands)
    return commands


def plan_specs(commands: Sequence[RunBatch]) -> dict[RunSpec, int]:
    """Every combination of the batches, in order, to its batch's number; raises InvalidInput
    (`batches[i]`) for a combination in two batches: it would run twice and be recorded twice."""
    batch_of: dict[RunSpec, int] = {}
    for number, command in enumerate(commands):
        for spec in command.specs():
            if spec in batch_of:
                raise InvalidInput(
                    f"batches[{number}]",
                    f"{spec.strategy} {spec.ticker} {spec.timeframe} risk {spec.risk:g} from {spec.date_from} "
                    f"to {spec.date_to} is also in batches[{batch_of[spec]}]",
                )
            batch_of[spec] = number
    return batch_of


class _FieldError(ValueError):
    """A model-level check that knows which field is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


def parse(command: type[C], data: dict[str, Any]) -> C:
    """Validate `data` into `command`, or raise InvalidInput naming the first bad field."""
    try:
        return command.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        context = first.get("ctx") or {}
        error = context.get("error")
        if isinstance(error, ConfigError):
            raise error from None  # a broken config file is not the command's fault
        if isinstance(error, _FieldError):
            raise InvalidInput(error.field, str(error)) from None
        location = [str(part) for part in first["loc"] if not isinstance(part, int)]
        field = ".".join(location) or "body"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInput(field, message) from None
