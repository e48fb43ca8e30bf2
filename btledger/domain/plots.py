"""Plot files: where a run writes its plot, which file is a result's, and a plot for any live result.

A result run with a plot (`plot` persist or temp) recorded its file's path. Any other live result is
plotted on demand: its recorded key is run again with backtesting.py's plot, and the file is kept only
when the re-run found the inputs the result was recorded with (data and strategy fingerprints, costs:
`audit.changed_input`), so the plot shows the recorded result. Such a file is named after the result's
version (the version of its `ResultRecorded` event), so a rerun's result never gets an earlier run's file.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from tempfile import TemporaryDirectory
from uuid import UUID

from btledger.domain.audit import Change, changed_input
from btledger.domain.errors import Conflict, NotFound
from btledger.domain.ledger import Ledger
from btledger.engine.errors import SpecError
from btledger.engine.result import BacktestOutcome

#: backtesting.py writes a plot through bokeh's process-wide output state: one render at a time.
_rendering = threading.Lock()


def plot_path(home: Path, mode: str, backtest: UUID) -> Path | None:
    """Where a run's HTML plot goes: `plots/` to keep, `plots/temp/` for a throw-away look."""
    if mode == "persist":
        return home / "plots" / f"{backtest}.html"
    if mode == "temp":
        return home / "plots" / "temp" / f"{backtest}.html"
    return None


def recorded_plot(home: Path, backtest: UUID, recorded: str | None) -> Path | None:
    """The plot file of a result that recorded the path `recorded`: that file, else (the data directory
    has moved) its namesake under `home`; None when the result made no plot or the file is gone.

    Chosen by the result, not by its id: a rerun without a plot leaves the previous run's file on disk.
    """
    if recorded is None:
        return None
    mode = "temp" if Path(recorded).parent.name == "temp" else "persist"
    for path in (Path(recorded), plot_path(home, mode, backtest)):
        if path is not None and path.is_file():
            return path
    return None


def live_plot(ledger: Ledger, home: Path, backtest: UUID) -> Path:
    """The plot file of `backtest`'s live result: the one it recorded if the file is still there, else one
    rendered from its recorded key (0.5–0.8 s for a sample result, mostly backtesting.py's plot) and kept.

    Raises `NotFound` when it has no live result (deleted, failed, pending) and `Conflict` when the key
    cannot be re-run as it was recorded: a changed input, or a refusal of the key by the current code or data.
    """
    aggregate = ledger.get(backtest)
    recorded = aggregate.outcome
    if aggregate.status != "recorded" or recorded is None:
        raise NotFound(f"backtest {backtest} is {aggregate.status}: it has no live result to plot")
    if (path := recorded_plot(home, backtest, recorded.plot_path)) is not None:
        return path
    target = home / "plots" / f"{backtest}-v{ledger.result_version(aggregate)}.html"
    if target.is_file():
        return target
    from btledger.engine import run_backtest  # backtesting.py and pandas load only when a plot is rendered

    target.parent.mkdir(parents=True, exist_ok=True)
    with _rendering:
        if target.is_file():  # rendered by a concurrent request meanwhile
            return target
        # Written aside and moved in whole: another process never serves half a file, nor one refused.
        with TemporaryDirectory(prefix=".rendering-", dir=target.parent) as scratch:
            draft = Path(scratch) / target.name
            try:
                current = run_backtest(aggregate.spec, plot_path=draft)
            except SpecError as error:
                raise Conflict(f"backtest {backtest} cannot be run again to plot it: {error}", field="id") from None
            if (change := changed_input(recorded, current)) is not None:
                raise Conflict(_refusal(backtest, change, recorded, current), field="id")
            os.replace(draft, target)
    for earlier in target.parent.glob(f"{backtest}-v*.html"):  # plots of the results this one replaced
        if earlier != target:
            earlier.unlink(missing_ok=True)
    return target


def _refusal(backtest: UUID, change: Change, recorded: BacktestOutcome, current: BacktestOutcome) -> str:
    if change == "costs_changed":
        names = sorted(set(recorded.costs) | set(current.costs))
        how = [(name, recorded.costs.get(name), current.costs.get(name)) for name in names]
        why = "its costs (the instruments config)"
    else:
        name = "data_fingerprint" if change == "data_changed" else "strategy_fingerprint"
        why = "its data" if change == "data_changed" else "its strategy's code"
        # Enough of each fingerprint to tell them apart.
        how = [(name, f"{getattr(recorded, name)[:12]}…", f"{getattr(current, name)[:12]}…")]
    changes = "; ".join(f"{name} was {was}, is now {now}" for name, was, now in how if was != now)
    return (
        f"backtest {backtest} cannot be plotted as recorded: {why} changed since it ran ({changes}); "
        "a rerun (--rerun in the CLI) records a result on the current inputs, which can be plotted"
    )
