"""Property: generated bad input to every operation of the app's own OpenAPI schema never gets a 5xx, always
gets the JSON error shape, and never appends to the ledger.

Inputs: wrong types, huge and non-finite numbers, unicode, SQL fragments, path-like names, malformed and
mis-shaped JSON, unknown query parameters. Inputs that would be valid (a real id prefix, a registered
strategy, a complete batch, valid test options) are discarded, so every request here must be refused.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from btledger.domain.commands import RunBatch, parse
from btledger.domain.errors import LedgerError
from btledger.domain.robustness import OPTIONS
from btledger.engine.registry import registry
from tests.api.conftest import BATCH, Shared

NASTY = [
    "' OR 1=1 --",
    "'; DROP TABLE backtests; --",
    "1; DELETE FROM ledger_events",
    "../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "/etc/passwd",
    "%00",
    "\x00",
    "NaN",
    "-NaN",
    "inf",
    "-Infinity",
    "1e309",
    "-1",
    "0",
    "99999999999999999999999999999999",
    "null",
    "true",
    "[]",
    "{}",
    "😀" * 20,
    "Ωmega",
    "%",
    "_",
    "\\",
    " ",
    "x" * 5000,
]
texts = st.one_of(st.sampled_from(NASTY), st.text(max_size=40), st.integers().map(str), st.floats().map(repr))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


#: Bodies no JSON encoder writes: out-of-range and non-finite numbers, truncated or non-UTF-8 text.
RAW_BODIES = [
    b'{"risks": [1e999], "max_rows": 1e999, "percent": 1e999}',
    b'{"risks": [NaN], "paths": NaN}',
    b"[Infinity]",
    b'{"sql": "SELECT 1", "max_rows": 100000000000000000000000000}',
    b'{"strategies": ["\xff"]}',
    b"\xff\xfe",
    b'{"a":' * 1000,
]
TEST_OPTIONS = sorted({name for options in OPTIONS.values() for name in options.model_fields})
ID_OPERATIONS = [
    ("GET", ""),
    ("GET", "/trades"),
    ("GET", "/history"),
    ("GET", "/plot"),
    ("GET", "/tests"),
    ("PUT", "/favorite"),
    ("DELETE", ""),
    ("POST", "/restore"),
]


def operations(shared: Shared) -> list[tuple[str, str, dict[str, Any]]]:
    schema = shared.client.get("/schema/openapi.json").json()
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        if not path.startswith("/schema")
        for method, operation in item.items()
        if method in ("get", "post", "put", "delete")
    ]


def is_valid(shared: Shared, name: str, value: str) -> bool:
    """Whether a path value would name something real (then the request could legitimately succeed)."""
    if name == "backtest_id":
        try:
            shared.ledger.resolve(value)
        except LedgerError:
            return False
        return True
    return name == "name" and value in registry()


def batch_body(data: st.DataObject) -> Any:
    """A RunBatch body with one field replaced, dropped or added: never a valid batch."""
    body: dict[str, Any] = dict(BATCH)
    change = data.draw(st.sampled_from(["replace", "drop", "add", "whole"]))
    if change == "whole":
        return data.draw(json_values)
    field = data.draw(st.sampled_from([*RunBatch.model_fields]))
    if change == "replace":
        body[field] = data.draw(st.one_of(json_values, st.sampled_from(NASTY)))
    elif change == "drop":
        body.pop(field, None)
    else:
        body[data.draw(st.text(min_size=1, max_size=10))] = data.draw(json_values)
    try:
        parse(RunBatch, body)
    except LedgerError:
        return body
    assume(False)


def test_openapi_lists_every_operation(shared: Shared) -> None:
    assert len(operations(shared)) == 22


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bad_input_never_gets_a_5xx_and_appends_nothing(shared: Shared, data: st.DataObject) -> None:
    method, path, operation = data.draw(st.sampled_from(operations(shared)))
    real_id = shared.seeded["sma_eur_h1"].id
    params: dict[str, str] = {}
    headers: dict[str, str] = {}
    for parameter in operation.get("parameters", []):
        name, where = parameter["name"], parameter["in"]
        if where == "path":
            # Robustness-test options are only reached on a real result; elsewhere the id is bad too.
            if name == "backtest_id" and path.endswith("{kind}") and data.draw(st.booleans()):
                value = real_id
            else:
                value = data.draw(texts)
                assume(value.strip() and not is_valid(shared, name, value))
            path = path.replace(f"{{{name}}}", quote(value, safe=""))
        elif where == "query" and data.draw(st.booleans()):
            params[name] = data.draw(texts)
        elif where == "header" and data.draw(st.booleans()):
            headers[name] = data.draw(texts.filter(lambda t: t.isascii() and "\n" not in t and "\r" not in t))
    if data.draw(st.integers(0, 4)) == 0:
        params[data.draw(st.text(min_size=1, max_size=12))] = data.draw(texts)

    kwargs: dict[str, Any] = {"params": params, "headers": headers}
    if "requestBody" in operation or method == "POST":
        if path == "/backtests":
            body = batch_body(data)
        elif path == "/plans":
            body = data.draw(st.one_of(json_values, st.just({"batches": [dict(BATCH), batch_body(data)]})))
        elif "/tests/" in path:
            options = st.dictionaries(st.sampled_from(TEST_OPTIONS), st.one_of(json_values, texts), max_size=3)
            body = data.draw(st.one_of(json_values, options))
            kind = path.rsplit("/", 1)[-1]
            if kind in OPTIONS and isinstance(body, dict):
                try:
                    parse(OPTIONS[kind], body)
                except LedgerError:
                    pass
                else:
                    assume(False)
        else:
            body = data.draw(st.one_of(json_values, st.fixed_dictionaries({"sql": texts, "max_rows": json_values})))
        if data.draw(st.integers(0, 5)) == 0:
            kwargs["content"] = data.draw(st.one_of(st.binary(max_size=40), st.sampled_from(RAW_BODIES)))
            kwargs["headers"] = {**headers, "content-type": "application/json"}
        else:
            kwargs["json"] = body

    head = shared.ledger.head()
    response = shared.client.request(method, path, **kwargs)
    event(f"{method} {operation['operationId']} -> {response.status_code}")
    assert response.status_code < 500, (method, path, kwargs, response.text)
    assert shared.ledger.head() == head, (method, path, kwargs, response.status_code)
    if response.status_code >= 400:
        assert set(response.json()) == {"status", "error", "detail", "field"}, response.text


@pytest.mark.parametrize("value", NASTY)
def test_nasty_ids_are_404_everywhere(shared: Shared, value: str) -> None:
    head = shared.ledger.head()
    quoted = quote(value, safe="")
    for method, path in ID_OPERATIONS:
        response = shared.client.request(method, f"/backtests/{quoted}{path}")
        assert response.status_code == 404, (method, path, response.text)
    assert shared.ledger.head() == head
