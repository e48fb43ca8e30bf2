"""Every error as JSON `{status, error, detail, field}`: domain errors by kind, Litestar's own by status.

Bad input of any kind is a 4xx naming the field; a 5xx means a bug or an unavailable store, and its
detail says which without leaking a traceback.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import ClientException, HTTPException, NotAuthorizedException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.types import ExceptionHandlersMap
from pydantic import BaseModel, ValidationError

from btledger.api.http.query import client_name
from btledger.domain.errors import Conflict, InvalidInput, NotFound
from btledger.engine.errors import SpecError
from btledger.projections.readmodel import damage_in

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """The body of every error response."""

    status: int
    error: str
    detail: str
    field: str | None = None


def error_response(
    status: int, detail: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response[ErrorBody]:
    body = {"status": status, "error": HTTPStatus(status).phrase, "detail": detail, "field": field}
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)  # type: ignore[arg-type]


def _invalid_input(_: Request[Any, Any, Any], exc: InvalidInput) -> Response[ErrorBody]:
    return error_response(400, exc.problem, exc.field)


def _spec_error(_: Request[Any, Any, Any], exc: SpecError) -> Response[ErrorBody]:
    return error_response(400, str(exc).removeprefix(f"{exc.field}: "), exc.field)


def _not_found(_: Request[Any, Any, Any], exc: NotFound) -> Response[ErrorBody]:
    return error_response(404, str(exc), exc.field)


def _conflict(_: Request[Any, Any, Any], exc: Conflict) -> Response[ErrorBody]:
    return error_response(409, str(exc), exc.field)


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[ErrorBody]:
    """Litestar's parameter and body validation: report the first problem and its field."""
    first: dict[str, Any] = exc.extra[0] if isinstance(exc.extra, list) and exc.extra else {}
    key = client_name(request.route_handler, first["key"]) if "key" in first else None
    field = (key if key != "data" else None) or _model_level_field(exc) or "body"  # `data` is the body itself
    detail = str(first.get("message") or exc.detail).removeprefix("Value error, ")
    if field == "body" and detail == "'data'":  # Litestar's words for a request without a body
        detail = "a JSON body is required"
    return error_response(400, detail, field)


def _model_level_field(exc: BaseException) -> str | None:
    """The field a model-level pydantic check names (the domain's `_FieldError` carries `.field`)."""
    cause = exc.__cause__
    while cause is not None and not isinstance(cause, ValidationError):
        cause = cause.__cause__
    if cause is None:
        return None
    error = (cause.errors()[0].get("ctx") or {}).get("error")
    return getattr(error, "field", None)


#: What a Litestar exception of exactly this class is about: a plain ClientException is a body that cannot be
#: decoded (malformed JSON); a NotAuthorizedException, the token guard's (`auth.require_token`) header.
_FIELD_OF: dict[type[HTTPException], str] = {ClientException: "body", NotAuthorizedException: "Authorization"}


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    if exc.status_code >= 500:
        log.error("HTTP %s: %s", exc.status_code, exc.detail)
    field = _FIELD_OF.get(type(exc))
    return error_response(exc.status_code, exc.detail, field, headers=exc.headers)


def _undecodable(_: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[ErrorBody]:
    # Litestar lets msgspec's UnicodeDecodeError through when a JSON string holds bytes that are not UTF-8.
    return error_response(400, f"the body is not valid UTF-8 ({exc.reason})", "body")


def _timeout(_: Request[Any, Any, Any], exc: TimeoutError) -> Response[ErrorBody]:
    # The change is recorded in the ledger; only the read model is behind (see GET /health).
    return error_response(
        503, f"recorded, but the read model has not caught up yet: {exc}", headers={"Retry-After": "1"}
    )


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.exception("unhandled error", exc_info=exc)
    if (damage := damage_in(exc)) is not None:  # found only when read: every query reading it fails alike
        return error_response(
            500, f"the read model file is damaged ({damage}); stop the server and run `btledger rebuild`"
        )
    return error_response(500, f"internal error ({type(exc).__name__}); the server log has the details")


_ERROR_RESPONSES = {
    400: ResponseSpec(ErrorBody, description="Bad input; `field` names it. Nothing was changed."),
    401: ResponseSpec(ErrorBody, description="A change without the bearer token, when the server has one."),
    404: ResponseSpec(ErrorBody, description="No such backtest, job or strategy."),
    409: ResponseSpec(
        ErrorBody, description="The change does not apply to the current state (of the result, or of a finished job)."
    ),
    503: ResponseSpec(ErrorBody, description="Recorded, but the read model has not caught up within 10 s."),
}


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """The error responses an operation documents (Litestar's default 400 schema is not ours): 400, which
    every operation answers to an unknown query parameter, and `statuses`, those it can answer besides."""
    return {status: _ERROR_RESPONSES[status] for status in (400, *statuses)}


#: OpenAPI security of a change: none, or the bearer token when the server is started with one.
CHANGE_SECURITY: list[dict[str, list[str]]] = [{}, {"bearer": []}]

EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    InvalidInput: _invalid_input,
    SpecError: _spec_error,
    NotFound: _not_found,
    Conflict: _conflict,
    ValidationException: _validation,
    HTTPException: _http,
    UnicodeDecodeError: _undecodable,
    TimeoutError: _timeout,
    Exception: _unexpected,
}
