"""Shared fixtures: every test gets its own data directory (real SQLite and DuckDB files in tmp_path)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from btledger.config import clear_config_cache
from tests.postgres import event_store, postgres_server

__all__ = ["event_store", "postgres_server"]  # the fixtures, for every test directory

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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=os.environ.get("BTLEDGER_SLOW") == "1",
        help="also run the long variants of the reliability tests (or set BTLEDGER_SLOW=1)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long variant: pass --run-slow or set BTLEDGER_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
