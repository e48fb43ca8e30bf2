"""Each event store for the tests: the default SQLite file, or PostgreSQL on a throwaway local server.

A test (of the ledger, the CLI or the server) runs on SQLite alone unless marked `@on_each_store`, which
runs it once on each. On PostgreSQL the store is configured as a user configures it, by the environment
(`PERSISTENCE_MODULE` and the library's POSTGRES_* keys), inherited by the processes a test starts, over a
fresh database of a server this session starts: `initdb` in a temporary directory, listening on a free port
of 127.0.0.1. Without PostgreSQL's server programs those runs are skipped, naming what is missing.
tests/conftest.py offers the fixtures to every test directory, one server per session.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

on_each_store = pytest.mark.parametrize("event_store", ["sqlite", "postgres"], indirect=True)

#: The cluster's owner when the tests run as root, which initdb refuses to be.
SERVER_USER = "postgres"


def _server_programs() -> Path | None:
    """The directory holding initdb and pg_ctl: the one on PATH, else the newest /usr/lib/postgresql/N/bin."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(p) for p in sorted(versions, key=lambda p: int(Path(p).parent.name), reverse=True)]
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    port: int
    _databases: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_database(self) -> str:
        name = f"ledger_{next(self._databases)}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SERVER_USER, dbname="postgres") as admin:
            admin.autocommit = True  # CREATE DATABASE refuses to run in a transaction
            admin.execute(f"CREATE DATABASE {name}")
        return name


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    programs = _server_programs()
    if programs is None:
        missing = "no initdb and pg_ctl on PATH or in /usr/lib/postgresql/*/bin"
        pytest.skip(f"PostgreSQL server programs not found: {missing}")
    as_owner: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="btledger-postgres-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip(f"running as root, and initdb refuses to: no {SERVER_USER!r} user to run the server as")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", SERVER_USER, "--"]
    data, port = root / "data", free_port()
    try:
        subprocess.run(
            [*as_owner, programs / "initdb", "-D", data, "-U", SERVER_USER, "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
        )
        # Throwaway data: no fsync. The unix socket goes to the temporary directory, not to /var/run.
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off -c full_page_writes=off"
        pg_ctl: list[str | Path] = [*as_owner, programs / "pg_ctl", "-D", data, "-w"]
        subprocess.run([*pg_ctl, "-l", root / "server.log", "-o", options, "start"], check=True, capture_output=True)
        try:
            yield PostgresServer(port)
        finally:
            subprocess.run([*pg_ctl, "-m", "immediate", "stop"], check=True, capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def event_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """ "sqlite" (the default), or "postgres" with the environment pointing at a fresh database."""
    kind: str = getattr(request, "param", "sqlite")
    if kind == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        monkeypatch.setenv("PERSISTENCE_MODULE", "eventsourcing.postgres")
        monkeypatch.setenv("POSTGRES_DBNAME", server.new_database())
        monkeypatch.setenv("POSTGRES_HOST", "127.0.0.1")
        monkeypatch.setenv("POSTGRES_PORT", str(server.port))
        monkeypatch.setenv("POSTGRES_USER", SERVER_USER)
        monkeypatch.setenv("POSTGRES_PASSWORD", "")  # trust authentication; the library needs the key set
    return kind
