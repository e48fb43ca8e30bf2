"""What the CLI does, one function per command: open the stores, run the command, catch the read
model up to the command's last event (read-your-writes), and shape the result for rendering."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from uuid import UUID

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from btledger import bootstrap
from btledger.api import render
from btledger.config import YamlError, home, read_yaml
from btledger.domain.audit import verify as verify_result
from btledger.domain.batch import BatchReport, run_batches
from btledger.domain.batch import Progress as BatchProgress
from btledger.domain.commands import RunBatch, parse, parse_plan
from btledger.domain.errors import Conflict, InvalidInput, NotFound
from btledger.domain.plots import live_plot


def run_batch_with_progress(data: dict[str, Any], *, workers: int | None, quiet: bool) -> BatchReport:
    """Validate and run a batch, showing a progress bar on stderr unless `quiet`."""
    return _run_with_progress([parse(RunBatch, data)], workers=workers, quiet=quiet)


def run_plan_with_progress(path: Path, *, workers: int | None, quiet: bool) -> BatchReport:
    """Validate and run the plan in the YAML (or JSON) file at `path`: its batches as one (see `run_batches`)."""
    try:
        data = read_yaml(path)
    except YamlError as error:
        raise InvalidInput("plan", str(error)) from None
    return _run_with_progress(parse_plan(data), workers=workers, quiet=quiet)


def _run_with_progress(commands: list[RunBatch], *, workers: int | None, quiet: bool) -> BatchReport:
    ledger = bootstrap.open_ledger()
    with (
        # Lazy: a run whose combinations are all recorded forks no worker, and a run never forks more
        # workers than it has combinations to run. They fork once the progress bar's thread runs; they
        # never touch rich, so the state of its locks copied into them does not matter.
        bootstrap.open_pool(workers, lazy=True) as pool,
        bootstrap.projecting(ledger) as project,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=render.err_console,
            disable=quiet,
            transient=True,
        ) as bar,
    ):
        task = bar.add_task("backtests", total=None)

        def on_progress(event: BatchProgress) -> None:
            project(event)
            finished = event.status in ("recorded", "skipped", "failed")
            bar.update(task, total=event.total, advance=int(finished))
            if finished and not quiet:
                render.print_progress_line(event.to_json())

        return run_batches(ledger, commands, pool, home(), on_progress)


def report_json(report: BatchReport) -> dict[str, Any]:
    """The CLI contract's `run --json` shape."""
    return {
        "results": [
            {
                **result.combination_json(),
                "metrics": result.metrics,
                "trade_performance": result.trade_performance,
                "margin_cancelled_orders": result.margin_cancelled_orders,
                "error": result.message if result.status == "failed" else None,
            }
            for result in report.results
        ],
        "summary": report.summary,
    }


def print_report(data: dict[str, Any]) -> None:
    rows = [{**r, **(r["metrics"] or {})} for r in data["results"]]
    render.rows_table(rows, (*render.RESULT_COLUMNS[:5], "status", *render.RESULT_COLUMNS[5:-1]), title="results")
    summary = data["summary"]
    render.console.print(
        f"recorded {summary['recorded']}, skipped {summary['skipped']}, failed {summary['failed']}", highlight=False
    )


def toggle_favorite(id_or_prefix: str) -> tuple[UUID, bool]:
    ledger = bootstrap.open_ledger()
    identity = ledger.resolve(id_or_prefix)
    value, _ = ledger.toggle_favorite(identity)
    bootstrap.catch_up(ledger)
    return identity, value


def delete(id_or_prefix: str, reason: str) -> UUID:
    ledger = bootstrap.open_ledger()
    identity = ledger.resolve(id_or_prefix)
    ledger.delete(identity, reason)
    bootstrap.catch_up(ledger)
    return identity


def restore(id_or_prefix: str) -> UUID:
    ledger = bootstrap.open_ledger()
    identity = ledger.resolve(id_or_prefix)
    ledger.restore(identity)
    bootstrap.catch_up(ledger)
    return identity


def delete_strategy(name: str) -> list[UUID]:
    from btledger.engine.registry import registry

    ledger = bootstrap.open_ledger()
    ids, _ = ledger.delete_strategy(name)
    if not ids and name not in registry():  # as DELETE /strategies/{name} answers 404
        raise NotFound(f"no strategy named {name!r} is registered or has results", field="name")
    bootstrap.catch_up(ledger)
    return ids


def history(id_or_prefix: str) -> list[dict[str, Any]]:
    """The CLI contract's `history --json` shape."""
    ledger = bootstrap.open_ledger()
    return [
        {
            "position": entry.position,
            "event_type": entry.event_type,
            "recorded_at": entry.recorded_at.isoformat(),
            "payload": entry.payload,
        }
        for entry in ledger.history(ledger.resolve(id_or_prefix))
    ]


def verify(id_or_prefix: str) -> dict[str, Any]:
    from btledger.engine import run_backtest

    ledger = bootstrap.open_ledger()
    return verify_result(ledger, ledger.resolve(id_or_prefix), run_backtest).to_json()


def plot(id_or_prefix: str) -> dict[str, Any]:
    """The CLI contract's `plot --json` shape: the result's plot file, rendered if it has none yet."""
    ledger = bootstrap.open_ledger()
    identity = ledger.resolve(id_or_prefix)
    return {"id": str(identity), "path": str(live_plot(ledger, home(), identity))}


def export_parquet(directory: str) -> list[Path]:
    from btledger.projections.readmodel import ReadModel

    if not directory.strip():
        raise InvalidInput("parquet", "needs a directory, got an empty path")
    # The nearest part of the path that exists must be a directory, for the rest to be made below it.
    existing = next(path for path in (Path(directory), *Path(directory).parents) if path.exists())
    if not existing.is_dir():
        raise InvalidInput("parquet", f"needs a directory, but {existing} is not one")
    ledger = bootstrap.open_ledger()
    with ReadModel.open() as readmodel:
        readmodel.catch_up(ledger)
        return readmodel.export_parquet(directory)


def rebuild() -> dict[str, Any]:
    from btledger.projections.readmodel import ReadModel

    ledger = bootstrap.open_ledger()
    started = time.perf_counter()
    with ReadModel.open() as readmodel:
        position = readmodel.rebuild(ledger)
    return {"position": position, "seconds": time.perf_counter() - started}


def robustness_test(id_or_prefix: str, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    # Here, not at the top: the tests' numpy would cost every other command ≈ 50 ms of start-up.
    from btledger.domain.robustness import run_robustness_test

    ledger = bootstrap.open_ledger()
    identity = ledger.resolve(id_or_prefix)
    test_id, result, _ = run_robustness_test(ledger, identity, kind, options)
    bootstrap.catch_up(ledger)
    return {"test_id": test_id, "backtest_id": str(identity), **result.to_json()}


#: The demo batch: 3 strategies × 3 tickers × 2 timeframes × 2 risks on the sample data.
DEMO_BATCH: dict[str, Any] = {
    "strategies": ["SmaCross", "DonchianBreakout", "RsiMeanReversion"],
    "tickers": ["GOOG", "AAPL", "MSFT"],
    "timeframes": ["D1", "W1"],
    "risks": [1.0, 2.0],
    "date_from": "2004-09-01",
    "date_to": "2013-01-01",
}


def demo(workers: int | None = None) -> None:
    """Run the demo batch (skipping what exists), then show the ranking, a search, a plot and next steps."""
    console = render.console
    console.print(f"[bold]btledger demo[/bold] — data directory {escape(str(home()))}", highlight=False)
    report = run_batch_with_progress(DEMO_BATCH, workers=workers, quiet=False)
    summary = report.summary
    console.print(
        f"recorded {summary['recorded']}, skipped {summary['skipped']} (already in the ledger), "
        f"failed {summary['failed']}",
        highlight=False,
    )
    from btledger.api.reading import open_reader

    with open_reader() as reader:
        ranking = reader.rank()
        page = reader.search(sort="stability_weighted_rar", limit=10)
    render.rows_table(
        ranking, render.RESULT_COLUMNS, title="robust ranking (mean return/drawdown > 1 on selected timeframes)"
    )
    render.rows_table(
        page["items"], render.RESULT_COLUMNS, title=f"top 10 of {page['total']} by stability-weighted RAR"
    )

    best = ranking[0] if ranking else (page["items"][0] if page["items"] else None)
    if best is not None:
        try:  # the file GET /backtests/{id}/plot serves
            console.print(f"plot of the best result: {plot(best['id'])['path']}", highlight=False, markup=False)
        except Conflict as error:  # its inputs changed since the ledger recorded it: the rest still applies
            console.print(f"no plot of the best result: {error}", highlight=False, markup=False)
        short = best["id"][:8]
        console.print(
            "\n[bold]next[/bold]\n"
            f"  uv run btledger history {short}            # every event of that result\n"
            f"  uv run btledger trades {short}             # its trades\n"
            f"  uv run btledger test montecarlo {short}    # a robustness test, recorded on its history\n"
            "  uv run btledger strategies                  # their parameters, defaults and valid values\n"
            '  uv run btledger sql "SELECT strategy, avg(return_dd) FROM backtests GROUP BY 1"\n'
            "  uv run btledger serve                       # the HTTP API and its docs at http://127.0.0.1:8000/schema",
            highlight=False,
        )
