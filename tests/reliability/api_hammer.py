"""Clients for the concurrency test: random toggles, deletes, restores and runs on a few results.

`hammer()` runs in a thread of the test; `python -m tests.reliability.api_hammer` runs it in a process of
its own and prints one JSON record per request. With `--direct`, about half of that process's decisions
append to the ledger directly instead of through the API, as the CLI does beside a running server.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

#: Toggles dominate (they are where a lost update would show); runs are rare (batches queue on one thread).
OPERATIONS = ("toggle", "toggle", "toggle", "toggle", "delete", "delete", "restore", "restore", "run")


def hammer(
    url: str,
    ids: list[str],
    batch: dict[str, Any],
    count: int,
    seed: int,
    name: str,
    budget_s: float,
    home: Path | None = None,
) -> list[dict[str, Any]]:
    """Issue up to `count` operations (stopping early after `budget_s` seconds); one record per operation:
    {client, via, op, id, status, body}. With `home`, half the decisions go straight to its ledger."""
    rng = random.Random(seed)
    ledger = None
    if home is not None:
        from btledger.bootstrap import open_ledger

        ledger = open_ledger(home)
    deadline = time.monotonic() + budget_s
    records: list[dict[str, Any]] = []
    target: str | None  # None for a batch, which names no one result
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as http:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            op, target, direct = rng.choice(OPERATIONS), rng.choice(ids), rng.random() < 0.5
            if ledger is not None and direct and op != "run":
                records.append({"client": name, "via": "ledger", "op": op, "id": target, **_direct(ledger, op, target)})
                continue
            if op == "toggle":
                response = http.put(f"/backtests/{target}/favorite")
            elif op == "delete":
                response = http.delete(f"/backtests/{target}", params={"reason": name})
            elif op == "restore":
                response = http.post(f"/backtests/{target}/restore")
            else:
                response = http.post("/backtests", json={**batch, "rerun": rng.random() < 0.5})
                target = None
            body = response.json() if response.headers.get("content-type", "").startswith("application/json") else None
            records.append(
                {"client": name, "via": "http", "op": op, "id": target, "status": response.status_code, "body": body}
            )
    return records


def _direct(ledger: Any, op: str, target: str) -> dict[str, Any]:
    """A decision appended to the ledger in this process, recorded like an HTTP answer (409 when refused)."""
    from btledger.domain.errors import Conflict

    identity = UUID(target)
    try:
        if op == "toggle":
            value, position = ledger.toggle_favorite(identity)
            return {"status": 200, "body": {"id": target, "favorite": value, "position": position}}
        if op == "delete":
            position = ledger.delete(identity, reason="direct")
            return {"status": 200, "body": {"id": target, "deleted": True, "position": position}}
        position = ledger.restore(identity)
        return {"status": 200, "body": {"id": target, "deleted": False, "position": position}}
    except Conflict as error:
        return {"status": 409, "body": {"detail": str(error)}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("batch", help="the batch body as JSON")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--budget", type=float, required=True)
    parser.add_argument("--direct", type=Path, help="the data directory whose ledger to append to directly")
    parser.add_argument("ids", nargs="+")
    args = parser.parse_args()
    records = hammer(
        args.url, args.ids, json.loads(args.batch), args.count, args.seed, args.name, args.budget, args.direct
    )
    for record in records:
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
