"""live_plot refuses a result whose strategy code or costs changed since it ran, or whose key no longer runs
(tests/cli/test_cli.py and tests/api/test_batches.py render plots, and refuse one whose data changed)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from btledger.domain.errors import Conflict
from btledger.domain.ledger import Ledger
from btledger.domain.plots import live_plot
from btledger.engine import run_backtest
from tests.domain.test_audit import BEFORE_RULES
from tests.domain.test_robustness_command import SPEC


def test_changed_strategy_code_or_costs_are_named_and_nothing_is_written(ledger: Ledger, btledger_home: Path) -> None:
    real = run_backtest(SPEC)
    earlier_code = dataclasses.replace(real, strategy_fingerprint="0" * 64)
    identity, _ = ledger.record_outcome(SPEC, earlier_code)
    with pytest.raises(Conflict) as refused:
        live_plot(ledger, btledger_home, identity)
    assert str(refused.value) == (
        f"backtest {identity} cannot be plotted as recorded: its strategy's code changed since it ran "
        f"(strategy_fingerprint was 000000000000…, is now {real.strategy_fingerprint[:12]}…); "
        "a rerun (--rerun in the CLI) records a result on the current inputs, which can be plotted"
    )

    other_spread = dataclasses.replace(real, costs={**real.costs, "spread": 0.001})
    ledger.record_outcome(SPEC, other_spread)
    with pytest.raises(Conflict) as refused:
        live_plot(ledger, btledger_home, identity)
    why = f"its costs (the instruments config) changed since it ran (spread was 0.001, is now {real.costs['spread']});"
    assert why in str(refused.value)
    assert list((btledger_home / "plots").iterdir()) == []

    ledger.record_outcome(SPEC, real)  # the inputs it ran on: plotted, after the fourth event
    assert live_plot(ledger, btledger_home, identity) == btledger_home / "plots" / f"{identity}-v4.html"


def test_a_key_its_strategy_now_refuses_is_not_plotted(ledger: Ledger, btledger_home: Path) -> None:
    identity, _ = ledger.record_outcome(BEFORE_RULES, run_backtest(SPEC))
    with pytest.raises(Conflict, match=rf"^backtest {identity} cannot be run again to plot it: params: SmaCross must "):
        live_plot(ledger, btledger_home, identity)
