"""What an analyst SQL answer holds, from the CLI or the API alike: its values as JSON's own types, and at
most how many rows.

Apart from `queries` (which imports DuckDB) so that the CLI's tables and flags can use these without
importing DuckDB in commands that never open the read model.
"""

from __future__ import annotations

import base64
import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from pydantic import TypeAdapter

#: Most rows one SQL answer may hold, from the CLI or the API alike (more: `btledger export --parquet`).
MAX_SQL_ROWS = 100_000

#: ISO 8601 durations, as the API wrote them before intervals were rendered here.
_DURATION = TypeAdapter(timedelta)


def jsonable(value: Any) -> Any:
    """A DuckDB value of analyst SQL as JSON's own types (str, int, float, bool, None, list, dict of str),
    so that every encoder writes it alike: the CLI's `json` locally and the API's through a server.

    BLOB: base64. INTERVAL: an ISO 8601 duration (DuckDB's Python client counts a month as 30 days).
    Times and dates: ISO 8601. DECIMAL: float. NaN and ±inf: null. A MAP's keys: their JSON text.
    """
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {_json_key(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, timedelta):
        return _DURATION.dump_python(value, mode="json")
    return value


def _json_key(key: Any) -> str:
    """A MAP key as an object key: text as it is, anything else as its JSON (`true`, not Python's `True`)."""
    rendered = jsonable(key)
    return rendered if isinstance(rendered, str) else msgspec.json.encode(rendered).decode()
