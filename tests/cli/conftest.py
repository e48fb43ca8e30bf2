"""The CLI on each event store: the PostgreSQL fixtures of `tests.domain.conftest`, shared here."""

from tests.domain.conftest import event_store, postgres_server

__all__ = ["event_store", "postgres_server"]
