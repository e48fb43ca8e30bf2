"""Every benchmark of the project in one run, as one table: name, value, unit, baseline, ratio, target, met.

Each module's `measure()` runs in a fresh Python process of its own (the modules build large synthetic
ledgers, start servers and time CPU use of their process: running them side by side in one interpreter
would let one's garbage and threads leak into another's figures), one module after the other.

- engine.py      `run_backtest` vs a bare backtesting.py run (CPU time ratio, target <= 1.10)
- ledger.py      append rate, `btledger run` vs a bare loop (<= 1.10), 2-worker speedup (>= 1.8)
- readmodels.py  rebuild vs a bare DuckDB insert (>= 0.5), queries vs SQLite (>= 5x); `--quick` uses its
                 quick mode (1,000 heavy and 10,000 small results instead of 10,000 and 100,000)
- robustness.py  Monte Carlo 10,000 paths x 500 trades (< 1 s), vs the seed's Python loop
- api.py         GET /backtests under wrk vs a bare endpoint (>= 0.5); `--quick`: shorter load rounds

Usage: ``uv run python benchmarks/run_all.py [--quick] [--json] [--only NAME ...]``. The full run takes about
6 minutes on 2 cores, `--quick` about 3; per-module times go to stderr. Exit status 0 even when a target is
missed (the table says so); 1 when a benchmark fails to run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from report import FIELDS, table

HERE = Path(__file__).resolve().parent

#: module → measure() keyword arguments, full and quick.
BENCHMARKS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "engine": ({}, {"repeats": 11}),
    "ledger": ({}, {}),
    "readmodels": ({"quick": False}, {"quick": True}),
    "robustness": ({}, {}),
    "api": ({}, {"duration": 2.0, "rounds": 3}),
}


def load(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module (the folder is not a package; names like `api` must not clash)."""
    spec = importlib.util.spec_from_file_location(f"btledger_benchmarks.{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure_here(name: str, quick: bool) -> list[dict[str, Any]]:
    """Run one module's measure() in this process; its rows, reduced to the report's fields."""
    full, fast = BENCHMARKS[name]
    rows = load(name).measure(**(fast if quick else full))
    return [{field: row.get(field) for field in FIELDS} for row in rows]


def measure_isolated(name: str, quick: bool) -> list[dict[str, Any]]:
    """Run one module's measure() in a fresh process; its rows (the child prints them as its last line)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, *(["--quick"] if quick else [])]
    finished = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"benchmark {name} failed (exit {finished.returncode}); its output is above")
    return json.loads(finished.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    parser.add_argument("--quick", action="store_true", help="read models' quick mode, shorter API load rounds")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these modules")
    parser.add_argument("--child", choices=list(BENCHMARKS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rows = measure_here(args.child, args.quick)
        sys.stdout.flush()
        print(json.dumps(rows))
        return

    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for name in args.only or list(BENCHMARKS):
        began = time.perf_counter()
        try:
            rows += measure_isolated(name, args.quick)
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
        print(f"{name}: {time.perf_counter() - began:.0f} s", file=sys.stderr)
    print(f"all benchmarks: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(json.dumps(rows, indent=2) if args.json else table(rows))


if __name__ == "__main__":
    main()
