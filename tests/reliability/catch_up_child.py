"""Run as a separate process by the crash tests: catch the read model of $BTLEDGER_HOME up with its ledger,
printing each committed position, then "done".

Usage: python -m tests.reliability.catch_up_child BATCH_SIZE
"""

from __future__ import annotations

import sys

from btledger.bootstrap import open_ledger
from btledger.projections.readmodel import ReadModel


def main(batch_size: int) -> None:
    ledger = open_ledger()
    with ReadModel.open(batch_size=batch_size) as readmodel:
        readmodel.catch_up(ledger, on_batch=lambda position: print(position, flush=True))
    print("done", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
