"""The msgspec transcoder writes and reads the library's JSON format: stores stay readable both ways."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import pytest
from eventsourcing.persistence import JSONTranscoder, Transcoder, TranscodingNotRegisteredError

from btledger.domain.backtest import backtest_id
from btledger.domain.ledger import Ledger, store_env
from btledger.domain.transcoder import MsgspecJSONTranscoder
from btledger.engine.result import BacktestOutcome, RunSpec
from tests.domain.factories import outcome, spec


def _registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    Ledger.register_transcodings(Ledger.__new__(Ledger), transcoder)
    return transcoder


@pytest.fixture
def fast() -> JSONTranscoder:
    return _registered(MsgspecJSONTranscoder())


@pytest.fixture
def stock() -> JSONTranscoder:
    return _registered(JSONTranscoder())


def _state() -> dict[str, Any]:
    """An event or snapshot state with every kind of value our events hold, nested too."""
    result = outcome(trades=200)
    return {
        "timestamp": datetime(2026, 12, 1, 21, 0, 0, 123456, tzinfo=UTC),
        "date_from": date(2017, 5, 1),
        "id": uuid4(),
        "cash": Decimal("100000.50"),
        "spec": spec(),
        "outcome": result,
        "trades": result.trades,
        "nested": {"when": [date(2020, 1, 2), {"at": datetime(2020, 1, 2, tzinfo=UTC)}], "tuple": (1, "a", None)},
        "text": "é ∆ 😀",
        "flags": [True, False, None],
        "big": 2**70,
        "tiny": 1e-300,
    }


def test_each_reads_what_the_other_wrote(fast: JSONTranscoder, stock: JSONTranscoder) -> None:
    state = _state()
    expected = stock.decode(stock.encode(state))
    assert isinstance(expected["spec"], RunSpec) and isinstance(expected["outcome"], BacktestOutcome)
    assert stock.decode(fast.encode(state)) == expected
    assert fast.decode(stock.encode(state)) == expected
    assert fast.decode(fast.encode(state)) == expected
    assert expected["nested"]["when"][1]["at"] == datetime(2020, 1, 2, tzinfo=UTC)


def test_it_writes_the_libraries_tags_and_compact_utf8(fast: JSONTranscoder) -> None:
    encoded = fast.encode({"on": date(2020, 1, 2), "id": UUID(int=1), "text": "é"})
    assert encoded == (
        b'{"on":{"_type_":"date_iso","_data_":"2020-01-02"},'
        b'"id":{"_type_":"uuid_hex","_data_":"00000000000000000000000000000001"},"text":"\xc3\xa9"}'
    )


@pytest.mark.parametrize("value", [np.int64(3), {1, 2}, object()])
def test_values_the_library_rejects_are_rejected_alike(
    fast: JSONTranscoder, stock: JSONTranscoder, value: object
) -> None:
    for transcoder in (stock, fast):
        with pytest.raises(TranscodingNotRegisteredError):
            transcoder.encode({"value": value})


def test_values_only_the_stdlib_handles_take_its_path(fast: JSONTranscoder, stock: JSONTranscoder) -> None:
    odd = {"numpy_float": np.float64(1.5), 3: "int key"}  # a float subclass; a non-string key
    assert fast.decode(fast.encode(odd)) == stock.decode(stock.encode(odd)) == {"numpy_float": 1.5, "3": "int key"}
    written_by_stdlib = stock.encode({"x": math.nan})  # `NaN`, which is not JSON
    assert math.isnan(fast.decode(written_by_stdlib)["x"])


def test_a_non_finite_float_is_written_as_null(fast: JSONTranscoder) -> None:
    assert fast.decode(fast.encode({"x": [math.inf, 1.0]})) == {"x": [None, 1.0]}


def test_a_store_written_by_the_stock_transcoder_is_read_and_extended(btledger_home: Path) -> None:
    class StockLedger(Ledger):
        def construct_transcoder(self) -> Transcoder:
            return _registered(JSONTranscoder())

    old = StockLedger(env=store_env(btledger_home))
    identity, _ = old.record_outcome(spec(), outcome(return_pct=4.0, trades=50))
    old.toggle_favorite(identity)
    before = old.get(identity)

    ledger = Ledger(env=store_env(btledger_home))
    assert isinstance(ledger.mapper.transcoder, MsgspecJSONTranscoder)
    now = ledger.get(identity)
    assert (now.spec, now.outcome, now.favorite) == (before.spec, before.outcome, True)
    ledger.record_outcome(spec(), outcome(return_pct=5.0), new=False)
    assert old.get(identity).outcome == ledger.get(backtest_id(spec())).outcome  # and the old one reads the new
