"""Query parameters are checked before Litestar parses them: an unknown one is bad input (a misspelt filter,
`min_retrun=5`, must not silently widen a search), and so is a whole number not written as one (Litestar
reads `limit=5.0` or `5e0` as 5); a value outside a parameter's fixed set (`sort`, `order`) is refused with
the set, which Litestar's own refusal does not list."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from litestar import Request
from litestar.enums import ParamType
from litestar.handlers import HTTPRouteHandler
from litestar.params import ParameterKwarg
from litestar.typing import FieldDefinition

from btledger.domain.errors import InvalidInput

_DIGITS = re.compile(r"-?[0-9]+")


@cache
def _parameters(handler: HTTPRouteHandler, where: ParamType) -> dict[str, FieldDefinition]:
    """The parameters `handler` declares in the query or the headers, by name (every handler declares them
    with QueryParameter/FromQuery/HeaderParameter).

    Its dependencies (`services`) are left out: Litestar describes a named dependency as a query parameter.
    """
    dependencies = handler.resolve_dependencies()
    return {
        _client_name(name, parameter): parameter
        for name, parameter in handler.parsed_fn_signature.parameters.items()
        if isinstance(parameter.kwarg_definition, ParameterKwarg)
        and parameter.kwarg_definition.param_type == where
        and name not in dependencies
    }


def _client_name(name: str, parameter: FieldDefinition) -> str:
    """The name a client gives the handler's argument `name`: the one it declares (`Last-Event-ID`), else its own."""
    declared = parameter.kwarg_definition
    return (declared.name if isinstance(declared, ParameterKwarg) else None) or name


def client_name(handler: HTTPRouteHandler, key: str) -> str:
    """`key` of a Litestar validation error as the client wrote it: Litestar names the handler's argument
    (`last_event_id`), not the header or query parameter it reads (`Last-Event-ID`)."""
    parameter = handler.parsed_fn_signature.parameters.get(key)
    return key if parameter is None else _client_name(key, parameter)


def _is_whole_number(parameter: FieldDefinition) -> bool:
    """`int` or `int | None` (not `bool`, which is an int to Python)."""
    if parameter.is_optional:
        return [inner.annotation for inner in parameter.inner_types if not inner.is_none_type] == [int]
    return parameter.annotation is int


def check_parameters(request: Request[Any, Any, Any]) -> None:
    """A `before_request` hook: every query parameter must be one the handler declares, given once, and every
    whole-number parameter (in the query or a header) written in digits, and every one with a fixed set of
    values given one of them."""
    handler = request.route_handler
    query = _parameters(handler, ParamType.QUERY)
    for name in request.query_params:
        if name not in query:
            listed = ", ".join(sorted(query)) or "none"
            raise InvalidInput(name, f"unknown query parameter (this endpoint takes: {listed})")
        if len(values := request.query_params.getall(name)) > 1:  # Litestar would keep the last one
            raise InvalidInput(name, f"given {len(values)} times; give it once")
    for given, declared in ((request.query_params, query), (request.headers, _parameters(handler, ParamType.HEADER))):
        for name, parameter in declared.items():
            value = given.get(name)
            if value is None:
                continue
            if _is_whole_number(parameter) and not _DIGITS.fullmatch(value):
                raise InvalidInput(name, "must be a whole number, written in digits")
            if parameter.is_literal and value not in parameter.args:
                raise InvalidInput(name, f"{value!r} is not one of: {', '.join(map(str, parameter.args))}")
