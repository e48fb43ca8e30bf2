"""verify on results the current code cannot re-run as they were."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from btledger.domain.audit import verify
from btledger.domain.backtest import backtest_id
from btledger.domain.ledger import Ledger
from btledger.engine import SpecError, run_backtest
from btledger.engine.result import RunSpec
from tests.domain.test_robustness_command import SPEC
from tests.postgres import on_each_store

#: SmaCross parameters it ran with before it declared n_fast < n_slow.
BEFORE_RULES = dataclasses.replace(SPEC, params={"n_fast": 50, "n_slow": 20})


def test_a_result_whose_parameters_its_changed_strategy_refuses_is_strategy_changed(ledger: Ledger) -> None:
    """It was recorded by earlier SmaCross code (another fingerprint), which ran n_fast=50, n_slow=20; the
    re-run's refusal of its parameters was reported as the user's bad input (exit 2)."""
    outcome = dataclasses.replace(run_backtest(SPEC), strategy_fingerprint="0" * 64)
    identity, _ = ledger.record_outcome(BEFORE_RULES, outcome)
    verification = verify(ledger, identity, run_backtest)
    assert verification.verdict == "strategy_changed"
    assert verification.current_data_fingerprint == outcome.data_fingerprint
    assert verification.current_strategy_fingerprint == run_backtest(SPEC).strategy_fingerprint


def test_parameters_refused_by_the_code_they_were_recorded_with_are_still_an_error(ledger: Ledger) -> None:
    identity, _ = ledger.record_outcome(BEFORE_RULES, run_backtest(SPEC))
    with pytest.raises(SpecError, match=r"^params: SmaCross must satisfy n_fast < n_slow"):
        verify(ledger, identity, run_backtest)


#: A run whose broker cancels orders for lack of margin (5, counted in tests/engine/test_margin_cancels.py).
CANCELLING = RunSpec("SmaCross", "EURUSD", "H1", 5.0, date(2017, 4, 19), date(2018, 2, 8), 100_000.0)


@on_each_store
def test_the_count_of_orders_cancelled_for_margin_is_verified_when_the_result_has_one(ledger: Ledger) -> None:
    outcome = run_backtest(CANCELLING)
    assert outcome.margin_cancelled_orders == 5
    reproduced = verify(ledger, ledger.record_outcome(CANCELLING, outcome)[0], run_backtest)
    assert (reproduced.verdict, reproduced.mismatches) == ("reproduced", [])
    assert reproduced.metrics_checked == len(outcome.metrics) + len(outcome.trade_performance) + 1

    miscounted = dataclasses.replace(outcome, margin_cancelled_orders=4)
    mismatch = verify(ledger, ledger.record_outcome(CANCELLING, miscounted)[0], run_backtest)
    assert mismatch.verdict == "mismatch"
    assert mismatch.mismatches == [{"metric": "margin_cancelled_orders", "recorded": 4, "recomputed": 5}]

    # Recorded before cancellations were counted: nothing to compare, the metrics still are.
    uncounted = dataclasses.replace(outcome, margin_cancelled_orders=None)
    unknown = verify(ledger, ledger.record_outcome(CANCELLING, uncounted)[0], run_backtest)
    assert (unknown.verdict, unknown.mismatches) == ("reproduced", [])
    assert unknown.metrics_checked == len(outcome.metrics) + len(outcome.trade_performance)


def test_a_result_recorded_with_a_text_in_another_spelling_keeps_its_key(ledger: Ledger) -> None:
    """Recorded before keys held a text's canonical form: its key and id stay, and it is still found and verified."""
    spelt = RunSpec(
        "RandomTrader", "GOOG", "D1", 1.0, date(2010, 1, 1), date(2013, 1, 1), 100_000.0, params={"hold_bars": " 3, 12"}
    )
    identity, _ = ledger.record_outcome(spelt, run_backtest(spelt))
    found = ledger.find(spelt)
    assert found is not None and found.id == identity and found.spec == spelt
    assert verify(ledger, identity, run_backtest).verdict == "reproduced"
    # The key a batch gives it now is another one, not yet recorded; both spellings trade alike.
    canonical = dataclasses.replace(spelt, params={"hold_bars": "3,12"})
    assert backtest_id(canonical) != identity and ledger.find(canonical) is None
    recorded = ledger.get(identity).outcome
    assert recorded is not None and run_backtest(canonical).trades == recorded.trades
