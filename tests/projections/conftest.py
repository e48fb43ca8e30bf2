"""Fixtures: a real SQLite event store and a real DuckDB read model in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from btledger.bootstrap import open_ledger
from btledger.domain.ledger import Ledger
from btledger.projections.readmodel import ReadModel
from tests.projections.factories import open_readmodel


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return open_ledger(tmp_path)


@pytest.fixture
def readmodel(tmp_path: Path) -> Iterator[ReadModel]:
    model = open_readmodel(tmp_path / "readmodel.duckdb")
    yield model
    model.close()
