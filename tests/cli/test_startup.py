"""What a CLI command imports before it runs: the commands that only read or mark results must not pay
for backtesting.py and bokeh (≈ 1.2 s of imports, which `btledger history` used to spend on every call)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("backtesting", "bokeh")


def _imported_after(statement: str) -> list[str]:
    """The HEAVY modules a fresh interpreter holds after running `statement`."""
    probe = f"import json, sys; {statement}; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_the_cli_and_its_operations_import_no_engine() -> None:
    assert _imported_after("import btledger.api.cli, btledger.api.operations") == []


def test_validating_a_batch_loads_the_strategies() -> None:
    # The registry imports them on first use: the probe above would pass vacuously if nothing ever did.
    statement = (
        "from btledger.domain.commands import RunBatch, parse; "
        "parse(RunBatch, {'strategies': ['SmaCross'], 'tickers': ['GOOG'], 'timeframes': ['D1'], 'risks': [1.0], "
        "'date_from': '2010-01-01', 'date_to': '2011-01-01'})"
    )
    assert _imported_after(statement) == list(HEAVY)
