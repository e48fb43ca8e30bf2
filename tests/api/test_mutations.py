"""Favourite, delete, restore, delete-strategy and robustness tests over HTTP: each answers once the read
model includes its events, so the next read shows it (read-your-writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from btledger.domain.backtest import STRATEGY_DELETED
from btledger.domain.ledger import Ledger
from tests.api.conftest import BATCH, Seeded
from tests.api.test_batches import run

Client = TestClient[Any]


def live_ids(api: Client) -> set[str]:
    return {row["id"] for row in api.get("/backtests").json()["items"]}


def test_favorite_toggles_and_returns_the_new_value(api: Client, seeded: dict[str, Seeded], ledger: Ledger) -> None:
    target = seeded["sma_eur_h1"].id
    first = api.put(f"/backtests/{target[:8]}/favorite")
    assert first.status_code == 200
    assert first.json() == {"id": target, "favorite": True, "position": ledger.head()}
    assert api.get(f"/backtests/{target}").json()["backtest"]["favorite"] is True
    assert api.put(f"/backtests/{target}/favorite").json()["favorite"] is False
    assert api.get("/favorites").json() == []


def test_delete_then_restore(api: Client, seeded: dict[str, Seeded], ledger: Ledger, btledger_home: Path) -> None:
    target = seeded["rsi_goog_h1"].id
    plot = btledger_home / "plots" / f"{target}.html"
    plot.parent.mkdir(parents=True)
    plot.write_text("<html></html>")
    deleted = api.delete(f"/backtests/{target}", params={"reason": "overfitted"})
    assert deleted.status_code == 200
    assert deleted.json() == {"id": target, "deleted": True, "position": ledger.head()}
    assert plot.exists()  # kept for a restore; not served meanwhile (tests/api/test_batches.py)
    assert target not in live_ids(api)
    gone = api.get(f"/backtests/{target}")
    assert gone.status_code == 404 and "deleted" in gone.json()["detail"]
    history = api.get(f"/backtests/{target}/history").json()
    assert history[-1]["event_type"] == "Deleted" and history[-1]["payload"]["reason"] == "overfitted"

    restored = api.post(f"/backtests/{target}/restore")
    assert restored.status_code == 200 and restored.json()["deleted"] is False
    assert target in live_ids(api)
    assert api.get(f"/backtests/{target}/trades").status_code == 200


def test_delete_strategy_deletes_every_live_result_at_once(api: Client, seeded: dict[str, Seeded]) -> None:
    smas = {row.id for row in seeded.values() if row.strategy == "SmaCross"}
    response = api.delete("/strategies/SmaCross")
    assert response.status_code == 200
    body = response.json()
    assert body["strategy"] == "SmaCross" and set(body["deleted"]) == smas
    assert not smas & live_ids(api)
    assert api.get("/backtests", params={"strategy": "SmaCross"}).json()["total"] == 0
    # A registered strategy with nothing live left: nothing to delete, not an error.
    again = api.delete("/strategies/SmaCross")
    assert again.status_code == 200 and again.json()["deleted"] == []


def test_a_key_whose_runs_all_failed_is_deleted_skipped_restored_and_deleted_with_its_strategy(
    api: Client, seeded: dict[str, Seeded], ledger: Ledger
) -> None:
    # GOOG's sample data is daily: its H1 run really fails, on every try.
    never = {**BATCH, "tickers": ["GOOG"], "timeframes": ["H1"]}
    _, stream = run(api, never)
    failed = next(e.data["id"] for e in stream if e.event == "progress" and e.data["status"] == "failed")
    assert (
        api.get(f"/backtests/{failed}")
        .json()["detail"]
        .endswith("has no result: its last run failed (see its history)")
    )

    deleted = api.delete(f"/backtests/{failed[:8]}", params={"reason": "no hourly GOOG data"})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": failed, "deleted": True, "position": ledger.head()}
    gone = api.get(f"/backtests/{failed}")
    assert gone.status_code == 404 and "is deleted and has no result: its runs all failed" in gone.json()["detail"]
    history = api.get(f"/backtests/{failed}/history").json()
    assert [h["event_type"] for h in history] == ["Registered", "RunFailed", "Deleted"]
    assert history[-1]["payload"] == {"reason": "no hourly GOOG data"}
    assert api.delete(f"/backtests/{failed}").status_code == 409  # already deleted

    _, again = run(api, never)  # skipped, not retried
    assert again[-1].data["summary"] == {"recorded": 0, "skipped": 1, "failed": 0}
    skipped = next(e.data for e in again if e.event == "progress" and e.data["status"] == "skipped")
    assert skipped["message"] == "deleted; rerun (--rerun in the CLI) runs it again"

    restored = api.post(f"/backtests/{failed}/restore")
    assert restored.status_code == 200 and restored.json()["deleted"] is False
    assert "its last run failed" in api.get(f"/backtests/{failed}").json()["detail"]
    _, retried = run(api, never)
    assert retried[-1].data["summary"] == {"recorded": 0, "skipped": 0, "failed": 1}

    smas = {row.id for row in seeded.values() if row.strategy == "SmaCross"}
    by_strategy = api.delete("/strategies/SmaCross")
    assert set(by_strategy.json()["deleted"]) == smas | {failed}
    assert [h["payload"] for h in api.get(f"/backtests/{failed}/history").json()][-1] == {"reason": STRATEGY_DELETED}


def test_robustness_tests_are_recorded_and_listed(api: Client, seeded: dict[str, Seeded]) -> None:
    target = seeded["sma_eur_h1"].id
    assert api.get(f"/backtests/{target}/tests").json() == []
    luck = api.post(f"/backtests/{target}/tests/luck", json={"percent": 25})
    assert luck.status_code == 201
    monte_carlo = api.post(f"/backtests/{target}/tests/montecarlo", json={"seed": 7, "paths": 200})
    assert monte_carlo.status_code == 201
    assert monte_carlo.json()["seed"] == 7 and monte_carlo.json()["parameters"]["paths"] == 200
    again = api.post(f"/backtests/{target[:8]}/tests/montecarlo", json={"seed": 7, "paths": 200}).json()
    assert again["summary"] == monte_carlo.json()["summary"]  # the seed reproduces it
    listed = api.get(f"/backtests/{target}/tests").json()
    assert [t["kind"] for t in listed] == ["luck", "montecarlo", "montecarlo"]
    assert listed[0]["test_id"] == luck.json()["test_id"] and listed[0]["metrics"]
    # No body: the defaults, whose 5 % of this result's few trades removes none, which is refused.
    defaults = api.post(f"/backtests/{target}/tests/luck")
    assert defaults.status_code == 400 and defaults.json()["field"] == "percent", defaults.text
    assert defaults.json()["detail"].startswith("5 % of "), defaults.text
    assert len(api.get(f"/backtests/{target}/tests").json()) == 3
