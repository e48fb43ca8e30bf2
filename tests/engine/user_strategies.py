"""Strategies as a user writes them, registered in tests through a `btledger.strategies` entry point.

`Plain` declares no bounds (as every strategy did before they existed); the others declare bounds or
rules that cannot apply, which the registry must refuse rather than ignore.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Gt, Interval, MultipleOf
from backtesting import Strategy

from btledger.strategies.indicators import sma


class Plain(Strategy):
    """Long above its moving average, flat below; a bare backtesting.py strategy with typed defaults."""

    window = 10
    threshold: float = 0.0

    def init(self) -> None:
        self.average = self.I(sma, self.data.Close, self.window)

    def next(self) -> None:
        above = self.data.Close[-1] - self.average[-1] > self.threshold
        if above and not self.position:
            self.buy()
        elif not above and self.position:
            self.position.close()


class _Declared(Strategy):
    def init(self) -> None:
        pass

    def next(self) -> None:
        pass


class DefaultOutOfBounds(_Declared):
    window: Annotated[int, Ge(1)] = 0


class UnknownMetadata(_Declared):
    window: Annotated[int, MultipleOf(2)] = 4


class BoundOnText(_Declared):
    label: Annotated[str, Gt(0)] = "x"


class TwoLowerBounds(_Declared):
    window: Annotated[int, Ge(1), Interval(gt=0, le=10)] = 4


class UnreadableRule(_Declared):
    fast: int = 5
    slow: int = 10
    param_rules = ("fast << slow",)


class RuleOnUnknownName(_Declared):
    fast: int = 5
    param_rules = ("fast < slow",)


class DefaultsBreakTheRule(_Declared):
    fast: int = 20
    slow: int = 10
    param_rules = ("fast < slow",)


class UnreadableAnnotation(_Declared):
    window: Annotated[int, NoSuchBound(1)] = 4  # type: ignore[name-defined]  # noqa: F821
