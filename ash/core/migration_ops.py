"""Schema operations that migrations share."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def drop_indexes(*indexes: tuple[str, str, str, bool]) -> migrations.RunPython:
    """Drop single-column indexes, each given as (table, column, index name, varchar); reversed,
    create them again. A varchar column's index has a `_like` twin on PostgreSQL (Django adds one
    for LIKE queries), dropped and created with it. Only the indexes are touched: an AlterField
    that drops a field's index makes SQLite copy the whole table into a new one."""

    def forwards(apps: Any, schema_editor: Any) -> None:
        postgresql = schema_editor.connection.vendor == "postgresql"
        q = schema_editor.quote_name
        for _table, _column, name, varchar in indexes:
            schema_editor.execute(f"DROP INDEX IF EXISTS {q(name)}")
            if postgresql and varchar:
                schema_editor.execute(f"DROP INDEX IF EXISTS {q(name + '_like')}")

    def backwards(apps: Any, schema_editor: Any) -> None:
        postgresql = schema_editor.connection.vendor == "postgresql"
        q = schema_editor.quote_name
        for table, column, name, varchar in indexes:
            schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {q(name)} ON {q(table)} ({q(column)})")
            if postgresql and varchar:
                schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {q(name + '_like')} ON {q(table)} "
                                      f"({q(column)} varchar_pattern_ops)")

    return migrations.RunPython(forwards, backwards)
