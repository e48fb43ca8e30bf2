"""The ledger application: the one source of truth. Its methods are the commands.

Events go to an `eventsourcing` store: a SQLite file under the data directory by default, or
PostgreSQL when `PERSISTENCE_MODULE=eventsourcing.postgres` and the library's POSTGRES_* keys are
set. Every command that changes a result reloads it and retries on the library's concurrency
error, so two writers racing on one result never lose a toggle or a deletion.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, overload
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import MutableOrImmutableAggregate
from eventsourcing.persistence import (
    ApplicationRecorder,
    EventStore,
    InfrastructureFactory,
    IntegrityError,
    JSONTranscoder,
    PersistenceError,
    Transcoder,
    Transcoding,
)
from eventsourcing.sqlite import SQLITE3_DEFAULT_LOCK_TIMEOUT, SQLiteAggregateRecorder, SQLiteFactory
from eventsourcing.utils import get_topic, retry

from btledger.domain.backtest import MAX_REASON_LENGTH, STRATEGY_DELETED, Backtest, backtest_id
from btledger.domain.errors import Conflict, InvalidInput, NotFound, StoreUnavailable
from btledger.domain.transcoder import MsgspecJSONTranscoder
from btledger.engine.result import BacktestOutcome, RunSpec

T = TypeVar("T")

#: Concurrency retries: enough for 8 writers hammering one result (measured: < 20 conflicts per toggle).
_retry_on_conflict = retry(IntegrityError, max_attempts=50, wait=0.002)

#: What creating PostgreSQL tables (and their row types) raises when another session creates them at the same
#: moment, as processes starting at once on a fresh database do: `IF NOT EXISTS` does not guard against that.
#: A duplicate key in the catalogue, a duplicate table or object, "tuple concurrently updated".
_CONCURRENT_CREATION_SQLSTATES = frozenset({"23505", "42P07", "42710", "XX000"})


def _created_despite_a_race(construct: Callable[[], T]) -> T:
    """`construct()`, tried again while it fails because another session creates the same tables: once they
    are committed, creating them again finds them."""
    attempts = 1
    while True:
        try:
            return construct()
        except PersistenceError as error:
            if getattr(error.__cause__, "sqlstate", None) not in _CONCURRENT_CREATION_SQLSTATES or attempts == 20:
                raise
        attempts += 1
        time.sleep(0.05)


def _prepare_store(factory: InfrastructureFactory[Any]) -> None:
    """What the library's connection pools do unsafely on their first connection, done once before them."""
    module = type(factory).__module__
    if module == "eventsourcing.postgres":
        _connect_once(factory)
    elif module == "eventsourcing.sqlite":
        _switch_to_wal_despite_a_race(factory)


def _switch_to_wal_despite_a_race(factory: InfrastructureFactory[Any]) -> None:
    """SQLite: put the file in WAL mode, tried again while another connection holds it. The pool's first
    connection does this too, but SQLite answers "database is locked" at once, not after the busy timeout,
    when another connection is switching the same fresh file or creating its tables (measured: 4 ledgers
    opening a fresh file at once failed in 4 % of rounds on threads, 40 % on processes). Once the file is in
    WAL mode the pool only reads the mode."""
    assert isinstance(factory, SQLiteFactory)
    pool = factory.datastore.pool
    if pool.is_sqlite_memory_mode:
        return
    lock_timeout = pool.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT
    deadline = time.monotonic() + lock_timeout
    with closing(sqlite3.connect(pool.db_name, uri=True, timeout=lock_timeout)) as connection:
        while True:
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
            time.sleep(0.01)


def _connect_once(factory: InfrastructureFactory[Any]) -> None:
    """PostgreSQL: connect once, directly, before the library's pool does, and raise `StoreUnavailable` with
    the server's own reason. The pool retries a refused connection, a missing database or rejected
    credentials until POSTGRES_CONNECT_TIMEOUT (30 s) has passed, then says only that it "couldn't get a
    connection". One connection more per process start (a few ms on a local server)."""
    import psycopg  # the postgres extra's: imported only when it is configured
    from eventsourcing.postgres import PostgresFactory

    assert isinstance(factory, PostgresFactory)
    pool = factory.datastore.pool
    # psycopg_pool takes either as a callable too (a value per connection); the factory gives plain ones.
    settings = dict((pool.kwargs() if callable(pool.kwargs) else pool.kwargs) or {})
    conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo
    if pool.get_password_func is not None:
        settings["password"] = pool.get_password_func()
    try:
        psycopg.connect(conninfo, connect_timeout=max(1, round(pool.timeout)), **settings).close()
    except psycopg.Error as error:
        where = f"{settings.get('user')}@{settings.get('host')}:{settings.get('port')}/{settings.get('dbname')}"
        reason = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        raise StoreUnavailable(
            f"event store: cannot connect to PostgreSQL {where} (POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DBNAME, "
            f"POSTGRES_USER, POSTGRES_PASSWORD): {reason}"
        ) from None


#: How many of the ids an ambiguous prefix matches its refusal lists.
_AMBIGUOUS_SHOWN = 10

REGISTERED_TOPIC = get_topic(Backtest.Registered)
RESULT_TOPIC = get_topic(Backtest.ResultRecorded)


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class RunSpecAsDict(Transcoding):
    """Snapshots hold the aggregate's state, which includes its key."""

    type = RunSpec
    name = "run_spec"

    def encode(self, obj: RunSpec) -> dict[str, Any]:
        return obj.to_json()

    def decode(self, data: dict[str, Any]) -> RunSpec:
        return RunSpec.from_json(data)


class OutcomeAsDict(Transcoding):
    """Snapshots hold the aggregate's current result."""

    type = BacktestOutcome
    name = "backtest_outcome"

    def encode(self, obj: BacktestOutcome) -> dict[str, Any]:
        return obj.to_json()

    def decode(self, data: dict[str, Any]) -> BacktestOutcome:
        return BacktestOutcome.from_json(data)


def store_env(home: Path) -> dict[str, str]:
    """Persistence settings: PostgreSQL when the environment selects it, else a SQLite file in `home`."""
    if os.environ.get("PERSISTENCE_MODULE", "").endswith("postgres"):
        return {}
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(home / "events.sqlite"),
        "SQLITE_LOCK_TIMEOUT": "30",
    }


@dataclass(frozen=True)
class HistoryEntry:
    position: int
    version: int
    event_type: str
    recorded_at: datetime
    payload: dict[str, Any]


class Ledger(Application[UUID]):
    """Commands over backtest results. Each mutating command returns the notification position of
    its last event, which read models wait for (read-your-writes)."""

    name = "Ledger"
    #: A result toggled or tested many times replays from its latest snapshot, not from event 1.
    snapshotting_intervals: ClassVar[dict[type[MutableOrImmutableAggregate[Any]], int]] = {Backtest: 50}

    def construct_recorder(self) -> ApplicationRecorder:
        _prepare_store(self.factory)
        return _created_despite_a_race(super().construct_recorder)

    def construct_snapshot_store(self) -> EventStore[UUID]:
        return _created_despite_a_race(super().construct_snapshot_store)

    def construct_transcoder(self) -> Transcoder:
        transcoder = MsgspecJSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())
        transcoder.register(RunSpecAsDict())
        transcoder.register(OutcomeAsDict())

    # --- queries on the write side ---------------------------------------------------------------

    def find(self, spec: RunSpec) -> Backtest | None:
        try:
            return self.repository.get(backtest_id(spec))
        except AggregateNotFoundError:
            return None

    def get(self, backtest: UUID) -> Backtest:
        try:
            return self.repository.get(backtest)
        except AggregateNotFoundError:
            raise NotFound(f"no backtest with id {backtest}") from None

    def backtest_ids(self) -> Iterator[UUID]:
        """Every backtest id ever registered, in registration order (reads ids, decodes nothing)."""
        position = 0
        while True:
            page = self.recorder.select_notifications(
                start=position, limit=1000, topics=[REGISTERED_TOPIC], inclusive_of_start=False
            )
            if not page:
                return
            for notification in page:
                yield UUID(str(notification.originator_id))
            position = page[-1].id

    def registrations(self) -> Iterator[Backtest.Registered]:
        """Every Registered event (the keys), in order."""
        position = 0
        while True:
            page = self.recorder.select_notifications(
                start=position, limit=1000, topics=[REGISTERED_TOPIC], inclusive_of_start=False
            )
            if not page:
                return
            for notification in page:
                event = self.mapper.to_domain_event(notification)
                assert isinstance(event, Backtest.Registered)  # the topic filter selects nothing else
                yield event
            position = page[-1].id

    def resolve(self, id_or_prefix: str) -> UUID:
        """The backtest whose id is `id_or_prefix` or starts with it (a unique prefix of ≥ 4 hex digits)."""
        text = id_or_prefix.strip().lower()
        try:
            full = UUID(text)
        except ValueError:
            full = None
        if full is not None:
            if full not in self.repository:
                raise NotFound(f"no backtest with id {full}")
            return full
        if len(text) < 4 or any(c not in "0123456789abcdef-" for c in text):
            raise NotFound(f"{id_or_prefix!r} is not a backtest id or an id prefix of at least 4 hex digits")
        matches = [i for i in self.backtest_ids() if str(i).startswith(text)]
        if not matches:
            raise NotFound(f"no backtest id starts with {text!r}")
        if len(matches) > 1:
            # Named, so a person can pick one: even among a million ids a 4-digit prefix matches about 15.
            named = sorted(map(str, matches))
            listed = ", ".join(named[:_AMBIGUOUS_SHOWN]) + (
                f", and {len(named) - _AMBIGUOUS_SHOWN} more" if len(named) > _AMBIGUOUS_SHOWN else ""
            )
            raise NotFound(f"id prefix {text!r} is ambiguous: it matches {len(matches)} backtests ({listed})")
        return matches[0]

    def history(self, backtest: UUID) -> list[HistoryEntry]:
        """Every event of one result, in order, with its position in the ledger."""
        stored = self.recorder.select_events(backtest)
        if not stored:
            raise NotFound(f"no backtest with id {backtest}")
        positions = self._positions_of(backtest)
        entries = []
        for stored_event in stored:
            domain_event = self.mapper.to_domain_event(stored_event)
            assert isinstance(domain_event, Backtest.Event)  # the aggregate's events table holds nothing else
            payload = {
                k: v
                for k, v in domain_event.__dict__.items()
                if k not in ("originator_id", "originator_version", "timestamp", "originator_topic")
            }
            entries.append(
                HistoryEntry(
                    position=positions[stored_event.originator_version],
                    version=stored_event.originator_version,
                    event_type=type(domain_event).__qualname__.split(".")[-1],
                    recorded_at=domain_event.timestamp,
                    payload=payload,
                )
            )
        return entries

    def result_version(self, backtest: Backtest) -> int:
        """The version of the event that recorded `backtest`'s current result, as that aggregate was loaded:
        each run (a rerun too) has its own, where the aggregate's version also moves on every decision."""
        for stored in self.recorder.select_events(backtest.id, lte=backtest.version, desc=True):
            if stored.topic == RESULT_TOPIC:
                return stored.originator_version
        raise Conflict(f"backtest {backtest.id} has no recorded result", field="id")

    def _positions_of(self, backtest: UUID) -> dict[int, int]:
        """Notification positions of one aggregate's events, by version."""
        rows = self._select_events_of(
            "SELECT {position}, originator_version FROM {table} WHERE originator_id IN ({ids})", [backtest]
        )
        return {int(version): int(position) for position, version in rows}

    def recorded_ids(self, ids: Collection[UUID]) -> set[UUID]:
        """Which of `ids` have events: a batch plans its combinations with one query per 500, where a
        `find` per combination would look for a snapshot and then for events."""
        wanted = list(ids)
        found: set[UUID] = set()
        for start in range(0, len(wanted), 500):
            rows = self._select_events_of(
                "SELECT DISTINCT originator_id FROM {table} WHERE originator_id IN ({ids})", wanted[start : start + 500]
            )
            found.update(UUID(str(originator_id)) for (originator_id,) in rows)
        return found

    def _select_events_of(self, sql: str, ids: list[UUID]) -> list[tuple[Any, ...]]:
        """Rows of `sql` on the stored events of `ids`: `{table}`, `{position}` and `{ids}` are filled in.

        The library's recorders expose no such queries, so ask the table directly: SQLite keeps ids as
        hex text and the position in `rowid`; PostgreSQL keeps uuids and the position in `notification_id`.
        """
        table = self.recorder.events_table_name  # type: ignore[attr-defined]
        params: list[str] | list[UUID]
        if isinstance(self.recorder, SQLiteAggregateRecorder):
            position, mark, params = "rowid", "?", [i.hex for i in ids]
        else:
            position, mark, params = "notification_id", "%s", list(ids)
        text = sql.format(table=table, position=position, ids=", ".join([mark] * len(ids)))
        with self.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
            cursor.execute(text, params)
            return [tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in cursor.fetchall()]

    def head(self) -> int:
        """The position of the newest event in the ledger (0 when empty)."""
        return self.recorder.max_notification_id() or 0

    # --- commands ------------------------------------------------------------------------------

    def _save(self, *aggregates: Backtest) -> int:
        recordings = self.save(*aggregates)
        return recordings[-1].notification.id if recordings else self.head()

    # Without `if_absent=True` a run is always appended, so its id and position are not optional.
    @overload
    def record_outcome(
        self, spec: RunSpec, outcome: BacktestOutcome, *, new: bool = False, if_absent: Literal[False] = False
    ) -> tuple[UUID, int]: ...

    @overload
    def record_outcome(
        self, spec: RunSpec, outcome: BacktestOutcome, *, new: bool = False, if_absent: bool
    ) -> tuple[UUID, int] | None: ...

    def record_outcome(
        self, spec: RunSpec, outcome: BacktestOutcome, *, new: bool = False, if_absent: bool = False
    ) -> tuple[UUID, int] | None:
        """Append a result for `spec`, registering the key first if it is new; returns its id and position.

        `new`: the caller found no events for the key (a batch's plan), so the first attempt skips
        looking it up; if another writer registered it meanwhile, that save conflicts and the retry looks.
        `if_absent`: append nothing, and return None, when the key is settled (a live result, or deleted),
        e.g. by another writer since the caller planned the run.
        """
        return self._append_run(spec, lambda backtest: backtest.record_result(outcome), new, if_absent)

    @overload
    def record_failure(
        self, spec: RunSpec, error: str, *, new: bool = False, if_absent: Literal[False] = False
    ) -> tuple[UUID, int]: ...

    @overload
    def record_failure(
        self, spec: RunSpec, error: str, *, new: bool = False, if_absent: bool
    ) -> tuple[UUID, int] | None: ...

    def record_failure(
        self, spec: RunSpec, error: str, *, new: bool = False, if_absent: bool = False
    ) -> tuple[UUID, int] | None:
        """Append a failed run for `spec` (the error, cut to 4,000 characters); the flags as for `record_outcome`."""
        return self._append_run(spec, lambda backtest: backtest.record_failure(error=error[:4000]), new, if_absent)

    def _append_run(
        self, spec: RunSpec, record: Callable[[Backtest], None], new: bool, if_absent: bool
    ) -> tuple[UUID, int] | None:
        attempts = 0

        @_retry_on_conflict
        def attempt() -> tuple[UUID, int] | None:
            nonlocal attempts
            attempts += 1
            backtest = (None if new and attempts == 1 else self.find(spec)) or Backtest.register(spec)
            if if_absent and backtest.settled:
                return None
            record(backtest)
            return backtest.id, self._save(backtest)

        return attempt()

    def _change(self, backtest: UUID, change: Callable[[Backtest], T]) -> tuple[T, int]:
        @_retry_on_conflict
        def attempt() -> tuple[T, int]:
            aggregate = self.get(backtest)
            value = change(aggregate)
            return value, self._save(aggregate)

        return attempt()

    def toggle_favorite(self, backtest: UUID) -> tuple[bool, int]:
        """Flip the favourite flag; returns the resulting value and the event's position."""

        def toggle(aggregate: Backtest) -> bool:
            # First: a deleted key whose runs all failed would have no result to mark once restored either.
            if aggregate.outcome is None:
                raise Conflict(f"backtest {backtest} has no result to mark", field="id")
            if aggregate.deleted:
                raise Conflict(f"backtest {backtest} is deleted; restore it first", field="id")
            return aggregate.toggle_favorite()

        return self._change(backtest, toggle)

    def delete(self, backtest: UUID, reason: str = "deleted by user") -> int:
        """Delete a live result, or a key whose runs all failed (batches then skip it unless rerun)."""
        if not 1 <= len(reason) <= MAX_REASON_LENGTH:
            raise InvalidInput("reason", f"must be 1 to {MAX_REASON_LENGTH} characters long, got {len(reason)}")
        if not reason.strip():
            raise InvalidInput("reason", "must say something, got only spaces")

        def delete(aggregate: Backtest) -> None:
            if aggregate.deleted:
                raise Conflict(f"backtest {backtest} is already deleted", field="id")
            if not aggregate.deletable:
                raise Conflict(f"backtest {backtest} has not run yet: nothing to delete", field="id")
            aggregate.delete(reason=reason)

        return self._change(backtest, delete)[1]

    def restore(self, backtest: UUID) -> int:
        def restore(aggregate: Backtest) -> None:
            if not aggregate.deleted:
                raise Conflict(f"backtest {backtest} is not deleted", field="id")
            aggregate.restore()

        return self._change(backtest, restore)[1]

    @_retry_on_conflict
    def delete_strategy(self, strategy: str) -> tuple[list[UUID], int]:
        """Delete every live result of `strategy`, and every key of it whose runs all failed (so its
        batches stop retrying them), in one atomic save."""
        ids = {e.originator_id for e in self.registrations() if e.strategy == strategy}
        deletable = [b for b in (self.get(i) for i in ids) if b.deletable]
        at = Backtest.Deleted.create_timestamp()
        for aggregate in deletable:
            aggregate.delete_at(STRATEGY_DELETED, at)
        if not deletable:
            return [], self.head()
        return [b.id for b in deletable], self._save(*deletable)

    def record_robustness_test(
        self,
        backtest: UUID,
        *,
        test_id: str,
        kind: str,
        parameters: dict[str, Any],
        seed: int,
        summary: dict[str, Any],
        metrics: dict[str, Any],
    ) -> int:
        def record(aggregate: Backtest) -> None:
            if aggregate.status != "recorded":
                raise Conflict(f"backtest {backtest} has no live result to test", field="id")
            aggregate.record_robustness_test(
                test_id=test_id, kind=kind, parameters=parameters, seed=seed, summary=summary, metrics=metrics
            )

        return self._change(backtest, record)[1]
