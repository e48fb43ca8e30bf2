"""Orders the broker cancels for lack of margin: counted exactly in each run, other warnings untouched."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from importlib.metadata import EntryPoint

import pytest
from backtesting import Backtest, Strategy

from btledger.engine import registry, run_backtest
from btledger.engine.data import load_frame
from btledger.engine.margin_cancels import counting_margin_cancels
from btledger.engine.result import RunSpec
from tests.engine.test_runner import bare_stats

GOOG_RANGE = (date(2004, 8, 19), date(2013, 3, 2))
#: Risk-sized orders larger than the margin left covers (backtesting.py's "canceled the order" path).
DONCHIAN = RunSpec("DonchianBreakout", "GOOG", "D1", 20.0, *GOOG_RANGE, 100_000.0)
SMACROSS = RunSpec("SmaCross", "EURUSD", "H1", 5.0, date(2017, 4, 19), date(2018, 2, 8), 100_000.0)
#: `Plain` buys with backtesting.py's default relative size: at 30 of cash (150 of buying power at
#: leverage 5) not one GOOG share, mostly ("canceled the relative-sized order" path).
PLAIN = RunSpec("Plain", "GOOG", "D1", 1.0, *GOOG_RANGE, 30.0)

RELATIVE = "Broker canceled the relative-sized order due to insufficient margin"
ABSOLUTE = "Broker canceled the order due to insufficient margin"


@pytest.fixture(autouse=True)
def plain_strategy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`Plain` (tests/engine/user_strategies.py) installed as an entry point, beside the shipped ones."""
    point = EntryPoint("Plain", "tests.engine.user_strategies:Plain", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group == registry.ENTRY_POINT_GROUP else [])
    registry.registry.cache_clear()
    yield
    registry.registry.cache_clear()


def cancels_by_backtesting(spec: RunSpec) -> Counter[str]:
    """The run straight through backtesting.py, its warnings caught here: each cancellation path's count."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bare_stats(spec)
    return Counter(kind for w in caught for kind in (RELATIVE, ABSOLUTE) if kind in str(w.message))


@pytest.mark.parametrize(
    ("spec", "path"), [(DONCHIAN, ABSOLUTE), (SMACROSS, ABSOLUTE), (PLAIN, RELATIVE)], ids=lambda v: str(v)[:20]
)
def test_the_count_is_every_order_backtesting_py_cancelled_for_margin(spec: RunSpec, path: str) -> None:
    expected = cancels_by_backtesting(spec)
    assert expected[path] > 0  # the combination exercises this path
    outcome = run_backtest(spec)
    assert outcome.margin_cancelled_orders == expected[RELATIVE] + expected[ABSOLUTE]


def test_a_run_without_cancellations_counts_zero() -> None:
    spec = RunSpec("SmaCross", "EURUSD", "H1", 1.0, date(2017, 5, 1), date(2018, 2, 1), 100_000.0)
    assert sum(cancels_by_backtesting(spec).values()) == 0
    assert run_backtest(spec).margin_cancelled_orders == 0


def test_runs_on_threads_count_their_own_and_leave_the_warning_filters_as_they_were() -> None:
    expected = {spec: sum(cancels_by_backtesting(spec).values()) for spec in (DONCHIAN, PLAIN)}
    filters = list(warnings.filters)
    with ThreadPoolExecutor(2) as pool:
        counted = list(pool.map(lambda spec: (spec, run_backtest(spec).margin_cancelled_orders), [DONCHIAN, PLAIN] * 3))
    assert counted == [(spec, expected[spec]) for spec in [DONCHIAN, PLAIN] * 3]
    assert warnings.filters == filters


class Idle(Strategy):
    def init(self) -> None:
        pass

    def next(self) -> None:
        pass


def test_other_warnings_of_backtesting_py_pass_through_unchanged_and_uncounted() -> None:
    goog = load_frame("GOOG", "D1", *GOOG_RANGE).ohlcv

    def warned() -> list[tuple[str, str, int]]:
        with pytest.warns(UserWarning) as caught:
            Backtest(goog, Idle, cash=30).run()  # "Some prices are larger than initial cash value" and more
        return [(str(w.message), w.filename, w.lineno) for w in caught]

    without = warned()
    with counting_margin_cancels() as cancels:
        within = warned()
    assert cancels.count == 0
    assert within == without
    # Attributed where backtesting.py points (stacklevel=2: the line making the Backtest), as without this
    # module, so the same filters and registry apply.
    [(_, filename, _)] = [w for w in without if "larger than initial cash" in w[0]]
    assert filename == __file__
