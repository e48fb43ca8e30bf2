"""Run as a separate process by the crash test: catch a read model up, printing each committed position.

Usage: python -m tests.projections.project_child HOME BATCH_SIZE
"""

from __future__ import annotations

import sys
from pathlib import Path

from btledger.domain.ledger import Ledger, store_env
from btledger.projections.readmodel import ReadModel
from tests.projections.factories import TIMEFRAMES


def main(home: Path, batch_size: int) -> None:
    ledger = Ledger(env=store_env(home))
    readmodel = ReadModel.open(home / "readmodel.duckdb", timeframes=TIMEFRAMES, batch_size=batch_size)
    readmodel.catch_up(ledger, on_batch=lambda position: print(position, flush=True))
    readmodel.close()
    print("done", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
