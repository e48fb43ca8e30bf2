"""Shared fixtures: every test gets its own data directory (real SQLite and DuckDB files in tmp_path)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from btledger.config import clear_config_cache


@pytest.fixture(autouse=True)
def btledger_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("BTLEDGER_HOME", str(home))
    clear_config_cache()
    yield home
    clear_config_cache()
