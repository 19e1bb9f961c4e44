"""Statements for the turn's hot path without the ORM's query compiler.

The ORM compiles every query anew, and on the turn path compiling is most of a query's cost: a
session read by primary key takes ~1 ms compiled against ~0.08 ms executed on the 2-core bench
machine. These helpers build their SQL from the models' metadata once per shape and database
vendor, take every value through the field's own `get_db_prep_*` and every column read through
the backend's and the field's converters, and run on Django's connection (same transaction, same
execute wrappers). The rows written and the instances read are the ones the ORM would produce.

Only plain shapes are supported: equality (or IS NULL) conditions joined with AND, SET to values,
multi-row INSERT. Anything richer stays in the ORM.

`batched()` sends the writes nobody reads a result of (inserts, updates whose count is not
needed) together at the end of a block: one round trip on PostgreSQL, where each costs ~0.5 ms
on the bench machine (Django's client-side binding cursors take several statements in one
execute); one by one on SQLite, which has no round trips.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import connections, router
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)
_Converter = Any
_batch: contextvars.ContextVar[list[tuple[Any, str, list[Any]]] | None] = contextvars.ContextVar("ash_sql_batch", default=None)


@contextlib.contextmanager
def batched() -> Iterator[None]:
    """Inside the block, `insert` and `update(..., batch=True)` are queued and sent together when
    it ends (in order, on the connection each would have used). Their rows are not visible to
    reads inside the block, so use it for a transaction's final writes. Nothing is sent if the
    block raises."""
    if _batch.get() is not None:
        yield  # already inside a batch: it sends these too
        return
    queued: list[tuple[Any, str, list[Any]]] = []
    token = _batch.set(queued)
    try:
        yield
    finally:
        _batch.reset(token)
    _send(queued)


def _send(queued: list[tuple[Any, str, list[Any]]]) -> None:
    by_conn: dict[str, list[tuple[str, list[Any]]]] = {}
    for conn, sql, params in queued:
        by_conn.setdefault(conn.alias, []).append((sql, params))
    for alias, statements in by_conn.items():
        conn = connections[alias]
        with conn.cursor() as cursor:
            if conn.vendor == "postgresql" and len(statements) > 1:
                cursor.execute(";\n".join(s for s, _ in statements), [p for _, params in statements for p in params])
            else:
                for sql, params in statements:
                    cursor.execute(sql, params)


def _run(conn: Any, sql: str, params: list[Any], *, batch: bool) -> int | None:
    """Execute now (the row count), or queue it in the open batch (None)."""
    queued = _batch.get() if batch else None
    if queued is not None:
        queued.append((conn, sql, params))
        return None
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _conn(model: type[Model], write: bool) -> Any:
    alias = router.db_for_write(model) if write else router.db_for_read(model)
    return connections[alias]


def _fields(model: type[Model], names: Sequence[str]) -> tuple[Field, ...]:
    return tuple(model._meta.get_field(name) for name in names)


def _where(conn: Any, model: type[Model], where: dict[str, Any]) -> tuple[str, list[Any]]:
    """`a = %s AND b IS NULL …` and its parameters (a None value is IS NULL)."""
    quote, parts, params = conn.ops.quote_name, [], []
    for field, value in zip(_fields(model, list(where)), where.values(), strict=True):
        if value is None:
            parts.append(f"{quote(field.column)} IS NULL")
        else:
            parts.append(f"{quote(field.column)} = %s")
            params.append(field.get_db_prep_value(value, conn, prepared=False))
    return " AND ".join(parts) or "1 = 1", params


@functools.cache
def _readers(model: type[Model], names: tuple[str, ...], alias: str) -> tuple[str, tuple[str, ...], tuple[tuple[Any, tuple[_Converter, ...]], ...]]:
    """Column list, attnames and each column's (expression, converters) for reading NAMES, in the
    model's field order (`Model.from_db` takes a partial row in that order)."""
    conn = connections[alias]
    wanted = set(_fields(model, names))
    fields = tuple(f for f in model._meta.concrete_fields if not names or f in wanted)
    table = conn.ops.quote_name(model._meta.db_table)
    columns = ", ".join(f"{table}.{conn.ops.quote_name(f.column)}" for f in fields)
    readers = []
    for field in fields:
        col = field.get_col(model._meta.db_table)
        readers.append((col, tuple(conn.ops.get_db_converters(col)) + tuple(field.get_db_converters(conn))))
    return columns, tuple(f.attname for f in fields), tuple(readers)


def select_one(model: type[M], *, where: dict[str, Any], fields: Sequence[str] = ()) -> M | None:
    """The first row of MODEL matching WHERE (equality / IS NULL), as an instance with FIELDS
    loaded (all concrete fields by default; the others are deferred)."""
    conn = _conn(model, write=False)
    columns, attnames, readers = _readers(model, tuple(fields), conn.alias)
    clause, params = _where(conn, model, where)
    sql = f"SELECT {columns} FROM {conn.ops.quote_name(model._meta.db_table)} WHERE {clause} LIMIT 1"
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else _instance(model, conn, attnames, readers, row)


def _instance(model: type[M], conn: Any, attnames: tuple[str, ...], readers: Any, row: Sequence[Any]) -> M:
    values = []
    for value, (col, converters) in zip(row, readers, strict=True):
        for convert in converters:
            value = convert(value, col, conn)
        values.append(value)
    return model.from_db(conn.alias, list(attnames), values)


@dataclass(frozen=True)
class IfTrue:
    """An `update` value decided in the statement: IF_TRUE where the boolean column FLAG is
    true, else OTHERWISE (`CASE WHEN flag THEN … ELSE … END`)."""

    flag: str
    if_true: Any
    otherwise: Any


@dataclass(frozen=True)
class Add:
    """An `update` value: the column's current value plus N (a counter)."""

    n: int


def update(model: type[Model], *, where: dict[str, Any], values: dict[str, Any], batch: bool = False) -> int | None:
    """UPDATE MODEL SET VALUES WHERE WHERE; the number of rows changed. With BATCH, inside
    `batched()`, it is queued instead and the count is not known (None)."""
    conn = _conn(model, write=True)
    sql, params = _update_sql(conn, model, where, values)
    return _run(conn, sql, params, batch=batch)


def update_returning(model: type[M], *, where: dict[str, Any], values: dict[str, Any],
                     fields: Sequence[str] = ()) -> M | None:
    """`update` of one row, chosen by its primary key in WHERE, and reading it back in the same
    statement (RETURNING: PostgreSQL, SQLite >= 3.35): the row as it is after the update, with
    FIELDS loaded (all by default); None when no row matched."""
    if model._meta.pk.name not in where:
        raise ValueError(f"update_returning needs {model.__name__}'s primary key in WHERE")
    conn = _conn(model, write=True)
    columns, attnames, readers = _readers(model, tuple(fields), conn.alias)
    sql, params = _update_sql(conn, model, where, values)
    with conn.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {columns}", params)
        row = cursor.fetchone()
    return None if row is None else _instance(model, conn, attnames, readers, row)


def _update_sql(conn: Any, model: type[Model], where: dict[str, Any], values: dict[str, Any]) -> tuple[str, list[Any]]:
    quote = conn.ops.quote_name
    sets, params = [], []
    for field, value in zip(_fields(model, list(values)), values.values(), strict=True):
        if isinstance(value, Add):
            sets.append(f"{quote(field.column)} = {quote(field.column)} + %s")
            params.append(value.n)
        elif isinstance(value, IfTrue):
            flag = quote(model._meta.get_field(value.flag).column)
            sets.append(f"{quote(field.column)} = CASE WHEN {flag} THEN %s ELSE %s END")
            params += [field.get_db_prep_save(value.if_true, conn), field.get_db_prep_save(value.otherwise, conn)]
        else:
            sets.append(f"{quote(field.column)} = %s")
            params.append(field.get_db_prep_save(value, conn))
    clause, where_params = _where(conn, model, where)
    return f"UPDATE {quote(model._meta.db_table)} SET {', '.join(sets)} WHERE {clause}", params + where_params


@functools.cache
def _insert_sql(model: type[Model], rows: int, alias: str) -> tuple[str, tuple[Field, ...]]:
    conn = connections[alias]
    fields = tuple(f for f in model._meta.concrete_fields if not f.generated and not (f.primary_key and f.db_returning))
    quote = conn.ops.quote_name
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES {', '.join([one] * rows)}")
    return sql, fields


def insert(objs: Sequence[Model]) -> None:
    """INSERT OBJS (instances of one model, primary keys set by their defaults) in one statement,
    with the fields' pre_save (auto_now_add) and database preparation, as `bulk_create` does.
    Inside `batched()` it is queued."""
    if not objs:
        return
    model = type(objs[0])
    if any(type(obj) is not model for obj in objs):
        raise TypeError("insert() takes instances of one model")
    conn = _conn(model, write=True)
    sql, fields = _insert_sql(model, len(objs), conn.alias)
    params = []
    for obj in objs:
        for field in fields:
            params.append(field.get_db_prep_save(field.pre_save(obj, True), conn))
        obj._state.adding = False
        obj._state.db = conn.alias
    _run(conn, sql, params, batch=True)
