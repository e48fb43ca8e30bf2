"""With a token configured, every mutation (and analyst SQL) needs `Authorization: Bearer <token>`; reads
do not. Without one, nothing is asked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from btledger.api.client import TOKEN_ENV
from btledger.api.http import create_app
from btledger.domain.ledger import Ledger
from tests.api.conftest import BATCH, Seeded, caught_up

Client = TestClient[Any]
TOKEN = "s3cret-token"


@pytest.fixture
def secured(btledger_home: Path, seeded: dict[str, Seeded]) -> Iterator[Client]:
    with caught_up(btledger_home, token=TOKEN) as client:
        yield client


def mutations(target: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("PUT", f"/backtests/{target}/favorite", {}),
        ("DELETE", f"/backtests/{target}", {}),
        ("POST", f"/backtests/{target}/restore", {}),
        ("POST", f"/backtests/{target}/tests/luck", {}),
        ("DELETE", "/strategies/SmaCross", {}),
        ("POST", "/backtests", {"json": BATCH}),
        ("POST", "/backtests", {"content": b"{not json"}),  # refused before the body is read
        ("POST", "/plans", {"json": {"batches": [BATCH]}}),
        ("POST", "/sql", {"json": {"sql": "SELECT 1"}}),
        ("DELETE", "/jobs/0123abcd", {}),  # refused before the job is looked up
    ]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x"])
def test_mutations_without_the_token_are_401_and_append_nothing(
    secured: Client, seeded: dict[str, Seeded], ledger: Ledger, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    head = ledger.head()
    for method, path, kwargs in mutations(seeded["sma_eur_h1"].id):
        response = secured.request(method, path, headers=headers, **kwargs)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["status"] == 401 and "Bearer" in response.json()["detail"]
        assert response.json()["field"] == "Authorization"
        assert response.headers["www-authenticate"] == "Bearer"
    assert ledger.head() == head


def test_reads_need_no_token_and_mutations_pass_with_it(secured: Client, seeded: dict[str, Seeded]) -> None:
    target = seeded["sma_eur_h1"].id
    for path in ("/backtests", f"/backtests/{target}", "/rankings/robust", "/health", "/strategies", "/schema"):
        assert secured.get(path).status_code == 200, path
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert secured.put(f"/backtests/{target}/favorite", headers=auth).json()["favorite"] is True
    assert secured.post("/sql", json={"sql": "SELECT 1 AS one"}, headers=auth).json()["rows"] == [[1]]
    job_id = secured.post("/backtests", json=BATCH, headers=auth).json()["job_id"]
    assert secured.delete(f"/jobs/{job_id}").status_code == 401
    assert secured.delete(f"/jobs/{job_id}", headers=auth).status_code in (200, 409)  # 409 if it finished first


def test_the_token_comes_from_the_environment(
    btledger_home: Path, seeded: dict[str, Seeded], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    target = seeded["sma_eur_h1"].id
    with TestClient(create_app(btledger_home, workers=1)) as client:
        assert client.put(f"/backtests/{target}/favorite").status_code == 401
        assert client.put(f"/backtests/{target}/favorite", headers={"Authorization": f"bearer {TOKEN}"}).is_success


def test_without_a_token_mutations_are_open(api: Client, seeded: dict[str, Seeded]) -> None:
    assert api.put(f"/backtests/{seeded['sma_eur_h1'].id}/favorite").status_code == 200
