"""Unknown query parameters are bad input: a misspelt filter (`min_retrun=5`) must not silently widen a search."""

from __future__ import annotations

from functools import cache

from litestar import Request
from litestar.enums import ParamType
from litestar.handlers import HTTPRouteHandler
from litestar.params import ParameterKwarg

from btledger.domain.errors import InvalidInput


@cache
def _query_names(handler: HTTPRouteHandler) -> frozenset[str]:
    """The query parameters `handler` declares (every handler declares them with QueryParameter/FromQuery).

    Its dependencies (`services`) are left out: Litestar describes a named dependency as a query parameter.
    """
    dependencies = handler.resolve_dependencies()
    return frozenset(
        parameter.kwarg_definition.name or name
        for name, parameter in handler.parsed_fn_signature.parameters.items()
        if isinstance(parameter.kwarg_definition, ParameterKwarg)
        and parameter.kwarg_definition.param_type == ParamType.QUERY
        and name not in dependencies
    )


def reject_unknown_query_parameters(request: Request) -> None:
    """A `before_request` hook: every query parameter must be one the handler declares, given once."""
    if not request.scope.get("query_string"):
        return
    known = _query_names(request.route_handler)
    for name in request.query_params:
        if name not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise InvalidInput(name, f"unknown query parameter (this endpoint takes: {listed})")
        if len(values := request.query_params.getall(name)) > 1:  # Litestar would keep the last one
            raise InvalidInput(name, f"given {len(values)} times; give it once")
