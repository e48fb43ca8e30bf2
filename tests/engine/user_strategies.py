"""Strategies as a user writes them, registered in tests through a `btledger.strategies` entry point.

`Plain` declares no bounds (as every strategy did before they existed); `FailsWithMarkup` fails with an
error that looks like rich markup; `Documented` documents its parameters in their metadata, `Coded`
declares a text's format and `HeldBars` has RandomTrader's text `hold_bars` as a number; the others
declare bounds, formats or rules that cannot apply, which the registry must refuse rather than ignore.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Gt, Interval, MinLen, MultipleOf, doc
from backtesting import Strategy

from btledger.engine.param_bounds import TextFormat
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


class FailsWithMarkup(Strategy):
    """Raises an error whose text looks like rich markup, as any library's message may."""

    def init(self) -> None:
        raise ValueError("[/x] closes no tag, [bold]y[/bold] opens one")

    def next(self) -> None:
        pass


class _Declared(Strategy):
    def init(self) -> None:
        pass

    def next(self) -> None:
        pass


class Documented(_Declared):
    window: Annotated[int, "bars in the average", Ge(1)] = 10
    threshold: Annotated[float, doc("how far above the average")] = 0.0
    label: Annotated[str, "a name for the plot"] = "x"
    long_only: Annotated[bool, "never short"] = True


def parse_code(text: str) -> str:
    """Two upper-case ASCII letters."""
    if len(text) != 2 or not ("A" <= text[0] <= "Z" and "A" <= text[1] <= "Z"):
        raise ValueError(f"expected two capital letters, got {text!r}")
    return text


class Coded(_Declared):
    code: Annotated[str, "the desk", TextFormat("two capital letters", parse_code)] = "FX"


class HeldBars(_Declared):
    hold_bars = 3


class DefaultOutOfBounds(_Declared):
    window: Annotated[int, Ge(1)] = 0


class UnknownMetadata(_Declared):
    window: Annotated[int, MultipleOf(2)] = 4


class UnknownTextMetadata(_Declared):
    label: Annotated[str, MinLen(1)] = "x"


class BoundOnText(_Declared):
    label: Annotated[str, Gt(0)] = "x"


class FormatOnNumber(_Declared):
    window: Annotated[int, TextFormat("two capital letters", parse_code)] = 4


class FormatAndBound(_Declared):
    code: Annotated[str, TextFormat("two capital letters", parse_code), Gt(0)] = "FX"


class DefaultOutOfFormat(_Declared):
    code: Annotated[str, TextFormat("two capital letters", parse_code)] = "fx"


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
    window: Annotated[int, NoSuchBound(1)] = 4  # noqa: F821


def join_with_semicolons(codes: list[str]) -> str:
    return ";".join(codes)


def parse_comma_codes(text: str) -> list[str]:
    """Comma-separated codes of two capital letters."""
    return [parse_code(code.strip()) for code in text.split(",")]


class FormatNotReadBack(_Declared):
    """Its format writes a separator its parser refuses: the default's key could not be read again."""

    codes: Annotated[str, TextFormat("codes", parse_comma_codes, join_with_semicolons)] = "FX,EQ"


def double_large(value: int) -> str:
    return str(value * 2 if value > 10 else value)


class FormatDriftsOnLargeValues(_Declared):
    """Its format round-trips its default but writes another number for one above 10, each time it is read."""

    window: Annotated[str, TextFormat("a whole number", int, double_large)] = "4"
