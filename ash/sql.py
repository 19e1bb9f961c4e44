"""Statements for the turn's hot path without the ORM's query compiler.

The ORM compiles every query anew, and on the turn path compiling is most of a query's cost: a
session read by primary key takes ~1 ms compiled against ~0.08 ms executed on the 2-core bench
machine. These helpers build their SQL from the models' metadata once per shape and database
vendor, take every value through the field's own `get_db_prep_*` and every column read through
the backend's and the field's converters, and run on Django's connection (same transaction, same
execute wrappers). The rows written and the instances read are the ones the ORM would produce.

Only plain shapes are supported: equality (or IS NULL / IS NOT NULL) conditions joined with AND,
SET to values, multi-row INSERT. Anything richer stays in the ORM.

`batched()` sends the writes of a block together when it ends, as one transaction: one round
trip on PostgreSQL, where each costs ~0.5 ms on the bench machine (Django's client-side binding
cursors take several statements in one execute, and PostgreSQL runs such a query as one
transaction, its commit included); one by one inside `transaction.atomic()` on SQLite, which
has no round trips. Values the block's own writes decide are read in the statements themselves:
`Counter` (a number an earlier `Add` reserved), `Read` and `Ref` (a column of another row), and
`Exists` (insert only if a row matches); `Batch.read` and `fetch` bring rows back from the same
round trip.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import connections, router, transaction
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)
_Converter = Any
_batch: contextvars.ContextVar[Batch | None] = contextvars.ContextVar("ash_sql_batch", default=None)


class Batch:
    """The statements `batched()` queued. After the block: `rowcounts`, each write's row count in
    order (consecutive inserts into one table are one statement), and `rows`, each `read`'s
    instance (or None) in order."""

    def __init__(self) -> None:
        self.queued: list[tuple[Any, str, list[Any], Query | None]] = []
        self.rowcounts: list[int] = []
        self.rows: list[Any] = []
        self._last_insert: str | None = None  # the head of the last queued statement, if an insert

    def add(self, conn: Any, sql: str, params: list[Any], *, insert_head: str | None = None) -> None:
        last = self.queued[-1] if self.queued else None
        if insert_head is not None and insert_head == self._last_insert and last is not None and last[0].alias == conn.alias:
            # More rows for the insert just queued: one statement.
            self.queued[-1] = (conn, f"{last[1]}, {sql[len(insert_head) + len(' VALUES '):]}", last[2] + params, None)
        else:
            self.queued.append((conn, sql, params, None))
        self._last_insert = insert_head

    def read(self, query: Query) -> None:
        """Queue QUERY (from `select` or `update_and_read`) to run in its place in the batch; its
        row lands in `rows`. It sees the writes queued before it."""
        self.queued.append((query.conn, query.sql, query.params, query))
        self._last_insert = None

    def _result(self, cursor: Any, query: Query | None) -> None:
        if query is None:
            self.rowcounts.append(cursor.rowcount)
        else:
            row = cursor.fetchone()
            self.rows.append(None if row is None else _instance(query.model, query.conn, query.attnames, query.readers, row))


@contextlib.contextmanager
def batched() -> Iterator[Batch]:
    """Inside the block, `insert` and `update(..., batch=True)` are queued, then sent together
    when it ends, in order, as one transaction (or as part of the caller's, inside
    `transaction.atomic()`). Their rows are not visible to reads inside the block. Nothing is
    sent if the block raises. A nested block joins the outer one."""
    outer = _batch.get()
    if outer is not None:
        yield outer  # the outermost block sends these too
        return
    batch = Batch()
    token = _batch.set(batch)
    try:
        yield batch
    finally:
        _batch.reset(token)
    _send(batch)


def in_batch() -> bool:
    return _batch.get() is not None


def _send(batch: Batch) -> None:
    by_conn: dict[str, list[tuple[str, list[Any], Query | None]]] = {}
    for conn, sql, params, query in batch.queued:
        by_conn.setdefault(conn.alias, []).append((sql, params, query))
    for alias, statements in by_conn.items():
        conn = connections[alias]
        # PostgreSQL: one simple query, part of the open transaction or its own (commit included).
        one_transaction = (contextlib.nullcontext() if conn.vendor == "postgresql"
                           else transaction.atomic(using=alias, savepoint=False))
        with one_transaction, conn.cursor() as cursor:
            for i in _each_result(conn, cursor, [(sql, params) for sql, params, _ in statements]):
                batch._result(cursor, statements[i][2])


def _each_result(conn: Any, cursor: Any, statements: list[tuple[str, list[Any]]]) -> Iterator[int]:
    """Run STATEMENTS ((sql, params), in order), stopping at each one's result (its index): on
    PostgreSQL in one multi-statement execute (one round trip), elsewhere one execute each."""
    if conn.vendor == "postgresql" and len(statements) > 1:
        _execute(conn, cursor, ";\n".join(sql for sql, _ in statements), [p for _, params in statements for p in params])
        for i in range(len(statements)):
            if i:
                cursor.nextset()
            yield i
    else:
        for i, (sql, params) in enumerate(statements):
            _execute(conn, cursor, sql, params)
            yield i


def _run(conn: Any, sql: str, params: list[Any], *, batch: bool, insert_head: str | None = None) -> int | None:
    """Execute now (the row count), or queue it in the open batch (None)."""
    open_batch = _batch.get() if batch else None
    if open_batch is not None:
        open_batch.add(conn, sql, params, insert_head=insert_head)
        return None
    with conn.cursor() as cursor:
        _execute(conn, cursor, sql, params)
        return cursor.rowcount


def _execute(conn: Any, cursor: Any, sql: str, params: list[Any]) -> None:
    """cursor.execute(SQL, PARAMS). On PostgreSQL the values are merged into the text here, from
    a split of SQL cached per shape: psycopg's client-side binding caches its own parse only for
    short statements with few values, and re-parsing a batch's statements took ~0.5 ms a turn."""
    if conn.vendor != "postgresql" or not params:
        cursor.execute(sql, params)
        return
    parts = _split(sql)
    if len(parts) != len(params) + 1:
        raise ValueError(f"{len(params)} values for {len(parts) - 1} placeholders")
    literal = _transformer(conn.connection).as_literal
    out = [parts[0]]
    for value, part in zip(params, parts[1:], strict=True):
        out.append("NULL" if value is None else literal(value).decode())
        out.append(part)
    cursor.execute("".join(out))


@functools.lru_cache(maxsize=512)
def _split(sql: str) -> tuple[str, ...]:
    return tuple(sql.split("%s"))  # the statements built here have no other % in them


_transformers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _transformer(pg_connection: Any) -> Any:
    """The connection's own adapters (as its cursors use them), to write values as SQL literals."""
    tx = _transformers.get(pg_connection)
    if tx is None:
        from psycopg.adapt import Transformer

        tx = _transformers[pg_connection] = Transformer(pg_connection)
    return tx


def _conn(model: type[Model], write: bool) -> Any:
    alias = router.db_for_write(model) if write else router.db_for_read(model)
    return connections[alias]


@functools.cache
def _fields(model: type[Model], names: tuple[str, ...]) -> tuple[Field, ...]:
    return tuple(model._meta.get_field(name) for name in names)


NOT_NULL = object()  # a WHERE value: the column IS NOT NULL


@dataclass(frozen=True)
class Ref:
    """A WHERE value read in the statement: FIELD of the MODEL row matching WHERE (NULL if none)."""

    model: type[Model]
    field: str
    where: dict[str, Any]


def _where(conn: Any, model: type[Model], where: dict[str, Any]) -> tuple[str, list[Any]]:
    """`a = %s AND b IS NULL …` and its parameters (None: IS NULL; NOT_NULL: IS NOT NULL)."""
    quote, parts, params = conn.ops.quote_name, [], []
    for field, value in zip(_fields(model, tuple(where)), where.values(), strict=True):
        if value is None:
            parts.append(f"{quote(field.column)} IS NULL")
        elif value is NOT_NULL:
            parts.append(f"{quote(field.column)} IS NOT NULL")
        elif isinstance(value, Ref):
            clause, ref_params = _where(conn, value.model, value.where)
            ref_meta = value.model._meta
            parts.append(f"{quote(field.column)} = (SELECT {quote(ref_meta.get_field(value.field).column)} "
                         f"FROM {quote(ref_meta.db_table)} WHERE {clause})")
            params += ref_params
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


@dataclass(frozen=True)
class Query:
    """One statement that reads (at most) one row back, built for `fetch`."""

    model: type[Model]
    conn: Any
    sql: str
    params: list[Any]
    attnames: tuple[str, ...]
    readers: Any


def select(model: type[Model], *, where: dict[str, Any], fields: Sequence[str] = ()) -> Query:
    """The first row of MODEL matching WHERE (equality / IS NULL / Ref), with FIELDS loaded (all
    concrete fields by default; the others are deferred)."""
    conn = _conn(model, write=False)
    columns, attnames, readers = _readers(model, tuple(fields), conn.alias)
    clause, params = _where(conn, model, where)
    sql = f"SELECT {columns} FROM {conn.ops.quote_name(model._meta.db_table)} WHERE {clause} LIMIT 1"
    return Query(model, conn, sql, params, attnames, readers)


def update_and_read(model: type[Model], *, where: dict[str, Any], values: dict[str, Any],
                    fields: Sequence[str] = ()) -> Query:
    """`update` of one row, chosen by its primary key in WHERE, read back in the same statement
    (RETURNING: PostgreSQL, SQLite >= 3.35) as it is after the update, with FIELDS loaded."""
    if model._meta.pk.name not in where:
        raise ValueError(f"update_returning needs {model.__name__}'s primary key in WHERE")
    conn = _conn(model, write=True)
    columns, attnames, readers = _readers(model, tuple(fields), conn.alias)
    sql, params = _update_sql(conn, model, where, values)
    return Query(model, conn, f"{sql} RETURNING {columns}", params, attnames, readers)


def fetch(*queries: Query) -> list[Any]:
    """Run QUERIES in order; each one's row as an instance, or None. On PostgreSQL they go in one
    round trip (one transaction of their own outside `transaction.atomic()`), so a later query
    sees what an earlier one wrote; on SQLite one after the other."""
    conn = queries[0].conn
    if any(q.conn.alias != conn.alias for q in queries):
        raise ValueError("fetch() takes queries on one database")
    with conn.cursor() as cursor:
        rows = [cursor.fetchone() for _ in _each_result(conn, cursor, [(q.sql, q.params) for q in queries])]
    return [None if row is None else _instance(q.model, conn, q.attnames, q.readers, row)
            for q, row in zip(queries, rows, strict=True)]


def select_one(model: type[M], *, where: dict[str, Any], fields: Sequence[str] = ()) -> M | None:
    """`select`, run: the row as an instance, or None."""
    return fetch(select(model, where=where, fields=fields))[0]


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
class IfEqual:
    """An `update` value decided in the statement: THEN where the column being set equals VALUE,
    else the column unchanged (`CASE WHEN col = … THEN … ELSE col END`)."""

    value: Any
    then: Any


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
    """`update_and_read`, run: the row as it is after the update, or None when none matched."""
    return fetch(update_and_read(model, where=where, values=values, fields=fields))[0]


def _update_sql(conn: Any, model: type[Model], where: dict[str, Any], values: dict[str, Any]) -> tuple[str, list[Any]]:
    quote = conn.ops.quote_name
    sets, params = [], []
    for field, value in zip(_fields(model, tuple(values)), values.values(), strict=True):
        if isinstance(value, Add):
            sets.append(f"{quote(field.column)} = {quote(field.column)} + %s")
            params.append(value.n)
        elif isinstance(value, IfEqual):
            col = quote(field.column)
            sets.append(f"{col} = CASE WHEN {col} = %s THEN %s ELSE {col} END")
            params += [field.get_db_prep_save(value.value, conn), field.get_db_prep_save(value.then, conn)]
        elif isinstance(value, IfTrue):
            flag = quote(model._meta.get_field(value.flag).column)
            sets.append(f"{quote(field.column)} = CASE WHEN {flag} THEN %s ELSE %s END")
            params += [field.get_db_prep_save(value.if_true, conn), field.get_db_prep_save(value.otherwise, conn)]
        else:
            sets.append(f"{quote(field.column)} = %s")
            params.append(field.get_db_prep_save(value, conn))
    clause, where_params = _where(conn, model, where)
    return f"UPDATE {quote(model._meta.db_table)} SET {', '.join(sets)} WHERE {clause}", params + where_params


@dataclass(frozen=True)
class Counter:
    """An `insert` value read in the statement: FIELD of the MODEL row with primary key PK, plus
    OFFSET. After an `update(..., values={FIELD: Add(n)}, batch=True)` of that row in the same
    batch, OFFSET -n+1 … 0 are the numbers it reserved."""

    model: type[Model]
    field: str
    pk: Any
    offset: int = 0

    def __add__(self, n: int) -> Counter:
        return Counter(self.model, self.field, self.pk, self.offset + n)


@dataclass(frozen=True)
class Read:
    """An `insert` value read in the statement: FIELD of the MODEL row with primary key PK."""

    model: type[Model]
    field: str
    pk: Any


@dataclass(frozen=True)
class Exists:
    """An `insert` condition: only if a MODEL row matches WHERE (equality / IS NULL) when the
    statement runs."""

    model: type[Model]
    where: dict[str, Any]


@functools.cache
def _insert_head(model: type[Model], alias: str) -> tuple[str, tuple[Field, ...]]:
    conn = connections[alias]
    fields = tuple(f for f in model._meta.concrete_fields if not f.generated and not (f.primary_key and f.db_returning))
    quote = conn.ops.quote_name
    return f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)})", fields


def insert(objs: Sequence[Model], *, when: Exists | None = None) -> None:
    """INSERT OBJS (instances of one model, primary keys set by their defaults) in one statement,
    with the fields' pre_save (auto_now_add) and database preparation, as `bulk_create` does;
    a field may hold a `Counter`. WHEN: one object, inserted only if that row exists. Inside
    `batched()` it is queued, and joins an insert into the same table queued just before."""
    if not objs:
        return
    model = type(objs[0])
    if any(type(obj) is not model for obj in objs):
        raise TypeError("insert() takes instances of one model")
    if when is not None and len(objs) != 1:
        raise ValueError("a conditional insert takes one object")
    conn = _conn(model, write=True)
    head, fields = _insert_head(model, conn.alias)
    rows, params = [], []
    for obj in objs:
        marks = []
        for field in fields:
            value = field.pre_save(obj, True)
            if isinstance(value, Counter | Read):
                marks.append(_read_sql(conn, value, params))
            else:
                marks.append("%s")
                params.append(field.get_db_prep_save(value, conn))
        rows.append(", ".join(marks))
        obj._state.adding = False
        obj._state.db = conn.alias
    if when is None:
        sql = f"{head} VALUES " + ", ".join(f"({row})" for row in rows)
        _run(conn, sql, params, batch=True, insert_head=head)
    else:
        clause, where_params = _where(conn, when.model, when.where)
        sql = f"{head} SELECT {rows[0]} WHERE EXISTS (SELECT 1 FROM {conn.ops.quote_name(when.model._meta.db_table)} WHERE {clause})"
        _run(conn, sql, params + where_params, batch=True)


def _read_sql(conn: Any, value: Counter | Read, params: list[Any]) -> str:
    quote, meta = conn.ops.quote_name, value.model._meta
    params.append(meta.pk.get_db_prep_value(value.pk, conn, prepared=False))
    sql = f"(SELECT {quote(meta.get_field(value.field).column)} FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)} = %s)"
    if isinstance(value, Counter):
        params.append(value.offset)
        sql += " + %s"
    return sql
