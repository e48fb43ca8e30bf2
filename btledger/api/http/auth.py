"""Bearer-token guard: when a token is configured, every request that may change state must carry it."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from litestar.types import Guard

from btledger.api.client import TOKEN_ENV

#: Methods that read only; everything else (POST, PUT, DELETE, PATCH) needs the token. POST /sql is
#: read-only but can read any table and the host's files through DuckDB, so it is guarded too.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def require_token(token: str) -> Guard:
    """A guard accepting `Authorization: Bearer <token>` on unsafe methods (compared in constant time)."""
    expected = token.encode()

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if connection.scope.get("method", "GET") in SAFE_METHODS:
            return
        scheme, _sep, given = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise NotAuthorizedException(
                f"this server requires 'Authorization: Bearer <token>' for changes and SQL (the token in {TOKEN_ENV})",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return guard
