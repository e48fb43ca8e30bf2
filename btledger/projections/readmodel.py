"""The DuckDB read model: one file, owned by one process, kept exactly-once in step with the ledger.

Exactly-once: each batch of notifications is applied in ONE DuckDB transaction that also advances
the tracking row in `projection_positions` with a monotonic upsert (a position that does not move
forward returns no row and rolls the batch back). After a crash at any point, the file holds the
rows of exactly the batches whose positions it holds, and the next catch-up resumes from there.

Threads: one writer (the projector, under `_write_lock`) and any number of readers, each with its
own `cursor()`. Processes: DuckDB lets one process hold the file; any other gets `ReadModelLocked`.
"""

from __future__ import annotations

import gc
import logging
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
from eventsourcing.persistence import Notification

from btledger import config
from btledger.engine.errors import describe
from btledger.projections import schema as s
from btledger.projections.events import Decoder, LedgerEvent, event_type_of
from btledger.projections.projector import (
    EventBatch,
    arrow_table,
    insert_ledger_events,
    over_frame,
    payload_array,
    project_batch,
)

if TYPE_CHECKING:
    from btledger.domain.ledger import Ledger

log = logging.getLogger(__name__)

#: The tracking row's name (the upstream application's name).
PROJECTION = "Ledger"
#: Events per batch: each batch costs a dozen statements whatever its size, so bigger batches pay less
#: (a 10k-result rebuild: 11 s in batches of 500, 9.5 s in batches of 4,000).
DEFAULT_BATCH_SIZE = 4000
#: Stops a batch early once its stored payloads reach this size (bounds memory on trade-heavy results;
#: a rebuild holds two batches, the one it writes and the one it reads ahead).
DEFAULT_BATCH_BYTES = 128 * 1024 * 1024
#: A rebuild commits once its transaction holds this much stored payload (bounds what DuckDB keeps for it).
DEFAULT_REBUILD_BYTES = 512 * 1024 * 1024
#: Trade-heavy batches write tens of MB each: checkpointing at the 16 MB default after every one doubled
#: the cost of a commit. Committed batches are safe in the WAL meanwhile.
CHECKPOINT_THRESHOLD = "256MB"
#: A DuckDB file starts with three 4 KiB headers (the file's, then two alternating database headers).
_FILE_HEADERS = 3 * 4096


class ReadModelError(RuntimeError):
    """The read model cannot be used as asked."""


class ReadModelLocked(ReadModelError):
    """Another process owns the DuckDB file."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"process {pid}{_describe_process(pid)}" if pid else "another process"
        super().__init__(
            f"The read model {path} is in use by {holder}. DuckDB lets one process own the file at a "
            "time. Stop that process (e.g. a running `btledger serve`) and try again, or send queries to "
            "the server's HTTP API (`POST /sql`)."
        )
        self.path, self.pid = path, pid


class PositionConflict(ReadModelError):
    """A batch tried to record a position that is not past the stored one (a duplicate apply)."""


def _describe_process(pid: int | None) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""
    return f" ({cmdline[:120]})" if cmdline else ""


#: Failures of the machinery rather than of an event: propagate (and retry) instead of parking events.
_INFRASTRUCTURE_ERRORS = (
    duckdb.IOException,
    duckdb.TransactionException,
    duckdb.InterruptException,
    duckdb.FatalException,
    PositionConflict,
    OSError,
    MemoryError,
)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: for a bulk load's millions of short-lived, acyclic objects.

    Their allocations set off a full collection every ~70,000 of them, each a pass over the whole
    heap (pandas, pyarrow, ...): 10 % of a rebuild. Reference counting still frees them. The switch
    is process-wide: other threads' cycles wait until the end; a collector already off stays off.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


@contextmanager
def transaction(cur: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT, or ROLLBACK on any exception."""
    cur.execute("BEGIN TRANSACTION")
    try:
        yield cur
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")


def _wal(path: Path) -> Path:
    """DuckDB's write-ahead log of the database file at `path`."""
    return path.with_name(path.name + ".wal")


#: How DuckDB reports a block that is missing from the file or fails its checksum.
_DAMAGE_MESSAGES = ("Corrupt database file", "Could not read enough bytes")


def damage_in(error: BaseException) -> str | None:
    """DuckDB's first line when `error` says the read model's file is damaged, else None.

    A block that fails its checksum is found only when a query reads it; `rebuild` replaces every table.
    """
    if isinstance(error, duckdb.Error) and any(message in str(error) for message in _DAMAGE_MESSAGES):
        return str(error).splitlines()[0]
    return None


def _cut_short(con: duckdb.DuckDBPyConnection, path: Path) -> str | None:
    """Why the file lacks blocks it uses, or None when it holds them all.

    DuckDB opens a file cut short past its catalog, and only its first read of a missing block fails:
    every query, until the file is replaced. A file as long as its header's block count is whole; one
    shorter may only have lost free blocks (a checkpoint cuts them off the end), so then the blocks
    the catalog and the tables use decide (35-70 ms on a 100k-result read model, against 0.5).
    """
    [(blocks, block_size)] = con.execute("SELECT total_blocks, block_size FROM pragma_database_size()").fetchall()
    on_disk = (path.stat().st_size - _FILE_HEADERS) // block_size
    if on_disk >= blocks:
        return None
    try:
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
        )
        used = [
            "SELECT max(block_id) AS block FROM pragma_metadata_info()",
            *(
                f"SELECT max(block_id) FROM pragma_storage_info('{schema}.{table}')"
                for schema, table in tables.fetchall()
            ),
        ]
        [(last,)] = con.execute(f"SELECT max(block) FROM ({' UNION ALL '.join(used)})").fetchall()
    except duckdb.Error as error:  # the catalog's own blocks are gone
        return f"is cut short ({str(error).splitlines()[0]})"
    missing = (last or 0) + 1 - on_disk
    return f"lacks {missing} of the blocks it uses (cut short)" if missing > 0 else None


class ReadModel:
    """The read-model database file: projection (catch-up, rebuild), read cursors, exports."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        path: Path,
        timeframes: config.Timeframes,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        rebuild_bytes: int = DEFAULT_REBUILD_BYTES,
        notice: str | None = None,
    ) -> None:
        self._con, self.path, self.timeframes = con, path, timeframes
        self.batch_size, self.batch_bytes, self.rebuild_bytes = batch_size, batch_bytes, rebuild_bytes
        #: Why the file was (re)created on open, if it was: for the CLI/API to tell the user.
        self.notice = notice
        self._write_lock = threading.RLock()
        self._writer = con.cursor()
        self._advanced = threading.Condition()
        self._schema, self._stale = self._initialise()
        self._position = 0 if self._stale else self._stored_position(self._writer, self._schema)

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path | str | None = None,
        *,
        timeframes: config.Timeframes | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        rebuild_bytes: int = DEFAULT_REBUILD_BYTES,
    ) -> ReadModel:
        """Open (or create) the read model at `path` (default: `<home>/readmodel.duckdb`).

        Raises `ReadModelLocked` when another process holds the file, and ValueError for a file named like
        the read model's schemas (`rm1.duckdb`). A file DuckDB cannot read, or one cut short, is moved aside
        (`*.corrupt-<time>`) and a fresh one is built from the events at the next catch-up; `notice` says so.
        """
        path = Path(path) if path is not None else config.home() / "readmodel.duckdb"
        if re.fullmatch(rf"{s.SCHEMA_PREFIX}[0-9]+", path.stem):
            # DuckDB names the database after the file: `rm1.backtests` would then be ambiguous.
            raise ValueError(
                f"path: {path.name} cannot hold a read model: its name is that of the read model's schemas"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        notice = None if path.exists() else f"read model {path} not found: building it from the ledger"
        # Only a file already written, with no WAL to replay, has every block it uses on disk.
        settled = notice is None and not _wal(path).exists()
        if notice:  # a warning, like a corrupt file below, so the CLI shows it on stderr
            log.warning(notice)
        try:
            con = duckdb.connect(str(path))
        except duckdb.Error as error:
            message = str(error)
            if "Could not set lock on file" in message:  # not just "lock": a corrupt header's error says "block"
                match = re.search(r"PID (\d+)", message)
                raise ReadModelLocked(path, int(match.group(1)) if match else None) from None
            if not path.exists() or "permission" in message.lower():
                raise
            notice = cls._set_aside(path, f"could not be opened ({message.splitlines()[0]})")
            con = duckdb.connect(str(path))
        else:
            if settled and (problem := _cut_short(con, path)):
                con.close()
                notice = cls._set_aside(path, problem)
                con = duckdb.connect(str(path))
        con.execute("SET GLOBAL TimeZone = 'UTC'")  # every cursor shows times in UTC
        con.execute(f"SET GLOBAL checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
        return cls(
            con,
            path,
            timeframes if timeframes is not None else config.load_timeframes(),
            batch_size=batch_size,
            batch_bytes=batch_bytes,
            rebuild_bytes=rebuild_bytes,
            notice=notice,
        )

    @staticmethod
    def _set_aside(path: Path, problem: str) -> str:
        """Move a damaged file (and its WAL) to `*.corrupt-<time>`; the notice that says so."""
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        path.rename(aside)
        if _wal(path).exists():
            _wal(path).rename(_wal(aside))
        notice = f"read model {path} {problem}; moved it to {aside} and rebuilding from the ledger"
        log.warning(notice)
        return notice

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> ReadModel:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _initialise(self) -> tuple[str, bool]:
        """The live schema (created on a new file) and whether its layout is out of date."""
        cur = self._writer
        with self._write_lock, transaction(cur):
            cur.execute(f"CREATE TABLE IF NOT EXISTS {s.META_TABLE} (schema_name VARCHAR, layout VARCHAR)")
            row = cur.execute(f"SELECT schema_name, layout FROM {s.META_TABLE}").fetchall()
            if row:
                schema, layout = row[0]
            else:
                schema, layout = s.schema_name(1), s.LAYOUT_FINGERPRINT
                self._create(cur, schema)
                self._serve(cur, schema)
            for leftover in self._schemas(cur):
                if leftover != schema:  # a rebuild that never finished
                    cur.execute(f"DROP SCHEMA {leftover} CASCADE")
            if layout == s.LAYOUT_FINGERPRINT:
                self._load_timeframes(cur, schema)
        stale = layout != s.LAYOUT_FINGERPRINT
        if stale:
            log.warning("read model %s was built by another version of its tables; rebuilding", self.path)
        return schema, stale

    @staticmethod
    def _schemas(cur: duckdb.DuckDBPyConnection) -> list[str]:
        rows = cur.execute(
            "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database() "
            "AND regexp_matches(schema_name, ?)",
            [f"^{s.SCHEMA_PREFIX}[0-9]+$"],
        ).fetchall()
        return [name for (name,) in rows]

    def _create(self, cur: duckdb.DuckDBPyConnection, schema: str) -> None:
        cur.execute(f"CREATE SCHEMA {schema}")
        for table in s.TABLES:
            cur.execute(table.ddl(schema))
        self._load_timeframes(cur, schema)

    def _load_timeframes(self, cur: duckdb.DuckDBPyConnection, schema: str) -> None:
        """Make the `timeframes` table the configuration's; unchanged, it is left alone, so that opening
        the file to read writes nothing (each command's close then has nothing to checkpoint)."""
        rows = [tf.model_dump(include={"name", "minutes", "selected"}) for tf in self.timeframes.timeframes]
        stored = cur.execute(f"SELECT name, minutes, selected FROM {schema}.timeframes").fetchall()
        if sorted(stored) == sorted((row["name"], row["minutes"], row["selected"]) for row in rows):
            return
        cur.execute(f"DELETE FROM {schema}.timeframes")
        over_frame(
            cur, arrow_table(s.TIMEFRAMES, rows), f"INSERT INTO {schema}.timeframes BY NAME SELECT * FROM batch_rows"
        )

    @staticmethod
    def _serve(cur: duckdb.DuckDBPyConnection, schema: str) -> None:
        """Point every view in `main` at `schema` and record it as the live build."""
        for table in s.TABLES:
            cur.execute(f"CREATE OR REPLACE VIEW {s.VIEW_SCHEMA}.{table.name} AS SELECT * FROM {schema}.{table.name}")
        names = {table.name for table in s.TABLES}
        for (view,) in cur.execute(
            "SELECT view_name FROM duckdb_views() WHERE schema_name = ? AND NOT internal", [s.VIEW_SCHEMA]
        ).fetchall():
            if view not in names:
                cur.execute(f"DROP VIEW {s.VIEW_SCHEMA}.{view}")
        cur.execute(f"DELETE FROM {s.META_TABLE}")
        cur.execute(f"INSERT INTO {s.META_TABLE} VALUES (?, ?)", [schema, s.LAYOUT_FINGERPRINT])

    # --- reading ---------------------------------------------------------------------------------

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new cursor for one reader thread or request (queries see committed batches only)."""
        return self._con.cursor()

    def position(self) -> int:
        """The last ledger position applied."""
        return self._position

    def lag(self, ledger: Ledger) -> int:
        """How many positions the ledger's head is beyond the projection: its events there, or more on
        PostgreSQL, whose positions skip the numbers of saves that conflicted."""
        return max(ledger.head() - self._position, 0)

    def wait_for(self, position: int, timeout: float = 10.0) -> int:
        """Block until the projection has applied `position` (read-your-writes); raise TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._advanced:
            while self._position < position:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"read model reached position {self._position}, not {position}, in {timeout} s")
                self._advanced.wait(remaining)
            return self._position

    def export_parquet(self, directory: Path | str) -> list[Path]:
        """Write every table to `<directory>/<table>.parquet`, all from one consistent snapshot."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        cur = self.cursor()
        with transaction(cur):
            for table in s.TABLES:
                target = directory / f"{table.name}.parquet"
                quoted = str(target).replace("'", "''")  # COPY takes no parameter for its target
                cur.execute(f"COPY (SELECT * FROM {s.VIEW_SCHEMA}.{table.name}) TO '{quoted}' (FORMAT parquet)")
                written.append(target)
        return written

    # --- projecting ------------------------------------------------------------------------------

    def catch_up(
        self,
        ledger: Ledger,
        *,
        last: int | None = None,
        stop: threading.Event | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Apply every event past the stored position (up to `last`), batch by batch; returns the new position.

        A read model built by other table definitions is rebuilt first (entirely).
        """
        if self._stale:
            return self.rebuild(ledger)
        with self._write_lock:
            return self._project(self._writer, self._schema, ledger, last=last, stop=stop, on_batch=on_batch, live=True)

    def rebuild(self, ledger: Ledger) -> int:
        """Rebuild every table from event 1 into a fresh schema, then switch readers to it at once.

        The fill runs without blocking the live projector (it writes other tables); only the last
        stretch (events appended meanwhile) and the switch hold the writer lock. See `_fill`.
        """
        cur = self._con.cursor()
        with self._write_lock, transaction(cur):
            generation = 1 + max(int(name.removeprefix(s.SCHEMA_PREFIX)) for name in self._schemas(cur))
            new = s.schema_name(generation)
            self._create(cur, new)
        try:
            self._fill(cur, new, ledger)
            with self._write_lock:
                position = self._fill(cur, new, ledger)
                with transaction(cur):
                    self._serve(cur, new)
                    cur.execute(f"DROP SCHEMA {self._schema} CASCADE")
                self._schema, self._stale = new, False
                self._advance_to(position)
                self._checkpoint(cur)
        except BaseException:
            with self._write_lock:
                cur.execute(f"DROP SCHEMA IF EXISTS {new} CASCADE")
            raise
        return position

    @staticmethod
    def _checkpoint(cur: duckdb.DuckDBPyConnection) -> None:
        """Write the WAL into the file and free the old schema's blocks, unless a reader is mid-transaction."""
        try:
            cur.execute("CHECKPOINT")
        except duckdb.TransactionException as error:
            log.info("checkpoint after rebuild deferred: %s", error)

    def _project(
        self,
        cur: duckdb.DuckDBPyConnection,
        schema: str,
        ledger: Ledger,
        *,
        live: bool,
        last: int | None = None,
        stop: threading.Event | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Apply the events past `schema`'s position (up to `last`), one transaction per batch."""
        decoder = Decoder(ledger)
        position = self._stored_position(cur, schema)
        for batch in self._batches(ledger, position, last):
            if stop is not None and stop.is_set():
                break
            self._apply(cur, schema, batch, decoder)
            position = batch[-1].id
            if live:
                self._advance_to(position)
            if on_batch is not None:
                on_batch(position)
        return position

    def _fill(self, cur: duckdb.DuckDBPyConnection, schema: str, ledger: Ledger) -> int:
        """Apply the events past `schema`'s position to a schema no reader sees yet; returns the position.

        A bulk load: one transaction spans batches up to `rebuild_bytes` of stored events and commits
        straight into the file (`_commit_to_file`). Committing every batch instead wrote each row twice
        (the WAL, then a checkpoint): 45 % of a rebuild. Exactly-once holds as in `_project`: a
        transaction records the position it reached. One that an event makes fail is rolled back and
        its events applied again a batch per transaction, which parks that event.
        """
        with _cyclic_gc_paused():
            return self._fill_in_bulk(cur, schema, ledger)

    def _fill_in_bulk(self, cur: duckdb.DuckDBPyConnection, schema: str, ledger: Ledger) -> int:
        decoder = Decoder(ledger)
        position = self._stored_position(cur, schema)
        batches = self._read_ahead(ledger, position, decoder)
        try:
            while True:
                reached, size = position, 0
                cur.execute("BEGIN TRANSACTION")
                try:
                    for batch, decoded in batches:
                        reached = batch[-1].id
                        if isinstance(decoded, Exception):
                            raise decoded
                        project_batch(cur, schema, decoded)
                        size += sum(len(notification.state) for notification in batch)
                        if size >= self.rebuild_bytes:
                            break
                    if reached > position:
                        self._record_position(cur, schema, reached)
                except Exception as error:
                    cur.execute("ROLLBACK")
                    if isinstance(error, _INFRASTRUCTURE_ERRORS) or reached == position:  # not an event's fault
                        raise
                    batches.close()
                    position = self._project(cur, schema, ledger, live=False, last=reached)
                    batches = self._read_ahead(ledger, position, decoder)
                    continue
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                if reached == position:
                    cur.execute("ROLLBACK")
                    return position
                self._commit_to_file(cur)
                position = reached
        finally:
            batches.close()

    def _read_ahead(
        self, ledger: Ledger, position: int, decoder: Decoder
    ) -> Generator[tuple[Sequence[Notification], EventBatch | Exception], None, None]:
        """`_batches` with each batch's events decoded (or the decoding error), one batch ahead in a thread.

        Reading the store and decoding (Python: half a core) then overlap with DuckDB's writes of the
        batch before, which release the GIL: the rebuild used one of two cores.
        """
        batches = self._batches(ledger, position)
        # The trades' JSON is parsed here too, by a DuckDB of this thread's own: that was a third of the
        # writer's time, on the core the writer's single-threaded statements leave idle.
        trade_parser = duckdb.connect()
        trade_parser.execute("SET TimeZone = 'UTC'")  # as the read model's (times without an offset)

        def next_batch() -> tuple[Sequence[Notification], EventBatch | Exception] | None:
            batch = next(batches, None)
            if batch is None:
                return None
            try:
                events = [decoder.decode(notification) for notification in batch]
                return batch, EventBatch.of(events, trade_parser)
            except Exception as error:  # raised where the batch is applied, so that it is redone
                return batch, error

        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="btledger-rebuild-read") as pool:
                ahead = pool.submit(next_batch)
                while (item := ahead.result()) is not None:
                    ahead = pool.submit(next_batch)
                    yield item
        finally:
            trade_parser.close()

    @staticmethod
    def _commit_to_file(cur: duckdb.DuckDBPyConnection) -> None:
        """COMMIT a large transaction by checkpointing it, skipping the WAL.

        DuckDB does so when a commit's estimated WAL size would pass `checkpoint_threshold`, but its
        estimate leaves out the strings (payloads, here most of the bytes), so the threshold is lowered
        for this one commit. When a reader holds a transaction open, DuckDB writes the WAL as usual.
        """
        cur.execute("SET GLOBAL checkpoint_threshold = '1MB'")
        try:
            cur.execute("COMMIT")
        finally:
            cur.execute(f"SET GLOBAL checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")

    def _batches(self, ledger: Ledger, position: int, last: int | None = None) -> Iterator[Sequence[Notification]]:
        """The notifications after `position` (up to `last`), in batches of `batch_size` and `batch_bytes`."""
        while notifications := ledger.recorder.select_notifications(
            start=position, limit=self.batch_size, stop=last, inclusive_of_start=False
        ):
            while notifications:
                batch, notifications = self._cut(notifications)
                yield batch
            position = batch[-1].id

    def _cut(self, notifications: Sequence[Notification]) -> tuple[Sequence[Notification], Sequence[Notification]]:
        """The first notifications whose payloads fit in `batch_bytes` (at least one), and the rest."""
        size = 0
        for index, notification in enumerate(notifications):
            size += len(notification.state)
            if size > self.batch_bytes and index > 0:
                return notifications[:index], notifications[index:]
        return notifications, []

    def _apply(
        self, cur: duckdb.DuckDBPyConnection, schema: str, batch: Sequence[Notification], decoder: Decoder
    ) -> None:
        """Apply a batch in one transaction; if an event in it cannot be applied, bisect to park it."""
        try:
            decoded = EventBatch.of([decoder.decode(notification) for notification in batch])
            with transaction(cur):
                project_batch(cur, schema, decoded)
                self._record_position(cur, schema, batch[-1].id)
        except _INFRASTRUCTURE_ERRORS:
            raise
        except Exception as error:
            if len(batch) > 1:
                middle = len(batch) // 2
                self._apply(cur, schema, batch[:middle], decoder)
                self._apply(cur, schema, batch[middle:], decoder)
            else:
                self._park(cur, schema, batch[0], error, decoder)

    def _park(
        self,
        cur: duckdb.DuckDBPyConnection,
        schema: str,
        notification: Notification,
        error: Exception,
        decoder: Decoder,
    ) -> None:
        """Record an event that cannot be applied in `dead_letters`, and in `ledger_events` (the audit of
        every event) with what is known of it: its time and payload only when it can be decoded."""
        log.error("parking event %s (%s): %s", notification.id, notification.topic, error)
        event: LedgerEvent | None
        try:
            event = decoder.decode(notification)
        except Exception:  # the state itself is unreadable (the error being parked, or one like it)
            event = None
        # A time that is not one (a state written by hand) must not stop the parking, and the projector.
        recorded_at = event.recorded_at if event is not None and isinstance(event.recorded_at, datetime) else None
        backtest_id = str(notification.originator_id)
        with transaction(cur):
            cur.execute(
                f"INSERT INTO {schema}.dead_letters VALUES (?, ?, ?, ?, ?, ?)",
                [
                    notification.id,
                    event_type_of(notification.topic),
                    backtest_id,
                    recorded_at,
                    describe(error),
                    bytes(notification.state).decode("utf-8", errors="replace"),
                ],
            )
            # As the projector names it: the registered key's strategy, else a Registered event's own.
            key = cur.execute(f"SELECT strategy FROM {schema}.backtest_keys WHERE id = ?", [backtest_id]).fetchall()
            strategy = key[0][0] if key else (event.state.get("strategy") if event is not None else None)
            row = {
                "position": notification.id,
                "recorded_at": recorded_at,
                "event_type": event_type_of(notification.topic),
                "backtest_id": backtest_id,
                "strategy": strategy if isinstance(strategy, str) else None,
                "version": notification.originator_version,
            }
            insert_ledger_events(cur, schema, [row], payload_array([event]) if event is not None else None)
            self._record_position(cur, schema, notification.id)

    @staticmethod
    def _record_position(cur: duckdb.DuckDBPyConnection, schema: str, position: int) -> None:
        """Store `position` in the open transaction, refusing any that is not past the stored one."""
        # An UPDATE first: an upsert costs 4-5 ms of a catch-up, an UPDATE 1.5-2. It moves nothing when
        # there is no row yet (a schema's first batch) or the position is not past the stored one.
        moved = cur.execute(
            f"UPDATE {schema}.projection_positions SET position = ? WHERE projection = ? AND position < ? "
            "RETURNING position",
            [position, PROJECTION, position],
        ).fetchall()
        moved = (
            moved
            or cur.execute(
                f"INSERT INTO {schema}.projection_positions VALUES (?, ?) ON CONFLICT (projection) DO UPDATE "
                "SET position = excluded.position WHERE projection_positions.position < excluded.position "
                "RETURNING position",
                [PROJECTION, position],
            ).fetchall()
        )
        if not moved:
            raise PositionConflict(f"position {position} is not past the stored position of {schema}")

    @staticmethod
    def _stored_position(cur: duckdb.DuckDBPyConnection, schema: str) -> int:
        row = cur.execute(
            f"SELECT position FROM {schema}.projection_positions WHERE projection = ?", [PROJECTION]
        ).fetchall()
        return int(row[0][0]) if row else 0

    def _advance_to(self, position: int) -> None:
        with self._advanced:
            self._position = position
            self._advanced.notify_all()
