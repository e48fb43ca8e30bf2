"""Orders that backtesting.py's broker cancelled for lack of margin, counted per run.

backtesting.py's broker (`_Broker._process_orders`) drops an order it cannot fund and says so only with
a UserWarning, one per order: "Broker canceled the relative-sized order due to insufficient margin" (a
size given as a fraction of the margin left that buys not one unit) and "Broker canceled the order due
to insufficient margin" (more units than the margin left covers). The result then reads as if the
strategy had traded as it meant to. The library has no hook for it, and `warnings.catch_warnings`
swaps the process's filters and `showwarning`, which two runs on two threads (the server runs random
tests in a thread pool) would restore out of order, leaving one's filter in force for good.

So, as `lean_stats` does for `compute_stats`, importing this module gives backtesting.py's module its
own `warnings`: the real module but for `warn`, which, inside `counting_margin_cancels()` in the calling
thread (or task), counts those two messages instead of emitting them (the result carries the count), and
hands every other warning, and these outside the block, to the real `warnings.warn` as the line of
backtesting.py that raised it: same filters, same registry, same text.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import backtesting.backtesting as library

#: The two messages of `_process_orders` that drop an order for lack of margin, and nothing else.
_CANCELLED = re.compile(r"Broker canceled the (?:relative-sized )?order due to insufficient margin")


@dataclass
class MarginCancels:
    """The orders cancelled so far in the block that made it."""

    count: int = 0


_counter: ContextVar[MarginCancels | None] = ContextVar("btledger_margin_cancels", default=None)


class _LibraryWarnings:
    """The `warnings` module as backtesting.py's module sees it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(warnings, name)

    @staticmethod
    def warn(
        message: str | Warning,
        category: type[Warning] | None = None,
        stacklevel: int = 1,
        source: Any = None,
        **options: Any,
    ) -> None:
        counter = _counter.get()
        if counter is not None and _CANCELLED.search(str(message)):
            counter.count += 1
            return
        # One level more: the warning is attributed to backtesting.py's line, as without this module.
        warnings.warn(message, category, stacklevel + 1, source, **options)


library.warnings = _LibraryWarnings()


@contextmanager
def counting_margin_cancels() -> Iterator[MarginCancels]:
    """Within the block, count (and do not emit) the orders backtesting.py cancels for lack of margin in
    this thread (or task); `.count` holds them."""
    counter = MarginCancels()
    token = _counter.set(counter)
    try:
        yield counter
    finally:
        _counter.reset(token)
