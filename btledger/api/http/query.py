"""Unknown query parameters are bad input: a misspelt filter (`min_retrun=5`) must not silently widen a search."""

from __future__ import annotations

from functools import cache

from litestar import Request
from litestar.handlers import HTTPRouteHandler
from litestar.params import ParameterKwarg

from btledger.domain.errors import InvalidInput

#: Handler arguments Litestar fills from the connection, never from the query string.
_RESERVED = frozenset({"state", "headers", "cookies", "request", "socket", "data", "query", "scope", "body"})


@cache
def _query_names(handler: HTTPRouteHandler) -> frozenset[str]:
    dependencies = handler.resolve_dependencies()
    names = set()
    for name, parameter in handler.parsed_fn_signature.parameters.items():
        kwarg = parameter.kwarg_definition
        if name in _RESERVED or name in dependencies:
            continue
        if isinstance(kwarg, ParameterKwarg) and (kwarg.header or kwarg.cookie):
            continue
        names.add(kwarg.query if isinstance(kwarg, ParameterKwarg) and kwarg.query else name)
    return frozenset(names)


def reject_unknown_query_parameters(request: Request) -> None:
    """A `before_request` hook: every query parameter must be one the handler declares."""
    if not request.scope.get("query_string"):
        return
    known = _query_names(request.route_handler) - request.path_params.keys()
    for name in request.query_params:
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise InvalidInput(name, f"unknown query parameter (this endpoint takes: {listed})")
