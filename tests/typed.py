"""Precise types for tests: a `RunSpec`'s keyword arguments, and a metric read as the number it is.

`SpecChange` leaves out the strategy and ticker, for helpers that take those two as positional arguments.
"""

from __future__ import annotations

from datetime import date
from typing import TypedDict

from btledger.engine.result import JsonScalar


class SpecChange(TypedDict, total=False):
    timeframe: str
    risk: float
    date_from: date
    date_to: date
    initial_cash: float
    method: str
    params: dict[str, JsonScalar]


class SpecFields(SpecChange, total=False):
    strategy: str
    ticker: str


def text(value: object) -> str:
    """A value that a loosely typed row or mapping holds, checked to be a string."""
    assert isinstance(value, str), f"not a string: {value!r}"
    return value


def number(value: JsonScalar) -> float:
    """A metric's value, which the type of a metrics mapping leaves open, checked to be a number."""
    assert isinstance(value, int | float) and not isinstance(value, bool), f"not a number: {value!r}"
    return value
