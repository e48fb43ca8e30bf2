"""Every error path: a JSON {status, error, detail, field} with a 4xx naming the field, and nothing appended."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest
from litestar.testing import TestClient

from btledger.domain.ledger import Ledger
from btledger.projections import queries
from tests.api.conftest import BATCH, Seeded, Shared

Client = TestClient[Any]
UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


def batch(**changes: Any) -> dict[str, Any]:
    return {**BATCH, **changes}


CASES: list[tuple[str, str, dict[str, Any], int, str | None]] = [
    # unknown ids and prefixes
    ("GET", f"/backtests/{UNKNOWN_ID}", {}, 404, "id"),
    ("GET", "/backtests/ab", {}, 404, "id"),
    ("GET", "/backtests/zzzzzzzz/trades", {}, 404, "id"),
    ("GET", "/backtests/..%2F..%2Fetc%2Fpasswd/plot", {}, 404, None),  # no such route
    ("GET", f"/backtests/{UNKNOWN_ID}/history", {}, 404, "id"),
    ("GET", f"/backtests/{UNKNOWN_ID}/tests", {}, 404, "id"),
    ("PUT", f"/backtests/{UNKNOWN_ID}/favorite", {}, 404, "id"),
    ("DELETE", "/backtests/0000", {}, 404, "id"),
    ("POST", f"/backtests/{UNKNOWN_ID}/restore", {}, 404, "id"),
    ("POST", f"/backtests/{UNKNOWN_ID}/tests/luck", {}, 404, "id"),
    ("GET", "/jobs/not-a-job", {}, 404, "id"),
    ("GET", "/jobs/not-a-job/events", {}, 404, "id"),
    ("DELETE", "/strategies/NoSuchStrategy", {}, 404, "name"),
    # a batch: unknown names, bad dates, risk out of range, wrong types, malformed JSON
    ("POST", "/backtests", {"json": batch(strategies=["NoSuchStrategy"])}, 400, "strategies"),
    ("POST", "/backtests", {"json": batch(strategies=["../../etc/passwd"])}, 400, "strategies"),
    ("POST", "/backtests", {"json": batch(tickers=["NOPE"])}, 400, "tickers"),
    ("POST", "/backtests", {"json": batch(timeframes=["H2"])}, 400, "timeframes"),
    ("POST", "/backtests", {"json": batch(date_from="2017-08-01", date_to="2017-05-01")}, 400, "date_from"),
    ("POST", "/backtests", {"json": batch(date_from="2017-13-01")}, 400, "date_from"),
    ("POST", "/backtests", {"json": batch(date_to="yesterday")}, 400, "date_to"),
    ("POST", "/backtests", {"json": batch(risks=[0])}, 400, "risks"),
    ("POST", "/backtests", {"json": batch(risks=[150])}, 400, "risks"),
    ("POST", "/backtests", {"json": batch(risks=["NaN"])}, 400, "risks"),
    ("POST", "/backtests", {"json": batch(risks="1")}, 400, "risks"),
    ("POST", "/backtests", {"json": batch(strategies="SmaCross")}, 400, "strategies"),
    ("POST", "/backtests", {"json": batch(strategies=[])}, 400, "strategies"),
    ("POST", "/backtests", {"json": batch(initial_cash=-5)}, 400, "initial_cash"),
    ("POST", "/backtests", {"json": batch(plot="sometimes")}, 400, "plot"),
    ("POST", "/backtests", {"json": batch(rerun="perhaps")}, 400, "rerun"),
    # values pydantic's lax mode would convert: a bool or text for a number, text for a bool, not a day
    ("POST", "/backtests", {"json": batch(risks=[True])}, 400, "risks"),
    ("POST", "/backtests", {"json": batch(risks=["1.3"])}, 400, "risks"),
    ("POST", "/backtests", {"json": batch(initial_cash="50000")}, 400, "initial_cash"),
    ("POST", "/backtests", {"json": batch(rerun="yes")}, 400, "rerun"),
    ("POST", "/backtests", {"json": batch(date_from=1104537600)}, 400, "date_from"),
    ("POST", "/backtests", {"json": batch(date_to="2018-02-01T00:00")}, 400, "date_to"),
    (
        "POST",
        "/backtests",
        {"json": batch(params={"fast": [1, 2]})},
        400,
        "params.fast.str",
    ),  # pydantic names the union member
    ("POST", "/backtests", {"json": batch(surprise=1)}, 400, "surprise"),
    ("POST", "/backtests", {"json": {k: v for k, v in BATCH.items() if k != "tickers"}}, 400, "tickers"),
    ("POST", "/backtests", {"json": [BATCH]}, 400, "body"),
    ("POST", "/backtests", {}, 400, "body"),  # no body at all
    (
        "POST",
        "/backtests",
        {"content": b'{"strategies": [', "headers": {"content-type": "application/json"}},
        400,
        "body",
    ),
    ("POST", "/backtests", {"content": b"", "headers": {"content-type": "application/json"}}, 400, "body"),
    (
        "POST",
        "/backtests",
        {"content": b'{"tickers": ["\xff"]}', "headers": {"content-type": "application/json"}},
        400,
        "body",
    ),  # not UTF-8
    # search, rankings and health parameters
    ("GET", "/backtests", {"params": {"min_return": "abc"}}, 400, "min_return"),
    ("GET", "/backtests", {"params": {"min_return": "NaN"}}, 400, "min_return"),
    ("GET", "/backtests", {"params": {"max_drawdown": "inf"}}, 400, "max_drawdown"),
    ("GET", "/backtests", {"params": {"limit": -1}}, 400, "limit"),
    ("GET", "/backtests", {"params": {"limit": 5000}}, 400, "limit"),
    ("GET", "/backtests", {"params": {"offset": "x"}}, 400, "offset"),
    ("GET", "/backtests", {"params": {"sort": "return_pct; DROP TABLE backtests"}}, 400, "sort"),
    ("GET", "/backtests", {"params": {"order": "up"}}, 400, "order"),
    ("GET", "/backtests", {"params": {"favorite_only": "maybe"}}, 400, "favorite_only"),
    ("GET", "/backtests", {"params": {"min_retrun": 5}}, 400, "min_retrun"),
    ("GET", "/backtests", {"params": {"services": 1}}, 400, "services"),  # the handlers' dependency, not a filter
    ("GET", "/backtests", {"params": [("limit", 1), ("limit", 2)]}, 400, "limit"),  # which one was meant?
    # a whole number is written in digits: Litestar would read 5.0 or 5e0 as 5
    ("GET", "/backtests", {"params": {"limit": "5.0"}}, 400, "limit"),
    ("GET", "/backtests", {"params": {"limit": "5e0"}}, 400, "limit"),
    ("GET", "/backtests", {"params": {"limit": " 5"}}, 400, "limit"),
    ("GET", "/backtests", {"params": {"offset": "1.0"}}, 400, "offset"),
    ("GET", "/backtests", {"params": {"min_trades": "5.5"}}, 400, "min_trades"),  # a count, as in the CLI
    ("GET", "/backtests", {"params": {"min_trades": "-1"}}, 400, "min_trades"),
    ("GET", "/health", {"params": {"wait_for": "0.0"}}, 400, "wait_for"),
    # every refusal of a header names it as sent, not as the handler's argument (`last_event_id`)
    ("GET", "/jobs/not-a-job/events", {"headers": {"Last-Event-ID": "1.0"}}, 400, "Last-Event-ID"),
    ("GET", "/jobs/not-a-job/events", {"headers": {"Last-Event-ID": "-1"}}, 400, "Last-Event-ID"),
    ("GET", "/jobs/not-a-job/events", {"headers": {"Last-Event-ID": "-99999999999999999999"}}, 400, "Last-Event-ID"),
    ("GET", "/rankings/robust", {"params": {"as_of": "last tuesday"}}, 400, "as_of"),
    ("GET", "/rankings/robust", {"params": {"as_of": "2020-01-01T00:00:00"}}, 400, "as_of"),
    ("GET", "/health", {"params": {"wait_for": 10**9}}, 400, "wait_for"),
    ("GET", "/health", {"params": {"wait_for": -1}}, 400, "wait_for"),
    # robustness tests
    ("POST", "/backtests/{id}/tests/bogus", {}, 400, "kind"),
    ("POST", "/backtests/{id}/tests/montecarlo", {"json": {"paths": 0}}, 400, "paths"),
    ("POST", "/backtests/{id}/tests/montecarlo", {"json": {"paths": True}}, 400, "paths"),
    ("POST", "/backtests/{id}/tests/montecarlo", {"json": {"paths": "10"}}, 400, "paths"),
    ("POST", "/backtests/{id}/tests/luck", {"json": {"percent": "5"}}, 400, "percent"),
    ("POST", "/backtests/{id}/tests/luck", {"json": {"percent": 50}}, 400, "percent"),
    ("POST", "/backtests/{id}/tests/luck", {"json": {"paths": 10}}, 400, "paths"),
    ("POST", "/backtests/{id}/tests/luck", {"json": [1, 2]}, 400, "body"),
    # SQL: read-only, one statement, valid
    ("POST", "/sql", {"json": {"sql": "DELETE FROM backtests"}}, 400, "sql"),
    ("POST", "/sql", {"json": {"sql": "SELECT 1; SELECT 2"}}, 400, "sql"),
    ("POST", "/sql", {"json": {"sql": "ATTACH 'x.db' AS x"}}, 400, "sql"),
    ("POST", "/sql", {"json": {"sql": "SELEC 1"}}, 400, "sql"),
    ("POST", "/sql", {"json": {"sql": "SELECT * FROM no_such_table"}}, 400, "sql"),
    ("POST", "/sql", {"json": {"sql": ""}}, 400, "sql"),
    ("POST", "/sql", {"json": {"sql": "SELECT 1", "max_rows": 0}}, 400, "max_rows"),
    ("POST", "/sql", {"json": {"sql": "SELECT 1", "max_rows": 100_001}}, 400, "max_rows"),
    # routing
    ("GET", "/nowhere", {}, 404, None),
    ("PATCH", "/backtests", {}, 405, None),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "field"), CASES)
def test_bad_input_is_a_4xx_naming_the_field_and_appends_nothing(
    shared: Shared, method: str, path: str, kwargs: dict[str, Any], status: int, field: str | None
) -> None:
    head = shared.ledger.head()
    response = shared.client.request(method, path.replace("{id}", shared.seeded["sma_eur_h1"].id), **kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "error", "detail", "field"}
    assert body["status"] == status and body["error"] and body["detail"]
    assert body["field"] == field, body
    assert shared.ledger.head() == head


@pytest.mark.parametrize(
    ("name", "value", "listed"), [("sort", "bogus", "'bogus' is not one of: "), ("order", "up", "'up' is not one of: ")]
)
def test_a_value_outside_a_fixed_set_is_refused_listing_the_set(
    shared: Shared, name: str, value: str, listed: str
) -> None:
    # A CLI search beside a server relays this detail: it must say what to give, as the local search does.
    response = shared.client.get("/backtests", params={name: value})
    assert response.status_code == 400 and response.json()["field"] == name
    detail = response.json()["detail"]
    allowed = sorted(queries.SORTABLE) if name == "sort" else ["asc", "desc"]
    assert detail == listed + ", ".join(allowed)


@pytest.mark.parametrize(
    ("prepare", "method", "path"),
    [
        ([], "POST", "/backtests/{id}/restore"),  # not deleted
        (["DELETE"], "DELETE", "/backtests/{id}"),  # already deleted
        (["DELETE"], "PUT", "/backtests/{id}/favorite"),  # deleted: restore first
        (["DELETE"], "POST", "/backtests/{id}/tests/luck"),  # no live result to test
    ],
)
def test_a_change_that_does_not_apply_is_a_409(
    api: Client, seeded: dict[str, Seeded], ledger: Ledger, prepare: list[str], method: str, path: str
) -> None:
    target = seeded["sma_goog_d1"].id
    for step in prepare:
        assert api.request(step, f"/backtests/{target}").status_code == 200
    head = ledger.head()
    response = api.request(method, path.replace("{id}", target))
    assert response.status_code == 409, response.text
    assert response.json()["status"] == 409 and target in response.json()["detail"]
    assert ledger.head() == head


def test_reads_of_a_deleted_result_say_so(api: Client, seeded: dict[str, Seeded]) -> None:
    target = seeded["sma_goog_d1"].id
    api.delete(f"/backtests/{target}")
    for path in ("", "/trades", "/tests"):
        response = api.get(f"/backtests/{target}{path}")
        assert response.status_code == 404 and "is deleted" in response.json()["detail"]
    assert api.get(f"/backtests/{target}/history").status_code == 200


def test_a_damaged_read_model_file_is_a_500_that_says_what_to_do(
    api: TestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What DuckDB raises on reading a block that fails its checksum (it cannot be made to under a
    # running server: the blocks it already read stay in its memory).
    def damaged(*_: Any, **__: Any) -> Any:
        raise duckdb.IOException("Corrupt database file: computed checksum 1 does not match stored checksum 2")

    monkeypatch.setattr(queries, "filtered_search", damaged)
    response = api.get("/backtests")
    assert response.status_code == 500
    assert "read model file is damaged" in response.json()["detail"] and "btledger rebuild" in response.json()["detail"]

    monkeypatch.setattr(queries, "filtered_search", lambda *_, **__: 1 / 0)
    assert "internal error (ZeroDivisionError)" in api.get("/backtests").json()["detail"]
