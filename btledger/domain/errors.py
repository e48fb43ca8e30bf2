"""Errors the domain raises; entrypoints map them to exit codes and HTTP statuses."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error a command reports to its caller."""


class InvalidInput(LedgerError, ValueError):
    """A command's input is invalid; nothing was written. `field` names the offending input."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFound(LedgerError, LookupError):
    """No backtest has the given id (or id prefix)."""

    def __init__(self, what: str, field: str = "id") -> None:
        super().__init__(what)
        self.field = field


class Conflict(LedgerError):
    """The command does not apply to the current state (e.g. restoring a result that is not deleted)."""

    def __init__(self, what: str, field: str | None = None) -> None:
        super().__init__(what)
        self.field = field


class StoreUnavailable(LedgerError):
    """The event store cannot be reached or opened as configured (e.g. PostgreSQL refusing the connection)."""
