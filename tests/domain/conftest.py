"""The ledger on the event store the test runs on (`tests.postgres`: SQLite, or PostgreSQL if marked)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from btledger.domain.ledger import Ledger, store_env


@pytest.fixture
def ledger(event_store: str, btledger_home: Path) -> Iterator[Ledger]:
    ledger = Ledger(env=store_env(btledger_home))
    yield ledger
    ledger.close()  # PostgreSQL: its pool's connections
