"""What analyst SQL may touch: the read model's own tables, nothing outside the database.

A plain SELECT can still reach the host through DuckDB: table functions read files
(`read_text('/etc/passwd')`, `read_csv`, `glob`), a quoted path is scanned as a file
(`FROM '/etc/passwd'`), and `getenv()` reads the environment (the API token lives there). The
database cannot switch external access off because the projector's own Arrow scans need it, so each
statement's syntax tree (DuckDB's `json_serialize_sql`) is checked instead: tables must be plain
names, table functions and scalar functions must not be on the outside-facing lists.

A qualified name is a path too: DuckDB scans `"/etc/secret".csv` (or `main.csv`, in the working
directory) as the file its parts join into when no such table exists. So a name with a schema or
catalog part must be one of the database's own tables or views, checked before the statement runs,
which also keeps a refusal from telling whether a file exists.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import duckdb

#: Table functions that only describe the database or generate rows.
SAFE_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "duckdb_tables",
        "duckdb_columns",
        "duckdb_views",
        "duckdb_schemas",
        "duckdb_types",
        "duckdb_functions",
        "pragma_table_info",
    }
)

#: Scalar functions that read the host (environment, files).
DENIED_FUNCTIONS = frozenset({"getenv", "read_blob", "read_text"})

_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _nodes(value)


def _own_qualified_names(cur: duckdb.DuckDBPyConnection) -> set[tuple[str, ...]]:
    """Every way to name, with a schema or catalog part, a table or view of the read model's database
    (its live and view schemas) or of DuckDB's own catalog (`system`: information_schema, pg_catalog)."""
    objects = cur.execute(
        "SELECT database_name, schema_name, name FROM ("
        " SELECT database_name, schema_name, table_name AS name FROM duckdb_tables()"
        " UNION ALL SELECT database_name, schema_name, view_name FROM duckdb_views()"
        ") WHERE database_name IN (current_database(), 'system')"
    ).fetchall()
    names: set[tuple[str, ...]] = set()
    for database, schema, table in objects:
        database, schema, table = database.lower(), schema.lower(), table.lower()
        names |= {(database, schema, table), (schema, table)}
        if schema == "main":  # `catalog.table` names the catalog's default schema
            names.add((database, table))
    return names


def _outside_table(node: dict[str, Any], own_names: Callable[[], set[tuple[str, ...]]]) -> str | None:
    parts = [str(node.get(key) or "") for key in ("catalog_name", "schema_name", "table_name")]
    name = tuple(part.lower() for part in parts if part)
    if _PLAIN_NAME.match(parts[2]) and (len(name) == 1 or name in own_names()):
        return None
    shown = ".".join(part for part in parts if part)
    return f"{shown!r} is not a table of the read model (files are not readable here)"


def outside_access(cur: duckdb.DuckDBPyConnection, query: str) -> str | None:
    """Why `query` (one SELECT) would reach outside the database, or None when it stays inside."""
    tree = json.loads(cur.execute("SELECT json_serialize_sql(?)", [query]).fetchall()[0][0])
    if tree.get("error"):
        return None  # not a plain SELECT tree (SHOW, DESCRIBE ...): nothing it names is a file
    # Read from the catalog once a statement, and only if it names a table with a schema or catalog part.
    own_names = functools.cache(lambda: _own_qualified_names(cur))
    for node in _nodes(tree):
        kind = node.get("type")
        if kind == "BASE_TABLE" and (problem := _outside_table(node, own_names)):
            return problem
        if kind == "TABLE_FUNCTION":
            name = str((node.get("function") or {}).get("function_name", "")).lower()
            if name not in SAFE_TABLE_FUNCTIONS:
                return f"table function {name}() is not allowed: it reads outside the read model"
        if node.get("class") == "FUNCTION" and str(node.get("function_name", "")).lower() in DENIED_FUNCTIONS:
            return f"function {node['function_name']}() is not allowed: it reads the host"
    return None
