"""Every read endpoint over a seeded ledger: search, one result, trades, history, plot, rankings, lists,
strategies, health, SQL and the OpenAPI schema."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

from btledger.domain.ledger import Ledger
from btledger.engine.registry import registry
from btledger.engine.result import METRIC_COLUMNS, TRADE_COLUMNS
from btledger.projections import schema as s
from tests.api.conftest import ROWS, Seeded, Shared
from tests.domain.factories import outcome

Client = TestClient[Any]


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


def test_search_defaults_to_every_live_result_by_return_dd_descending(shared: Shared) -> None:
    api, seeded = shared.client, shared.seeded
    page = api.get("/backtests").json()
    assert page["total"] == len(ROWS) and page["limit"] == 100 and page["offset"] == 0
    expected = sorted(seeded.values(), key=lambda r: -r.metrics["return_dd"])
    assert ids(page["items"]) == [r.id for r in expected]
    assert set(page["items"][0]) == set(s.BACKTESTS.column_names)


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"min_return": 20}, {"sma_eur_h1", "rsi_eur_h1", "donchian_gbp_w1"}),
        ({"max_drawdown": 9}, {"rsi_eur_h1"}),
        ({"min_return_dd": 1}, {"sma_eur_h1", "sma_eur_h4", "rsi_eur_h1", "donchian_gbp_w1"}),
        ({"min_stability_weighted_rar": 1.5}, {"sma_eur_h1", "rsi_eur_h1", "donchian_gbp_w1"}),
        ({"min_trades": 30}, {"sma_eur_h1", "rsi_eur_h1", "rsi_goog_h1"}),
        ({"min_sharpe": 1.0}, {"sma_eur_h1", "rsi_eur_h1", "donchian_gbp_w1"}),
        ({"min_win_rate": 55}, {"sma_eur_h1", "rsi_eur_h1", "donchian_gbp_w1"}),
        ({"min_stability_ratio": 1.0}, set(ROWS)),
        ({"strategy": "sma"}, {"sma_eur_h1", "sma_eur_h4", "sma_goog_d1"}),
        ({"ticker": "goo", "strategy": "RSI"}, {"rsi_goog_h1"}),
        ({"ticker": "%"}, set()),  # wildcards are matched literally
        ({"min_return": 0, "max_drawdown": 10, "ticker": "EUR"}, {"sma_eur_h1", "sma_eur_h4", "rsi_eur_h1"}),
    ],
)
def test_search_filters(shared: Shared, params: dict[str, Any], names: set[str]) -> None:
    api, seeded = shared.client, shared.seeded
    page = api.get("/backtests", params=params).json()
    assert set(ids(page["items"])) == {seeded[n].id for n in names}
    assert page["total"] == len(names)


def test_search_sorts_orders_and_pages_with_a_total(shared: Shared) -> None:
    api, seeded = shared.client, shared.seeded
    by_return = [r.id for r in sorted(seeded.values(), key=lambda r: r.metrics["return_pct"])]
    page = api.get("/backtests", params={"sort": "return_pct", "order": "asc", "limit": 2, "offset": 1}).json()
    assert page["total"] == len(ROWS) and ids(page["items"]) == by_return[1:3]
    assert page["limit"] == 2 and page["offset"] == 1
    assert api.get("/backtests", params={"limit": 0}).json() == {"total": 6, "limit": 0, "offset": 0, "items": []}
    assert api.get("/backtests", params={"offset": 100}).json()["items"] == []
    tickers = [r["ticker"] for r in api.get("/backtests", params={"sort": "ticker"}).json()["items"]]
    assert tickers == sorted(tickers, reverse=True)


def test_favorite_only_search_and_favorites(api: Client, seeded: dict[str, Seeded]) -> None:
    assert api.get("/favorites").json() == []
    for name in ("sma_goog_d1", "rsi_eur_h1"):
        assert api.put(f"/backtests/{seeded[name].id}/favorite").json()["favorite"] is True
    assert ids(api.get("/favorites").json()) == [seeded["rsi_eur_h1"].id, seeded["sma_goog_d1"].id]
    page = api.get("/backtests", params={"favorite_only": True}).json()
    assert set(ids(page["items"])) == {seeded["rsi_eur_h1"].id, seeded["sma_goog_d1"].id}


def test_one_result_by_id_or_prefix(shared: Shared) -> None:
    api, seeded = shared.client, shared.seeded
    row = seeded["sma_eur_h1"]
    detail = api.get(f"/backtests/{row.id}").json()
    assert detail["backtest"]["id"] == row.id and detail["backtest"]["strategy"] == "SmaCross"
    assert {m: detail["backtest"][m] for m in METRIC_COLUMNS} == pytest.approx(row.metrics)
    assert detail["trade_performance"]["backtest_id"] == row.id
    assert detail["links"]["trades"] == f"/backtests/{row.id}/trades"
    assert api.get(f"/backtests/{row.id[:8]}").json() == detail
    assert api.get(f"/backtests/{row.id[:8].upper()}").json() == detail


def test_trades_and_history(shared: Shared) -> None:
    api, seeded = shared.client, shared.seeded
    row = seeded["sma_eur_h4"]
    trades = api.get(f"/backtests/{row.id}/trades").json()
    assert [t["trade_no"] for t in trades] == [1, 2, 3]
    assert set(trades[0]) == {"backtest_id", "trade_no", *TRADE_COLUMNS}
    history = api.get(f"/backtests/{row.id[:6]}/history").json()
    assert [h["event_type"] for h in history] == ["Registered", "ResultRecorded"]
    assert set(history[0]) == {"position", "event_type", "recorded_at", "payload"}
    assert history[0]["payload"]["strategy"] == "SmaCross"
    assert history[0]["position"] < history[1]["position"]


def test_plot_is_the_file_its_result_recorded(
    api: TestClient[Any], seeded: dict[str, Seeded], ledger: Ledger, btledger_home: Path
) -> None:
    kept, temporary = seeded["sma_eur_h1"].id, seeded["sma_eur_h4"].id
    # Hand-made results: the bars their key names now are not the ones their fingerprint says, so no plot
    # of them can be rendered (tests/api/test_batches.py renders real ones).
    response = api.get(f"/backtests/{kept}/plot")
    assert response.status_code == 409 and "its data changed since it ran" in response.json()["detail"]
    (btledger_home / "plots" / "temp").mkdir(parents=True, exist_ok=True)
    (btledger_home / "plots" / f"{kept}.html").write_text("<html>kept</html>")
    (btledger_home / "plots" / "temp" / f"{temporary}.html").write_text("<html>temp</html>")
    assert api.get(f"/backtests/{kept}/plot").status_code == 409  # a file by its id, but its result made none

    # Results that made them; the second was recorded in a data directory since moved here.
    recorded = {kept: btledger_home / "plots" / f"{kept}.html", temporary: f"/moved/plots/temp/{temporary}.html"}
    for identity, path in recorded.items():
        ledger.record_outcome(ledger.get(UUID(identity)).spec, replace(outcome(), plot_path=str(path)))
    response = api.get(f"/backtests/{kept}/plot")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.text == "<html>kept</html>"
    assert api.get(f"/backtests/{temporary[:8]}/plot").text == "<html>temp</html>"


def test_robust_ranking_now_for_one_strategy_and_as_of(api: Client, seeded: dict[str, Seeded]) -> None:
    ranking = api.get("/rankings/robust").json()
    # EURUSD pairs average return/drawdown > 1 over H1/H4; GOOG pairs do not; W1 is not selected.
    assert ids(ranking) == [seeded["rsi_eur_h1"].id, seeded["sma_eur_h1"].id]
    assert ranking[1]["pair_avg_return_dd"] == pytest.approx(1.5)
    assert ids(api.get("/rankings/robust", params={"strategy": "SmaCross"}).json()) == [seeded["sma_eur_h1"].id]
    assert api.get("/rankings/robust", params={"strategy": "Unknown"}).json() == []

    at = api.get(f"/backtests/{seeded['rsi_eur_h1'].id}/history").json()[-1]["recorded_at"]
    assert api.delete(f"/backtests/{seeded['rsi_eur_h1'].id}").status_code == 200
    assert ids(api.get("/rankings/robust").json()) == [seeded["sma_eur_h1"].id]
    then = api.get("/rankings/robust", params={"as_of": at}).json()
    assert ids(then) == [seeded["rsi_eur_h1"].id, seeded["sma_eur_h1"].id]
    assert api.get("/rankings/robust", params={"as_of": "2000-01-01T00:00:00Z"}).json() == []


def test_runs_of_a_strategy_on_a_ticker(shared: Shared) -> None:
    api, seeded = shared.client, shared.seeded
    rows = api.get("/strategies/SmaCross/tickers/EURUSD/backtests").json()
    assert ids(rows) == [seeded["sma_eur_h1"].id, seeded["sma_eur_h4"].id]  # best stability-weighted RAR first
    assert api.get("/strategies/SmaCross/tickers/NOPE/backtests").json() == []


def test_strategies_lists_the_registry_with_bounds_and_fingerprints(shared: Shared) -> None:
    api = shared.client
    listed = api.get("/strategies").json()
    assert [entry["name"] for entry in listed] == sorted(registry())
    sma = next(entry for entry in listed if entry["name"] == "SmaCross")
    assert sma["fingerprint"] == registry()["SmaCross"].fingerprint and len(sma["fingerprint"]) == 64
    assert sma["params"] == dict(registry()["SmaCross"].params)
    assert sma["bounds"] == {
        "atr_period": "atr_period >= 1",
        "n_fast": "n_fast >= 1",
        "n_slow": "n_slow >= 1",
        "sl_atr": "sl_atr > 0",
        "tp_ratio": "tp_ratio > 0",
    }
    assert sma["rules"] == ["n_fast < n_slow"]
    rsi = next(entry for entry in listed if entry["name"] == "RsiMeanReversion")
    assert rsi["bounds"]["oversold"] == "0 <= oversold <= 100"
    assert rsi["rules"] == ["oversold < overbought", "oversold <= exit_level <= overbought"]


def test_health_reports_positions_and_waits_for_one(shared: Shared) -> None:
    api = shared.client
    health = api.get("/health").json()
    head = 2 * len(ROWS)
    assert health == {"status": "ok", "ledger_position": head, "projection_position": head, "lag": 0, "jobs_running": 0}
    assert api.get("/health", params={"wait_for": head}).json()["projection_position"] == head


def test_sql_runs_read_only_statements(shared: Shared) -> None:
    api = shared.client
    result = api.post("/sql", json={"sql": "SELECT strategy, count(*) AS n FROM backtests GROUP BY 1 ORDER BY 1"})
    assert result.status_code == 200
    assert result.json() == {
        "columns": ["strategy", "n"],
        "rows": [["DonchianBreakout", 1], ["RsiMeanReversion", 2], ["SmaCross", 3]],
        "truncated": False,
    }
    limited = api.post("/sql", json={"sql": "SELECT * FROM trades", "max_rows": 5}).json()
    assert len(limited["rows"]) == 5 and limited["truncated"] is True


def test_openapi_schema_and_docs_page(shared: Shared) -> None:
    api = shared.client
    schema = api.get("/schema/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/backtests",
        "/backtests/{backtest_id}",
        "/backtests/{backtest_id}/trades",
        "/backtests/{backtest_id}/history",
        "/backtests/{backtest_id}/plot",
        "/backtests/{backtest_id}/favorite",
        "/backtests/{backtest_id}/restore",
        "/backtests/{backtest_id}/tests",
        "/backtests/{backtest_id}/tests/{kind}",
        "/jobs/{job_id}",
        "/jobs/{job_id}/events",
        "/rankings/robust",
        "/strategies",
        "/strategies/{name}",
        "/strategies/{name}/tickers/{ticker}/backtests",
        "/favorites",
        "/health",
        "/sql",
    ):
        assert path in paths, path
    body = paths["/backtests"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/RunBatch"}
    assert "text/html" in api.get("/schema").headers["content-type"]


def test_every_read_answers_head_with_its_status_and_headers_and_no_body(shared: Shared) -> None:
    api = shared.client
    values = {
        "backtest_id": shared.seeded["sma_eur_h1"].id,
        "job_id": "no-such-job",
        "name": "SmaCross",
        "ticker": "EURUSD",
    }
    paths = [path for path, item in api.get("/schema/openapi.json").json()["paths"].items() if "get" in item]
    assert len(paths) == 13
    for template in paths:
        path = template.format(**values)
        for params in ({}, {"bogus": "1"}):
            get, head = api.get(path, params=params), api.head(path, params=params)
            assert (head.status_code, head.headers) == (get.status_code, get.headers), path
            assert head.content == b"" and get.content, path


def test_each_operation_documents_the_errors_it_can_answer(shared: Shared) -> None:
    """400 everywhere (an unknown query parameter), 401 on changes, 404 where an id or name is looked up, 409
    where the state can refuse a change (or a plot: its inputs changed), 503 where the answer waits for the read
    model."""
    change = {400, 401, 404, 409, 503}
    expected = {
        ("get", "/backtests"): {400},
        ("post", "/backtests"): {400, 401},
        ("get", "/backtests/{backtest_id}"): {400, 404},
        ("delete", "/backtests/{backtest_id}"): change,
        ("get", "/backtests/{backtest_id}/trades"): {400, 404},
        ("get", "/backtests/{backtest_id}/history"): {400, 404},
        ("get", "/backtests/{backtest_id}/plot"): {400, 404, 409},
        ("put", "/backtests/{backtest_id}/favorite"): change,
        ("post", "/backtests/{backtest_id}/restore"): change,
        ("post", "/backtests/{backtest_id}/tests/{kind}"): change,
        ("get", "/backtests/{backtest_id}/tests"): {400, 404},
        ("post", "/plans"): {400, 401},
        ("get", "/jobs/{job_id}"): {400, 404},
        ("delete", "/jobs/{job_id}"): {400, 401, 404, 409},
        ("get", "/jobs/{job_id}/events"): {400, 404},
        ("get", "/rankings/robust"): {400},
        ("get", "/strategies/{name}/tickers/{ticker}/backtests"): {400},
        ("get", "/favorites"): {400},
        ("get", "/strategies"): {400},
        ("delete", "/strategies/{name}"): {400, 401, 404, 503},
        ("get", "/health"): {400, 503},
        ("post", "/sql"): {400, 401},
    }
    paths = shared.client.get("/schema/openapi.json").json()["paths"]
    documented = {
        (method, path): {int(status) for status in operation["responses"] if int(status) >= 400}
        for path, item in paths.items()
        if not path.startswith("/schema")
        for method, operation in item.items()
    }
    heads = {path: errors for (method, path), errors in documented.items() if method == "head"}
    assert {key: errors for key, errors in documented.items() if key[0] != "head"} == expected
    assert heads == {path: errors for (method, path), errors in expected.items() if method == "get"}


def test_cached_reads_follow_events_appended_by_another_process(
    api: Client, seeded: dict[str, Seeded], ledger: Ledger
) -> None:
    target = seeded["rsi_eur_h1"].id
    first = api.get("/backtests").json()
    assert api.get("/backtests").json() == first  # served from the cache
    _, position = ledger.toggle_favorite(UUID(target))  # as the CLI does, straight to the ledger
    assert api.get("/health", params={"wait_for": position}).status_code == 200
    rows = {row["id"]: row for row in api.get("/backtests").json()["items"]}
    assert rows[target]["favorite"] is True
