"""Wiring: open the event store, the read model and the worker pool for one process.

Entrypoints (CLI, HTTP app, benchmarks) get their parts here, so configuration lives in one place.
"""

from __future__ import annotations

from pathlib import Path

from btledger.config import home as default_home
from btledger.domain.ledger import Ledger, store_env


def open_ledger(home: Path | None = None) -> Ledger:
    """The ledger over `home`'s event store (SQLite file, or PostgreSQL when the environment says so)."""
    return Ledger(env=store_env(home or default_home()))
