"""The ledger benchmark compares like with like: its bare loop runs exactly the combinations `btledger run` does."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_the_bare_loop_runs_the_ledger_benchmarks_combinations_in_their_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bare_loop
    import ledger

    planned = [spec for command in ledger._commands() for spec in command.specs()]
    assert len(planned) == 40
    assert bare_loop.specs() == planned
