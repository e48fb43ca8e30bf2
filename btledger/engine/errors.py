"""Errors the engine raises for input it cannot run.

Every message starts with the name of the offending field (`"risk: must be in (0, 100], got 150"`), so a
CLI or an HTTP handler can show it as is.
"""

from __future__ import annotations


class SpecError(ValueError):
    """A run's input is invalid: unknown name, bad range, unknown strategy parameter.

    `field` names the offending input; the message starts with it.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class DataError(SpecError):
    """No usable price data for the request: unknown ticker, finer timeframe than the data, empty range,
    unreadable file, or a data source that cannot be reached."""


def describe(error: BaseException) -> str:
    """`Type: message`, followed by what caused it: `(caused by Type: message)`, down the chain.

    Where only the text is kept (a recorded failure, a parked event, a failed job) the traceback is gone,
    and with it the chained error that says why, e.g. backtesting.py's `Indicator "sma(C,-5)" error. See
    traceback above.` raised from pandas' `ValueError: window must be an integer 0 or greater`. Only
    explicit causes (`raise ... from`) are followed: an error raised while handling another is not
    caused by it (the projector's retries would repeat one error down the chain, each attempt's own).
    """
    chain: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:  # a chain can be made to loop
        seen.add(id(current))
        chain.append(f"{type(current).__name__}: {current}")
        current = current.__cause__
    text = chain.pop()
    for outer in reversed(chain):
        # The cause now follows in the text, and there is no traceback above it to point to.
        text = f"{outer.removesuffix('. See traceback above.')} (caused by {text})"
    return text
