"""One project's registry rows, out of a registry and into another (project bundles).

The tables are found from the schema, not listed by hand: a table belongs to a project
when it has a foreign key to `projects`, or to a table that does (params and metrics
through runs). A table added by a later migration is carried along without a change
here. On the way in, every row gets a new id and every foreign key is mapped to the new
ids; rows are inserted oldest first, so a row's parent (a dataset version's parent, the
deployment a rollback replaced) is always inserted before it.
"""

import sqlite3
from collections.abc import Callable
from graphlib import TopologicalSorter
from typing import Any

from app.core.store.registry import Registry

ROOT_TABLE = "projects"
TableRows = dict[str, list[dict[str, Any]]]
"""A project's rows as a bundle carries them (its rows/<table>.json members): table name -> that table's
rows, each a mapping of column name -> stored value. A file format, generic over every table (a table a
later migration adds comes along unchanged), so it stays a mapping rather than a type per table."""


def _foreign_keys(conn: sqlite3.Connection, table: str) -> dict[str, str]:
    """column -> the table it references."""
    return {row[3]: row[2] for row in conn.execute(f'PRAGMA foreign_key_list("{table}")')}


def _columns(conn: sqlite3.Connection, table: str) -> list[tuple[str, bool]]:
    """(name, is the INTEGER PRIMARY KEY) per column."""
    rows = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    single_key = sum(1 for r in rows if r[5]) == 1
    return [(r[1], bool(r[5]) and single_key and r[2].upper() == "INTEGER") for r in rows]


def project_tables(conn: sqlite3.Connection) -> list[str]:
    """The tables holding a project's rows, parents before children (projects first)."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
    keys = {name: _foreign_keys(conn, name) for name in names}
    included = {ROOT_TABLE}
    changed = True
    while changed:
        changed = False
        for name in names:
            if name not in included and any(parent in included for parent in keys[name].values()):
                included.add(name)
                changed = True
    graph = {name: {p for p in keys[name].values() if p in included and p != name} for name in included}
    return list(TopologicalSorter(graph).static_order())


def export_rows(registry: Registry, project_id: int) -> TableRows:
    """Every row of one project, read in one snapshot (a deferred read transaction)."""
    conn = registry.conn
    tables = project_tables(conn)
    selected: dict[str, set] = {}
    result: dict[str, list[dict]] = {}
    conn.execute("BEGIN")
    try:
        for table in tables:
            rows = _select_project_rows(registry, table, project_id, selected)
            result[table] = rows
            if "id" in (rows[0] if rows else {}):
                selected[table] = {r["id"] for r in rows}
            else:
                selected[table] = set()
    finally:
        conn.execute("COMMIT")
    return result


def _select_project_rows(registry: Registry, table: str, project_id: int, selected: dict[str, set]) -> list[dict]:
    if table == ROOT_TABLE:
        return registry._query("SELECT * FROM projects WHERE id = ?", (project_id,))
    keys = _foreign_keys(registry.conn, table)
    if "project_id" in keys and keys["project_id"] == ROOT_TABLE:
        return registry._query(f'SELECT * FROM "{table}" WHERE project_id = ? ORDER BY rowid', (project_id,))
    for column, parent in keys.items():
        if parent in selected:
            ids = sorted(selected[parent])
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            return registry._query(f'SELECT * FROM "{table}" WHERE "{column}" IN ({marks}) ORDER BY rowid', ids)
    return []


def import_rows(registry: Registry, rows: TableRows,
                rewrite: Callable[[str, dict], dict]) -> int:
    """Insert a project's rows with new ids (inside the caller's transaction); returns the new
    project id. rewrite(table, row) may change a row before it is inserted (names, paths)."""
    conn = registry.conn
    id_maps: dict[str, dict[int, int]] = {}
    for table in project_tables(conn):
        keys = _foreign_keys(conn, table)
        columns = _columns(conn, table)
        known = {name for name, _ in columns}
        id_map = id_maps.setdefault(table, {})
        for row in sorted(rows.get(table, []), key=lambda r: r.get("id") or 0):
            values = {k: v for k, v in rewrite(table, dict(row)).items() if k in known}
            old_id = values.pop("id", None) if any(name == "id" and pk for name, pk in columns) else None
            for column, parent in keys.items():
                if values.get(column) is not None and parent in id_maps:
                    if values[column] not in id_maps[parent]:
                        raise KeyError(f"{table}.{column} names {parent} id {values[column]}, which is not in the rows")
                    values[column] = id_maps[parent][values[column]]
            names = list(values)
            cursor = conn.execute(
                f'INSERT INTO "{table}" ({", ".join(f"{chr(34)}{n}{chr(34)}" for n in names)}) '
                f'VALUES ({", ".join("?" * len(names))})', [values[n] for n in names])
            if old_id is not None and cursor.lastrowid is not None:
                id_map[old_id] = cursor.lastrowid
    return next(iter(id_maps[ROOT_TABLE].values()))


def project_exists(registry: Registry, name: str) -> bool:
    return registry._query_one("SELECT id FROM projects WHERE name = ?", (name,)) is not None
