"""Run as a separate process by the crash tests: catch the read model of $BTLEDGER_HOME up with its ledger,
printing each committed position, then "done".

Usage: python -m tests.reliability.catch_up_child BATCH_SIZE [--step]

With --step it waits for a line on stdin after each position it prints, so the test that kills it knows it
can have committed at most one more batch by the time the kill lands, however loaded the machine is.
"""

from __future__ import annotations

import sys

from btledger.bootstrap import open_ledger
from btledger.projections.readmodel import ReadModel


def main(batch_size: int, step: bool) -> None:
    ledger = open_ledger()

    def committed(position: int) -> None:
        print(position, flush=True)
        if step:
            sys.stdin.readline()

    with ReadModel.open(batch_size=batch_size) as readmodel:
        readmodel.catch_up(ledger, on_batch=committed)
    print("done", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), "--step" in sys.argv[2:])
