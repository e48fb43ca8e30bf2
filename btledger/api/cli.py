"""The `btledger` command line: thin wrappers that parse flags, call a command or a query, render.

Exit status: 0 on success, 2 on bad input (one line on stderr naming the field), 1 on any other
failure. Every command that prints data takes `--json`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from btledger.api import render
from btledger.config import MAX_WORKERS, ConfigError
from btledger.domain.errors import Conflict, InvalidInput, LedgerError, NotFound
from btledger.projections.sql_values import MAX_SQL_ROWS


class _OneLineErrors(TyperGroup):
    """Usage errors (a missing option, a value of the wrong type) as one line on stderr, exit 2.

    Typer would print a usage line, a hint and a boxed message; the CLI contract is one line naming
    the field, whichever layer found the problem.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        forward = (args, prog_name, complete_var, False, windows_expand_args)  # standalone_mode off: handled here
        if not standalone_mode:
            return super().main(*forward, **extra)
        try:
            code = super().main(*forward, **extra)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        except typer.TyperException as exc:  # click's UsageError and its kin
            typer.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(getattr(exc, "exit_code", 2))
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="btledger",
    cls=_OneLineErrors,
    help="An event-sourced ledger of trading-strategy backtests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
WORKERS_HELP = f"Worker processes for batches, 1 to {MAX_WORKERS} (0 or none: settings, 0 there: one per core)."


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _if_imported(module: str, name: str) -> tuple[type[Exception], ...]:
    """The exception class `module.name` when `module` is imported, else none (`except ()` matches nothing).

    DuckDB and the read model (with its projector and pyarrow) take ≈ 0.23 s to import, which commands that
    never open the read model (`history`, `plot`, `strategies`, `--help`) would pay for their error
    mapping alone. An error of a module never imported cannot have been raised, so looking its class up
    when an error arrives maps every error exactly as importing the module up front did.
    """
    error = getattr(sys.modules.get(module), name, None)
    return (error,) if error is not None else ()


@contextmanager
def errors_to_exit_codes() -> Iterator[None]:
    """Map domain errors to the CLI contract: bad input → 2, anything else → 1, one line each."""
    try:
        yield
    except InvalidInput as exc:
        fail(str(exc), 2)
    except (NotFound, Conflict) as exc:
        fail(str(exc), 2 if isinstance(exc, NotFound) else 1)
    except ConfigError as exc:
        fail(f"config: {exc}", 1)
    except _if_imported("btledger.projections.readmodel", "ReadModelError") as exc:
        fail(str(exc), 1)
    except LedgerError as exc:
        fail(str(exc), 1)
    except ValueError as exc:
        # The engine's validation errors start with the field name ("risk: must be ...").
        fail(str(exc), 2)
    except OSError as exc:  # e.g. `export --parquet` to a path that cannot be a directory: a line, not a traceback
        fail(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc), 1)
    except _if_imported("duckdb", "Error") as exc:
        from btledger.projections.readmodel import damage_in

        if (damage := damage_in(exc)) is None:
            raise
        fail(f"the read model file is damaged ({damage}); `btledger rebuild` builds it again from the ledger", 1)


def emit(data: Any, as_json: bool, table: Callable[[Any], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
    else:
        table(data)


def _parse_date(field: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{field}: expected a date as YYYY-MM-DD, got {text!r}", 2)


# --- commands that write ---------------------------------------------------------------------------

Repeated = Annotated[list[str], typer.Option()]


@app.command()
def run(
    strategy: Annotated[list[str] | None, typer.Option("--strategy", "-s", help="Strategy name (repeatable).")] = None,
    ticker: Annotated[list[str] | None, typer.Option("--ticker", "-t", help="Ticker (repeatable).")] = None,
    timeframe: Annotated[
        list[str] | None, typer.Option("--timeframe", "-f", help="Timeframe, e.g. H1 (repeatable).")
    ] = None,
    risk: Annotated[
        list[str] | None, typer.Option("--risk", "-r", help="Percent of equity risked per trade (repeatable).")
    ] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD.")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last day (inclusive), YYYY-MM-DD.")] = None,
    cash: Annotated[float | None, typer.Option("--cash", help="Initial cash (default: settings).")] = None,
    method: Annotated[str | None, typer.Option(help="Method label, part of the key (default: pa).")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Strategy parameter NAME=VALUE, read as its type (repeatable).")
    ] = None,
    rerun: Annotated[bool, typer.Option("--rerun", help="Record a new result even where one exists.")] = False,
    plot: Annotated[str | None, typer.Option(help="none | temp | persist (default: none)")] = None,
    plan: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            help="YAML or JSON file {batches: [...]}, each batch with the fields of POST /backtests; "
            "its batches run as one, instead of the flags above.",
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help=WORKERS_HELP)] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run strategies × tickers × timeframes × risks and record every outcome in the ledger.

    Exits 1 when a combination failed (its error is recorded; the next run of the batch tries it again).
    """
    from btledger.api import operations
    from btledger.domain.commands import params_from_text

    flags = {
        "strategy": strategy,
        "ticker": ticker,
        "timeframe": timeframe,
        "risk": risk,
        "from": date_from,
        "to": date_to,
        "cash": cash,
        "method": method,
        "param": param,
        "rerun": rerun or None,
        "plot": plot,
    }
    with errors_to_exit_codes():
        if plan is not None:
            if given := [name for name, value in flags.items() if value is not None]:
                fail(f"--plan: give either a plan or the batch flags, not both (also given: --{given[0]})", 2)
            report = operations.run_plan_with_progress(plan, workers=workers, quiet=as_json)
        else:
            for name in ("strategy", "ticker", "timeframe", "risk", "from", "to"):
                if not flags[name]:
                    fail(f"--{name}: missing (a batch needs it, or give a plan file with --plan)", 2)
            assert strategy and ticker and timeframe and risk and date_from and date_to  # checked just above
            data = {
                "strategies": strategy,
                "tickers": ticker,
                "timeframes": timeframe,
                "risks": [_parse_number("risk", r) for r in risk],
                "date_from": _parse_date("date_from", date_from),
                "date_to": _parse_date("date_to", date_to),
                "initial_cash": cash,
                "method": method,
                "params": params_from_text(strategy, _parse_params(param or [])),
                "rerun": rerun,
                "plot": plot,
            }
            batch = {name: value for name, value in data.items() if value is not None}  # RunBatch has the defaults
            report = operations.run_batch_with_progress(batch, workers=workers, quiet=as_json)
        emit(operations.report_json(report), as_json, operations.print_report)
    if report.summary["failed"]:
        # Every outcome is recorded and printed; the status tells a script that not all of them are results.
        raise typer.Exit(1)


def _parse_number(field: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        fail(f"{field}: expected a number, got {text!r}", 2)


def _parse_params(items: list[str]) -> dict[str, str]:
    """`--param NAME=VALUE` flags as texts by name; each is typed by its strategies (`params_from_text`)."""
    params: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            fail(f"param: expected NAME=VALUE with NAME an identifier, got {item!r}", 2)
        if name in params:  # a batch takes one value per parameter; the last one winning hid the first
            fail(f"param: {name} is given twice", 2)
        params[name] = value
    return params


IdArgument = Annotated[str, typer.Argument(help="Backtest id or a unique prefix of it.")]


@app.command()
def favorite(backtest: IdArgument, as_json: JsonFlag = False) -> None:
    """Toggle a result's favourite flag; prints the new value."""
    from btledger.api import operations

    with errors_to_exit_codes():
        identity, value = operations.toggle_favorite(backtest)
        emit({"id": str(identity), "favorite": value}, as_json, lambda d: typer.echo(f"{d['id']} favorite={value}"))


@app.command()
def delete(
    backtest: IdArgument,
    reason: Annotated[str, typer.Option(help="Why it is deleted (kept in the history).")] = "deleted by user",
    as_json: JsonFlag = False,
) -> None:
    """Delete one result, or a key whose runs all failed so that batches stop retrying it (a tombstone: its
    history stays)."""
    from btledger.api import operations

    with errors_to_exit_codes():
        identity = operations.delete(backtest, reason)
        emit({"id": str(identity), "deleted": True}, as_json, lambda d: typer.echo(f"{d['id']} deleted"))


@app.command()
def restore(backtest: IdArgument, as_json: JsonFlag = False) -> None:
    """Undo the deletion of a result."""
    from btledger.api import operations

    with errors_to_exit_codes():
        identity = operations.restore(backtest)
        emit({"id": str(identity), "deleted": False}, as_json, lambda d: typer.echo(f"{d['id']} restored"))


@app.command("delete-strategy")
def delete_strategy(
    name: Annotated[str, typer.Argument(help="Strategy name.")],
    as_json: JsonFlag = False,
) -> None:
    """Delete every live result of a strategy at once, and its keys whose runs all failed."""
    from btledger.api import operations

    with errors_to_exit_codes():
        ids = operations.delete_strategy(name)
        emit(
            {"strategy": name, "deleted": [str(i) for i in ids]},
            as_json,
            # Its live results and the combinations of it that only ever failed: each is a combination.
            lambda d: typer.echo(
                f"{len(d['deleted'])} combination{'' if len(d['deleted']) == 1 else 's'} of {name} deleted"
            ),
        )


@app.command()
def history(backtest: IdArgument, as_json: JsonFlag = False) -> None:
    """Every event of one result, in order."""
    from btledger.api import operations

    with errors_to_exit_codes():
        entries = operations.history(backtest)
        emit(
            entries,
            as_json,
            lambda rows: render.rows_table(
                [{**r, "payload": render.summarise_payload(r["payload"])} for r in rows], title="history"
            ),
        )


@app.command()
def verify(backtest: IdArgument, as_json: JsonFlag = False) -> None:
    """Re-run a recorded result and report whether every metric reproduces."""
    from btledger.api import operations

    with errors_to_exit_codes():
        result = operations.verify(backtest)
        emit(
            result,
            as_json,
            lambda d: render.key_values({k: v for k, v in d.items() if k != "mismatches"}, title="verify"),
        )
        if result["verdict"] == "mismatch":
            if not as_json:
                render.rows_table(result["mismatches"], title="mismatches")
            raise typer.Exit(1)


@app.command()
def plot(backtest: IdArgument, as_json: JsonFlag = False) -> None:
    """The HTML plot file of a live result (what GET /backtests/{id}/plot serves); rendered from its recorded
    key when it has none, unless its data, strategy code or costs changed since it ran (exit 1)."""
    from btledger.api import operations

    with errors_to_exit_codes():
        result = operations.plot(backtest)
    emit(result, as_json, lambda d: typer.echo(d["path"]))


# --- commands that read --------------------------------------------------------------------------


def _parse_timestamp(field: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{field}: expected an ISO timestamp such as 2026-01-31T12:00:00+00:00, got {text!r}", 2)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@app.command()
def rank(
    strategy: Annotated[str | None, typer.Option(help="Only this strategy.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Ranking as it stood then (ISO; UTC if naive).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The robust ranking: best run of each strategy × ticker whose mean return/drawdown over the selected
    timeframes is above 1."""
    from btledger.api.reading import open_reader

    with errors_to_exit_codes():
        moment = _parse_timestamp("as_of", as_of) if as_of else None
        with open_reader() as reader:
            rows = reader.rank(strategy=strategy, as_of=moment)
        emit(rows, as_json, lambda r: render.rows_table(r, render.RESULT_COLUMNS, title="robust ranking"))


@app.command()
def search(
    min_return: Annotated[float | None, typer.Option(help="Minimum return %.")] = None,
    max_drawdown: Annotated[float | None, typer.Option(help="Maximum drawdown %.")] = None,
    min_stability_ratio: Annotated[float | None, typer.Option()] = None,
    min_sharpe: Annotated[float | None, typer.Option()] = None,
    min_trades: Annotated[int | None, typer.Option(min=0)] = None,
    min_return_dd: Annotated[float | None, typer.Option()] = None,
    min_stability_weighted_rar: Annotated[float | None, typer.Option()] = None,
    min_win_rate: Annotated[float | None, typer.Option()] = None,
    strategy: Annotated[str | None, typer.Option(help="Strategy name contains (case-insensitive).")] = None,
    ticker: Annotated[str | None, typer.Option(help="Ticker contains (case-insensitive).")] = None,
    favorite_only: Annotated[bool, typer.Option("--favorites", help="Only favourites.")] = False,
    sort: Annotated[str, typer.Option(help="Any metric column.")] = "return_dd",
    order: Annotated[str, typer.Option(help="asc | desc")] = "desc",
    limit: Annotated[int, typer.Option(min=0, max=10_000)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Filtered search over live results by metric thresholds and names."""
    filters = {k: v for k, v in locals().items() if k != "as_json" and v is not None}
    from btledger.api.reading import open_reader

    with errors_to_exit_codes(), open_reader() as reader:
        page = reader.search(**filters)
    result = {"total": page["total"], "items": page["items"]}
    emit(
        result,
        as_json,
        lambda p: render.rows_table(
            p["items"], render.RESULT_COLUMNS, title=f"{p['total']} results (showing {len(p['items'])})"
        ),
    )


@app.command()
def strategies(as_json: JsonFlag = False) -> None:
    """The registered strategies: each parameter's default and valid values, the rules across them."""
    from btledger.engine.registry import strategy_listings

    with errors_to_exit_codes():
        listings = strategy_listings()
    emit(listings, as_json, render.strategies_table)


@app.command()
def trades(backtest: IdArgument, as_json: JsonFlag = False) -> None:
    """The trades of one result."""
    from btledger.api.reading import open_reader

    with errors_to_exit_codes(), open_reader() as reader:
        rows = reader.trades(backtest)
    emit(rows, as_json, lambda r: render.rows_table(r, title="trades"))


@app.command()
def sql(
    statement: Annotated[str, typer.Argument(help='One read-only statement, e.g. "SELECT * FROM backtests".')],
    max_rows: Annotated[int, typer.Option(min=1, max=MAX_SQL_ROWS)] = 1000,
    as_json: JsonFlag = False,
) -> None:
    """Run analyst SQL on the read models (read-only: statements that write are refused)."""
    from btledger.api.reading import open_reader

    with errors_to_exit_codes(), open_reader() as reader:
        result = reader.sql(statement, max_rows=max_rows)
    rows = [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]
    emit(rows, as_json, lambda r: render.rows_table(r))
    if result["truncated"]:  # on stderr: stdout's JSON is the rows alone, which scripts rely on
        typer.echo(
            f"showing the first {len(rows)} rows; add LIMIT/OFFSET, or use `btledger export --parquet DIR` "
            "for everything (with `btledger serve` stopped: export needs the read model file to itself)",
            err=True,
        )


@app.command()
def export(
    # Text, not a Path: typer would turn an empty value into ".", the current directory.
    parquet: Annotated[str, typer.Option("--parquet", help="Directory to write one Parquet file per table.")],
    as_json: JsonFlag = False,
) -> None:
    """Export every read-model table as Parquet, for any tool."""
    from btledger.api import operations

    with errors_to_exit_codes():
        paths = operations.export_parquet(parquet)
    emit([str(p) for p in paths], as_json, lambda ps: typer.echo("\n".join(ps)))


@app.command()
def rebuild(as_json: JsonFlag = False) -> None:
    """Drop and rebuild every read-model table from the first event."""
    from btledger.api import operations

    with errors_to_exit_codes():
        result = operations.rebuild()
    emit(result, as_json, lambda r: typer.echo(f"rebuilt to position {r['position']} in {r['seconds']:.2f} s"))


@app.command("test")
def robustness_test(
    kind: Annotated[str, typer.Argument(help="montecarlo | luck | random")],
    backtest: IdArgument,
    seed: Annotated[int | None, typer.Option(help="Seed (montecarlo, random); drawn and recorded if omitted.")] = None,
    paths: Annotated[int | None, typer.Option(help="Monte Carlo paths.")] = None,
    trades_per_path: Annotated[
        int | None, typer.Option(help="Monte Carlo: trades per path (default: the result's).")
    ] = None,
    ruin_threshold_pct: Annotated[float | None, typer.Option(help="Monte Carlo: ruin = equity this % down.")] = None,
    method: Annotated[str | None, typer.Option(help="Monte Carlo: bootstrap | normal.")] = None,
    percent: Annotated[float | None, typer.Option(help="Luck test: % of trades removed at each end.")] = None,
    runs: Annotated[int | None, typer.Option(help="Random test: random-trader backtests.")] = None,
    iterations: Annotated[int | None, typer.Option(help="Random test: bootstrap resamples.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a robustness test on a result and record it on the result's history."""
    from btledger.api import operations

    given = {
        "seed": seed,
        "paths": paths,
        "trades_per_path": trades_per_path,
        "ruin_threshold_pct": ruin_threshold_pct,
        "method": method,
        "percent": percent,
        "runs": runs,
        "iterations": iterations,
    }
    options = {name: value for name, value in given.items() if value is not None}
    with errors_to_exit_codes():
        result = operations.robustness_test(backtest, kind, options)
    emit(result, as_json, lambda r: render.key_values(r["summary"], title=f"{kind} test {r['test_id'][:8]}"))


# --- the rest -------------------------------------------------------------------------------------


@app.command()
def demo(workers: Annotated[int | None, typer.Option(help=WORKERS_HELP)] = None) -> None:
    """Run a sample batch on the embedded default (SQLite events + DuckDB read model) and show what it gives."""
    from btledger.api import operations

    with errors_to_exit_codes():
        operations.demo(workers)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")] = 8000,
    workers: Annotated[int | None, typer.Option(help=WORKERS_HELP)] = None,
) -> None:
    """Serve the HTTP API (and own the read model) until interrupted. Set BTLEDGER_API_TOKEN to require a
    bearer token on every mutation."""
    from btledger.api.http.app import serve as serve_http

    with errors_to_exit_codes():
        serve_http(host=host, port=port, workers=workers)


def main() -> None:
    app()
