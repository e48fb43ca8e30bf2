"""Shared fixtures: every test gets its own data directory (real SQLite and DuckDB files in tmp_path)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from btledger.config import clear_config_cache

# Subprocesses (CLI runs, crash tests, servers) import pandas and backtesting.py anew; without cached
# bytecode each would spend seconds compiling them where the environment sets PYTHONDONTWRITEBYTECODE.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


@pytest.fixture(autouse=True)
def btledger_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("BTLEDGER_HOME", str(home))
    clear_config_cache()
    yield home
    clear_config_cache()
