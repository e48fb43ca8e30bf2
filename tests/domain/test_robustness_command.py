"""RecordRobustnessTest end to end: a real engine run, recorded, tested, reproduced by seed."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from btledger.domain.errors import Conflict, InvalidInput
from btledger.domain.ledger import Ledger
from btledger.domain.robustness import _recorded_stop, run_robustness_test
from btledger.engine import run_backtest
from btledger.engine.result import BacktestOutcome, RunSpec
from tests.typed import number

SPEC = RunSpec("SmaCross", "GOOG", "D1", 1.0, date(2005, 1, 1), date(2012, 1, 1), 100_000.0)


@pytest.fixture(scope="module")
def recorded_outcome() -> BacktestOutcome:
    return run_backtest(SPEC)


def test_each_kind_is_recorded_on_the_history_and_reproduces_by_seed(
    ledger: Ledger, recorded_outcome: BacktestOutcome
) -> None:
    identity, _ = ledger.record_outcome(SPEC, recorded_outcome)
    options = {
        "montecarlo": {"seed": 7, "paths": 500},
        "luck": {"percent": 10},
        "random": {"seed": 7, "runs": 2, "iterations": 100},
    }
    for kind, opts in options.items():
        first_id, first, _ = run_robustness_test(ledger, identity, kind, opts)
        second_id, second, _ = run_robustness_test(ledger, identity, kind, opts)
        assert first_id != second_id
        assert first.summary == second.summary and first.metrics == second.metrics
        assert first.kind == kind
    history = ledger.history(identity)
    recorded = [h.payload for h in history if h.event_type == "RobustnessTestRecorded"]
    assert [p["kind"] for p in recorded] == ["montecarlo", "montecarlo", "luck", "luck", "random", "random"]
    assert recorded[0]["seed"] == 7 and recorded[0]["parameters"]["paths"] == 500


@pytest.mark.parametrize(
    ("kind", "options", "field"),
    [
        ("montecarlo", {"paths": 0}, "paths"),
        ("montecarlo", {"paths": -5}, "paths"),
        ("luck", {"percent": 50}, "percent"),
        ("luck", {"percent": 0}, "percent"),
        ("random", {"iterations": 0}, "iterations"),
        ("luck", {"paths": 10}, "paths"),  # an option of another kind
        ("bogus", {}, "kind"),
    ],
)
def test_bad_parameters_name_the_field_and_write_nothing(
    ledger: Ledger, recorded_outcome: BacktestOutcome, kind: str, options: dict[str, object], field: str
) -> None:
    identity, head = ledger.record_outcome(SPEC, recorded_outcome)
    with pytest.raises(InvalidInput) as error:
        run_robustness_test(ledger, identity, kind, options)
    assert error.value.field == field
    assert ledger.head() == head


@pytest.mark.parametrize(("kind", "option"), [("montecarlo", "ruin_threshold_pct"), ("luck", "percent")])
def test_a_number_that_is_not_finite_is_refused_as_such(
    ledger: Ledger, recorded_outcome: BacktestOutcome, kind: str, option: str
) -> None:
    identity, head = ledger.record_outcome(SPEC, recorded_outcome)
    with pytest.raises(InvalidInput, match="finite number") as error:  # it said "should be less than 100"
        run_robustness_test(ledger, identity, kind, {option: float("nan")})
    assert error.value.field == option and ledger.head() == head


def test_ruin_at_100_pct_is_being_wiped_out(ledger: Ledger, recorded_outcome: BacktestOutcome) -> None:
    identity, _ = ledger.record_outcome(SPEC, recorded_outcome)
    _, result, _ = run_robustness_test(ledger, identity, "montecarlo", {"seed": 3, "ruin_threshold_pct": 100})
    assert result.parameters["ruin_threshold_pct"] == 100.0
    assert result.summary["risk_of_ruin_pct"] == 0.0  # no path of this result's trades ends at 0


def test_a_deleted_result_cannot_be_tested(ledger: Ledger, recorded_outcome: BacktestOutcome) -> None:
    identity, _ = ledger.record_outcome(SPEC, recorded_outcome)
    ledger.delete(identity)
    with pytest.raises(Conflict):
        run_robustness_test(ledger, identity, "luck", {})


def test_a_result_recorded_before_its_strategys_rules_can_still_be_random_tested(
    ledger: Ledger, recorded_outcome: BacktestOutcome
) -> None:
    """SmaCross has declared n_fast < n_slow and sl_atr > 0 since results were recorded: such a result ran,
    and its random test sizes from its recorded stop (it raised the rule as a params error instead); a stop
    the trader cannot size from (sl_atr = 0) leaves the trader's own."""
    before_rules = dataclasses.replace(SPEC, params={"n_fast": 50, "n_slow": 20, "sl_atr": 3.0})
    identity, _ = ledger.record_outcome(before_rules, recorded_outcome)
    _, result, _ = run_robustness_test(ledger, identity, "random", {"seed": 5, "runs": 2, "iterations": 100})
    assert number(result.summary["random_trades_per_run"]) > 0
    assert _recorded_stop(before_rules) == {"sl_atr": 3.0, "atr_period": 14}
    assert _recorded_stop(dataclasses.replace(SPEC, params={"sl_atr": 0.0})) == {"atr_period": 14}


def test_a_result_of_a_strategy_no_longer_installed_leaves_the_traders_own_stop() -> None:
    assert _recorded_stop(dataclasses.replace(SPEC, strategy="Uninstalled", params={"sl_atr": 3.0})) == {}
