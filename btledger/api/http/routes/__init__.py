"""The route handlers, by resource; `get` declares the reads."""

from __future__ import annotations

import re
from typing import Any

from litestar import HttpMethod, route
from litestar.handlers import HTTPRouteHandler
from litestar.types import Method
from litestar.types.internal_types import PathParameterDefinition

_NOT_ALPHANUMERIC = re.compile(r"[^0-9A-Za-z]+")


def get(path: str, **kwargs: Any) -> HTTPRouteHandler:
    """Litestar's `@get`, answering HEAD as well: with the GET's status and headers, and no body (the ASGI
    server, uvicorn or Litestar's test client, drops the body of a response to HEAD)."""
    return route(path, http_method=[HttpMethod.GET, HttpMethod.HEAD], operation_id=_operation_id, **kwargs)


def _operation_id(handler: HTTPRouteHandler, method: Method, components: list[str | PathParameterDefinition]) -> str:
    """Litestar's operationId for a GET-only handler (`BacktestsBacktestIdTradesTrades`), prefixed `Head` for the
    HEAD. Litestar would put the method in both (`...GetTrades`), renaming the GET operations that clients
    generated from the schema call."""
    name = ""
    for component in (c.name if isinstance(c, PathParameterDefinition) else c for c in components):
        if component.title() not in name:
            name += component.title()
    name += handler.handler_name.title()
    return _NOT_ALPHANUMERIC.sub("", ("Head" if method == HttpMethod.HEAD else "") + name)
