"""Concurrency: 8 threads and 2 processes toggle, delete, restore and run the same few results through the API
(`serve()`: uvicorn on 127.0.0.1, a free port, in a subprocess), one of the processes also appending to the
ledger directly as the CLI does. Bounded: a fixed number of operations per client and a time budget.

Then: no 5xx (a 409 for a change that does not apply is fine); every answered change is exactly one event
at the position it reported, and every such event was answered (none lost, none doubled); each result's
favourite flags alternate in its history (a lost update would show as two equal values in a row), and it is
never deleted twice or restored unless deleted (a rerun's new result makes it live again); and the final
state of each result — replayed from its history — is the aggregate's, and the read model's (`backtest_keys`,
`backtests`, GET /backtests/{id}).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from btledger.api.client import running_server
from btledger.bootstrap import open_ledger
from btledger.domain.ledger import HistoryEntry
from tests.reliability.api_hammer import hammer
from tests.reliability.harness import REPO

THREADS, PROCESSES = 8, 2
OPERATIONS_PER_CLIENT = 30
BUDGET_S = 90.0
#: The few results everyone works on: 2 strategies × 2 risks on a short EURUSD H4 range (fast runs).
BATCH: dict[str, Any] = {
    "strategies": ["SmaCross", "RsiMeanReversion"],
    "tickers": ["EURUSD"],
    "timeframes": ["H4"],
    "risks": [1, 2],
    "date_from": "2017-05-01",
    "date_to": "2017-09-01",
}
SERVE = (
    "import sys; from pathlib import Path; from btledger.api.http import serve; "
    "serve(port=0, home=Path(sys.argv[1]), workers=1, log_level='warning')"
)


@pytest.fixture
def server(btledger_home: Path) -> Iterator[str]:
    process = subprocess.Popen([sys.executable, "-c", SERVE, str(btledger_home)], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while (info := running_server(btledger_home)) is None or not _answers(info.url):
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield info.url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def finished_job(http: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = http.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} did not finish: {job}"
        time.sleep(0.1)


def replay(history: list[HistoryEntry]) -> tuple[bool, bool]:
    """(favourite, deleted) from a result's events, checking that each change flips the previous state."""
    favorite, deleted = False, False
    for index, entry in enumerate(history):
        context = [
            (e.position, e.version, e.event_type, e.recorded_at.isoformat(), e.payload.get("reason"))
            for e in history[max(0, index - 4) : index + 1]
        ]
        if entry.event_type == "FavoriteToggled":
            assert entry.payload["favorite"] is (not favorite), (
                f"lost update: toggle at {entry.position} kept {favorite}: {context}"
            )
            favorite = entry.payload["favorite"]
        elif entry.event_type == "Deleted":
            assert not deleted, f"deleted twice in a row (position {entry.position}): {context}"
            deleted = True
        elif entry.event_type == "Restored":
            assert deleted, f"restored while not deleted (position {entry.position}): {context}"
            deleted = False
        elif entry.event_type == "ResultRecorded":  # a rerun's new result is live, deleted before or not
            deleted = False
    return favorite, deleted


def test_concurrent_toggles_deletes_restores_and_runs_lose_no_update(server: str, btledger_home: Path) -> None:
    with httpx.Client(base_url=server, timeout=60, trust_env=False) as http:
        accepted = http.post("/backtests", json=BATCH)
        assert accepted.status_code == 202, accepted.text
        first = finished_job(http, accepted.json()["job_id"])
        assert first["summary"] == {"recorded": 4, "skipped": 0, "failed": 0}, first
        ids = sorted(item["id"] for item in http.get("/backtests").json()["items"])
        assert len(ids) == 4

        processes = [
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "tests.reliability.api_hammer", server, json.dumps(BATCH)),
                    *("--count", str(OPERATIONS_PER_CLIENT), "--seed", str(100 + n), "--name", f"process-{n}"),
                    *("--budget", str(BUDGET_S)),
                    *(("--direct", str(btledger_home)) if n == 1 else ()),
                    *ids,
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(PROCESSES)
        ]
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [
                pool.submit(hammer, server, ids, BATCH, OPERATIONS_PER_CLIENT, n, f"thread-{n}", BUDGET_S)
                for n in range(THREADS)
            ]
            records = [record for future in futures for record in future.result()]
        for process in processes:
            out, _ = process.communicate(timeout=BUDGET_S + 60)
            assert process.returncode == 0
            records += [json.loads(line) for line in out.splitlines()]

        # Bounded, and everyone got through: every client issued its share of operations.
        per_client = Counter(record["client"] for record in records)
        assert len(per_client) == THREADS + PROCESSES
        assert min(per_client.values()) > OPERATIONS_PER_CLIENT // 2, per_client

        # No 5xx; the only refusal is 409 (a change that does not apply to the current state).
        statuses = Counter((record["op"], record["status"]) for record in records)
        assert all(status < 500 for _, status in statuses), statuses
        assert {status for _, status in statuses} <= {200, 202, 409}, statuses
        assert statuses[("toggle", 200)] > 0 and statuses[("delete", 200)] > 0 and statuses[("restore", 200)] > 0

        jobs = [finished_job(http, r["body"]["job_id"]) for r in records if r["op"] == "run" and r["status"] == 202]
        assert all(job["status"] == "done" for job in jobs), [job for job in jobs if job["status"] != "done"]
        reruns = sum(1 for job in jobs if job["summary"] == {"recorded": 4, "skipped": 0, "failed": 0})
        assert reruns + sum(1 for job in jobs if job["summary"] == {"recorded": 0, "skipped": 4, "failed": 0}) == len(
            jobs
        )

        ledger = open_ledger(btledger_home)
        head = ledger.head()
        assert http.get("/health", params={"wait_for": head}).status_code == 200
        keys = http.post("/sql", json={"sql": "SELECT id, favorite, deleted FROM backtest_keys"}).json()["rows"]
        read_keys = {row[0]: (row[1], row[2]) for row in keys}
        live = dict(http.post("/sql", json={"sql": "SELECT id, favorite FROM backtests"}).json()["rows"])

        answered: dict[tuple[str, str], set[int]] = defaultdict(set)
        favorite_at: dict[int, bool] = {}
        for record in records:
            if record["op"] in ("toggle", "delete", "restore") and record["status"] == 200:
                assert record["body"]["id"] == record["id"]
                answered[(record["id"], record["op"])].add(record["body"]["position"])
                if record["op"] == "toggle":
                    favorite_at[record["body"]["position"]] = record["body"]["favorite"]
        answered_positions = [p for positions in answered.values() for p in positions]
        answered_count = sum(1 for r in records if r["op"] != "run" and r["status"] == 200)
        assert len(answered_positions) == len(set(answered_positions)) == answered_count, "two answers, one event"

        for identity in ids:
            history = ledger.history(UUID(identity))
            events: dict[str, set[int]] = defaultdict(set)
            for entry in history:
                events[entry.event_type].add(entry.position)
                if entry.event_type == "FavoriteToggled":
                    assert entry.payload["favorite"] is favorite_at[entry.position], "answer and event disagree"
            # Every answered change is one event at the position it reported, and every such event was answered.
            assert events["FavoriteToggled"] == answered[(identity, "toggle")]
            assert events["Deleted"] == answered[(identity, "delete")]
            assert events["Restored"] == answered[(identity, "restore")]
            assert len(events["ResultRecorded"]) == 1 + reruns

            favorite, deleted = replay(history)
            aggregate = ledger.get(UUID(identity))
            assert (aggregate.favorite, aggregate.deleted) == (favorite, deleted)
            assert read_keys[identity] == (favorite, deleted)
            assert (identity in live) is not deleted
            response = http.get(f"/backtests/{identity}")
            if deleted:
                assert response.status_code == 404 and "is deleted" in response.json()["detail"]
            else:
                assert response.status_code == 200 and response.json()["backtest"]["favorite"] is favorite
                assert live[identity] is favorite


def test_the_replay_check_catches_a_lost_update_and_a_double_deletion() -> None:
    now = datetime.now(UTC)

    def history(*changes: tuple[str, dict[str, Any]]) -> list[HistoryEntry]:
        return [HistoryEntry(n + 2, n + 2, kind, now, payload) for n, (kind, payload) in enumerate(changes)]

    assert replay(history(("FavoriteToggled", {"favorite": True}), ("Deleted", {"reason": "x"}))) == (True, True)
    with pytest.raises(AssertionError, match="lost update"):
        replay(history(("FavoriteToggled", {"favorite": True}), ("FavoriteToggled", {"favorite": True})))
    with pytest.raises(AssertionError, match="deleted twice"):
        replay(history(("Deleted", {"reason": "a"}), ("Deleted", {"reason": "b"})))
    with pytest.raises(AssertionError, match="restored while not deleted"):
        replay(history(("Deleted", {"reason": "a"}), ("ResultRecorded", {}), ("Restored", {})))
    assert replay(history(("Deleted", {"reason": "a"}), ("ResultRecorded", {}), ("Deleted", {"reason": "b"}))) == (
        False,
        True,
    )
