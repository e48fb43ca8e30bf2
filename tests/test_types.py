"""The type hints are checked: mypy, configured in pyproject.toml, finds no error in btledger or tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_errors() -> None:
    # A subprocess, as `uv run mypy` runs it: its cache (.mypy_cache) keeps a second run to a few seconds.
    checked = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert checked.returncode == 0, f"mypy found errors (run `uv run mypy`):\n{checked.stdout}{checked.stderr}"
