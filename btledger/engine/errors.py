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
