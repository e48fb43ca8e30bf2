"""Fixtures: a real SQLite event store and a real DuckDB read model in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from btledger.domain.ledger import Ledger, store_env
from btledger.projections.readmodel import ReadModel
from tests.projections.factories import TIMEFRAMES


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(env=store_env(tmp_path))


@pytest.fixture
def readmodel(tmp_path: Path) -> Iterator[ReadModel]:
    model = ReadModel.open(tmp_path / "readmodel.duckdb", timeframes=TIMEFRAMES)
    yield model
    model.close()
