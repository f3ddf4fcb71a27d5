"""Reflect tables into parity's neutral model, with SQLAlchemy's Inspector and the dialect's hooks."""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import replace
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from parity.dialects.base import inspecting
from parity.endpoint import Endpoint, driver_message
from parity.errors import NotFound, ParityError, SchemaError, not_found
from parity.schema.model import Check, Column, Default, ForeignKey, Generated, Index, Table
from parity.schema.types import INTEGER_KINDS, STRING_KINDS, CanonicalType, Kind
from parity.values import DECODE_ERRORS, decode_value

_TIMES = (Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ)

STATE_PREFIX = "_parity_"
"""parity's own tables in a user's database start with this; they are never selected as user tables."""


def table_names(endpoint: Endpoint) -> list[str]:
    """Every user table in the endpoint's schema, sorted, without parity's own tables."""
    with endpoint.connect() as conn:
        names = endpoint.dialect.table_names(conn, endpoint.schema)
    return sorted(n for n in names if not n.startswith(STATE_PREFIX))


def inner_tables(endpoint: Endpoint) -> dict[str, str]:
    """The endpoint's tables whose rows a read of another of its tables includes, each with that table
    (``Dialect.inner_tables``)."""
    with endpoint.connect() as conn:
        return endpoint.dialect.inner_tables(conn, endpoint.schema)


def view_names(endpoint: Endpoint) -> list[str]:
    """The views in the endpoint's schema (none where reflection cannot list them)."""
    names: list[str] = []
    with endpoint.connect() as conn:
        inspector = sa.inspect(conn)
        for listing in (inspector.get_view_names, inspector.get_materialized_view_names):
            with suppress(sa.exc.SQLAlchemyError, NotImplementedError):  # (none where a database has none)
                names += listing(schema=endpoint.schema)
    return names


def select_tables(
    available: Sequence[str],
    names: Iterable[str] = (),
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    where: str = "",
    views: Callable[[], Sequence[str]] | None = None,
) -> list[str]:
    """Resolve table names and include/exclude patterns: the tables named, and those the include
    patterns match (every table where neither is given), less those the exclude patterns match. An
    unknown name, or an include pattern matching no table, is an error with a suggestion; a name of
    one of the ``views`` says so."""
    names, include, exclude = list(names), list(include), list(exclude)
    chosen: list[str] = []
    for name in names:
        if name not in available:
            if views is not None and name in views():
                place = f" in {where}" if where else ""
                raise NotFound(f"'{name}'{place} is a view: parity copies and compares tables")
            raise not_found("table", name, available, where)
        chosen.append(name)
    for pattern in include:  # (a typo, or a case the database spells otherwise, matched nothing)
        if not any(fnmatch.fnmatchcase(t, pattern) for t in available):
            raise not_found("table", pattern, available, where)
    if include or not names:
        patterns = include or ["*"]
        chosen += [
            t for t in available if t not in chosen and any(fnmatch.fnmatchcase(t, p) for p in patterns)
        ]
    return [t for t in chosen if not any(fnmatch.fnmatchcase(t, p) for p in exclude)]


def reflect(
    endpoint: Endpoint, names: Iterable[str], overrides: dict[str, dict[str, CanonicalType]] | None = None
) -> list[Table]:
    """Reflect the named tables. ``overrides`` maps table -> column -> canonical type (from the job file)."""
    overrides = overrides or {}
    try:
        with endpoint.connect() as conn, inspecting(conn):
            tables = [_reflect_one(endpoint, conn, name, overrides.get(name, {})) for name in names]
        return _as_referenced(tables, overrides)
    except sa.exc.DBAPIError as exc:
        raise ParityError(f"cannot read the schema of {endpoint.redacted()}: {driver_message(exc)}") from exc


_MOMENTS = (Kind.DATE, *_TIMES)


def _unfit_default(default: Default, ctype: CanonicalType) -> str | None:
    """Why a default the column's kind cannot take is left out, or None: the current time of a text
    column (MySQL takes none there, and another database would write it in its own form), a text that
    is no time of a time column (SQLite keeps DEFAULT 'now' as that text; PostgreSQL took it for the
    moment of the CREATE, MariaDB refused it, as MySQL's zero dates), a float default that is no
    finite number (PostgreSQL's 'NaN')."""
    kind = ctype.kind
    if default.now:
        return None if kind in _MOMENTS else f"is the current time, and the column is {kind.value}"
    value = default.literal
    if not isinstance(value, str) or kind not in (*_MOMENTS, Kind.FLOAT, Kind.DOUBLE, Kind.DECIMAL):
        return None
    try:
        decoded = decode_value(kind, value)
    except DECODE_ERRORS:
        return f"is no {kind.value}"
    if isinstance(decoded, float | Decimal) and not math.isfinite(decoded):
        return f"is no finite {kind.value}"
    return None


def _as_referenced(tables: list[Table], overrides: dict[str, dict[str, CanonicalType]]) -> list[Table]:
    """A whole-number DECIMAL column that alone references an integer identity of these tables takes
    its type (MySQL's BIGINT UNSIGNED is a DECIMAL(20) but where it is an AUTO_INCREMENT id, which is
    made a BIGINT identity: the FK between the two types was refused, after every row was copied)."""
    by_name = {t.name: t for t in tables}
    out = []
    for table in tables:
        changed: dict[str, CanonicalType] = {}
        for fk in table.foreign_keys:
            parent = by_name.get(fk.ref_table) if fk.ref_schema is None else None
            if parent is None or len(fk.columns) != 1 or fk.columns[0] in overrides.get(table.name, {}):
                continue
            ref = next((c for c in parent.columns if c.name == fk.ref_columns[0]), None)
            col = next((c for c in table.columns if c.name == fk.columns[0]), None)
            if (
                ref is not None
                and col is not None
                and ref.identity
                and ref.type.kind in INTEGER_KINDS
                and col.type.kind is Kind.DECIMAL
                and col.type.scale == 0
            ):
                changed[col.name] = ref.type
        if changed:
            columns = tuple(
                replace(c, type=changed[c.name]) if c.name in changed else c for c in table.columns
            )
            notes = tuple(f"{table.name}.{n}: {changed[n]}, as the id it references" for n in changed)
            out.append(replace(table, columns=columns, notes=table.notes + notes))
        else:
            out.append(table)
    return out


def _reflect_one(
    endpoint: Endpoint, conn: Connection, name: str, overrides: dict[str, CanonicalType]
) -> Table:
    schema, dialect = endpoint.schema, endpoint.dialect
    try:
        raw_columns = dialect.columns(conn, name, schema)
    except sa.exc.NoSuchTableError as exc:
        raise not_found("table", name, table_names(endpoint), endpoint.redacted()) from exc
    pk = dialect.primary_key(conn, name, schema)
    pk_nulls = dialect.primary_key_nulls(conn, name, schema, pk)
    columns, notes = [], []
    for info in raw_columns:
        native = dialect.canonical_type(info, conn, name, schema)
        ctype = overrides.get(info["name"]) or native
        if ctype is None:
            notes.append(
                f"{name}.{info['name']}: type {info['type']!s} has no portable mapping; stored as text"
            )
            ctype = CanonicalType(Kind.TEXT)
        as_text = ctype.kind in STRING_KINDS and (
            native is None or native.kind not in STRING_KINDS or isinstance(info["type"], sa.Enum)
        )  # (an enum is no text to text functions: PostgreSQL has no octet_length() of one)
        identity = dialect.is_identity(info, pk)
        if identity and ctype.kind is Kind.DECIMAL and ctype.scale == 0 and info["name"] not in overrides:
            ctype = CanonicalType(Kind.BIGINT)  # (MySQL's BIGINT UNSIGNED AUTO_INCREMENT: a DECIMAL(20) is
            unsigned = " UNSIGNED" if getattr(info["type"], "unsigned", False) else ""
            notes.append(  # no identity anywhere, and the target's new rows had no id)
                f"{name}.{info['name']}: {info['type']!s}{unsigned}, an identity, made a BIGINT identity:"
                " an id past 9223372036854775807 would be rejected"
            )
        generated = _generated(info, conn.dialect.name)
        default_text = _default_text(info)
        at = _on_update(default_text or "")
        if at is not None and default_text:  # (MySQL's DEFAULT ... ON UPDATE ...: the default is kept,
            default_text, rule = default_text[:at], default_text[at:]  # the update rule is not)
            notes.append(
                f"{name}.{info['name']}: {rule.strip()} is not carried over "
                "(set the column where the application updates a row)"
            )
        if default_text is not None and default_text.strip().upper() == "NULL":
            default_text = None  # (no default)
        default = None if identity or generated else dialect.parse_default(default_text)
        if default is None and default_text is not None and not (identity or generated):
            notes.append(f"{name}.{info['name']}: default {default_text} is not portable; not carried over")
        elif default is not None and (why := _unfit_default(default, ctype)) is not None:
            notes.append(f"{name}.{info['name']}: default {default_text} {why}; not carried over")
            default = None
        columns.append(
            Column(
                name=info["name"],
                type=ctype,
                nullable=bool(info.get("nullable", True))
                and (info["name"] not in pk or info["name"] in pk_nulls),
                default=default,
                identity=identity,
                native_type=_native(info["type"]),
                fraction=_fraction(dialect, info, ctype, overrides.get(info["name"])),
                generated=generated,
                # (a time's digits of a second set by an override: the values may hold more)
                wider_than_declared=dialect.wider_than_declared(info, conn, name, schema)
                or (info["name"] in overrides and ctype.kind in _TIMES),
                read_as_text=as_text,
                collation=_own_collation(info, conn.dialect.name) if ctype.kind in STRING_KINDS else None,
            )
        )
    for col in overrides:
        if col not in {c.name for c in columns}:
            raise not_found(
                "column", col, [c.name for c in columns], where=f"table '{name}' (types override)"
            )
    raw_indexes = dialect.indexes(conn, name, schema)
    prefixed = {ix.get("name") for ix in raw_indexes if _prefix_lengths(ix) or _sorting(ix)}
    uniques = tuple(  # (MySQL's unique key on a prefix of a column, or DESC: an index of its own, with it)
        Index(n, cols, unique=True)
        for n, cols in dialect.unique_constraints(conn, name, schema)
        if n is None or n not in prefixed
    )
    indexes = _indexes(raw_indexes, uniques, pk, name, notes)
    fks = tuple(
        _foreign_key(fk, schema)
        for fk in dialect.foreign_keys(conn, name, schema)
        if fk.get("referred_table")
    )
    checks = tuple(
        Check(c.get("name"), c["sqltext"], conn.dialect.name)
        for c in dialect.check_constraints(conn, name, schema)
    )
    notes += dialect.table_notes(conn, name, schema)
    return Table(name, tuple(columns), schema, pk, uniques, indexes, fks, checks, tuple(notes))


def _own_collation(info: dict[str, Any], dialect: str) -> str | None:
    """A MySQL/MariaDB column's own collation (SQLAlchemy reads the ones SHOW CREATE TABLE states: those
    other than the table's), as utf8mb4 spells it: parity makes text columns utf8mb4 there. utf8mb3's
    are utf8mb4's of the same name; a binary one of another character set is ``utf8mb4_bin``; others
    (latin1_swedish_ci ...) have no utf8mb4 twin: None."""
    collation = getattr(info["type"], "collation", None)
    if dialect not in ("mysql", "mariadb") or not isinstance(collation, str):
        return None
    charset, _, rest = collation.lower().partition("_")
    if charset == "utf8mb4":
        return collation.lower()
    if charset in ("utf8", "utf8mb3"):
        return f"utf8mb4_{rest}"
    return "utf8mb4_bin" if rest == "bin" or charset == "binary" else None


def _generated(info: dict[str, Any], dialect: str) -> Generated | None:
    computed = info.get("computed")
    if not computed:
        return None
    # SQLAlchemy's SQLite reflection cuts the expression out of the CREATE TABLE text by a pattern
    # that can take in the next column's definition: the expression is not known exactly there
    expression = None if dialect == "sqlite" else str(computed.get("sqltext") or "") or None
    return Generated(expression, bool(computed.get("persisted")), dialect)


_ON_UPDATE = re.compile(r"\s+on\s+update\s+", re.IGNORECASE)
"""MySQL/MariaDB's ``ON UPDATE CURRENT_TIMESTAMP`` after a column's default, as reflection gives it."""


def _on_update(text: str) -> int | None:
    """Where the ``ON UPDATE ...`` after a default starts, not one inside its quoted text ('do it on
    update'); None where there is none."""
    return next((m.start() for m in _ON_UPDATE.finditer(text) if text[: m.start()].count("'") % 2 == 0), None)


def _default_text(info: dict[str, Any]) -> str | None:
    default = info.get("default")
    return None if default is None else str(default)


def _fraction(
    dialect: Any, info: dict[str, Any], ctype: CanonicalType, override: CanonicalType | None
) -> int | None:
    """The digits of a second a time or timestamp column keeps: an override's (``timestamp(0)``),
    else as the database declares it."""
    if ctype.kind not in _TIMES:
        return None
    if override is not None and override.length is not None:
        return override.length
    return dialect.fraction_digits(info["type"])


def _native(t: Any) -> str:
    try:
        return str(t)
    except Exception:  # some reflected types cannot compile without their dialect
        return type(t).__name__


def _indexes(
    raw: list[Any], uniques: tuple[Index, ...], pk: tuple[str, ...], table: str, notes: list[str]
) -> tuple[Index, ...]:
    taken = {u.columns for u in uniques} | {pk}
    out = []
    for ix in raw:
        cols = tuple(ix.get("column_names") or ())
        lengths = _prefix_lengths(ix)
        if ix.get("duplicates_constraint") or (cols in taken and not lengths and not _sorting(ix)):
            continue
        if not cols or any(c is None for c in cols):
            notes.append(f"{table}: expression index {ix.get('name')} is not portable; skipped")
            continue
        unique = bool(ix.get("unique"))
        options = ix.get("dialect_options") or {}
        where = next((options[k] for k in options if k.endswith("_where") and options[k] is not None), None)
        if where is not None:  # a partial index: its condition is the source's SQL, not portable
            held = ", and not unique (unique on all rows, it would refuse rows the source holds)"
            notes.append(
                f"{table}: partial index {ix.get('name')} (WHERE {where}) is made without its condition"
                + (held if unique else "")
            )
            unique = False
        prefixes = tuple(lengths.get(c) for c in cols)
        method, method_of = _method(options)
        ops = options.get("postgresql_ops") or {}
        sorting = _sorting(ix)
        include = next((options[k] for k in options if k.endswith("_include") and options[k]), ())
        out.append(
            Index(
                ix.get("name"),
                cols,
                unique,
                prefixes if any(prefixes) else (),
                method,
                method_of,
                tuple((c, str(ops[c])) for c in cols if ops.get(c)) if method else (),
                sorting=tuple(sorting.get(c, ()) for c in cols) if sorting else (),
                include=tuple(include),
            )
        )
    return tuple(out)


def _method(options: dict[str, Any]) -> tuple[str | None, str]:
    """An index's kind where it is no B-tree: MySQL's FULLTEXT or SPATIAL, PostgreSQL's hash, gin, gist,
    brin ...; and the database kind it belongs to."""
    search = next((options[k] for k in options if k.endswith("_prefix") and options[k]), None)
    if search:
        return str(search).upper(), "mysql"
    using = str(options.get("postgresql_using") or "btree").lower()
    return (None, "") if using == "btree" else (using, "postgresql")


def _sorting(ix: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """How the index orders each column that it does not hold ascending by default (DESC, NULLS FIRST)."""
    found = ix.get("column_sorting") or {}
    return {c: tuple(str(m) for m in found[c]) for c in found if found[c]}


def _prefix_lengths(ix: dict[str, Any]) -> dict[str, int]:
    """The characters of each column a MySQL index holds, where it holds a prefix (``name(5)``)."""
    options = ix.get("dialect_options") or {}
    lengths = next((options[k] for k in options if k.endswith("_length") and options[k]), None)
    if isinstance(lengths, int):  # (one length for every column)
        return dict.fromkeys(ix.get("column_names") or (), lengths)
    return {c: n for c, n in lengths.items() if n} if isinstance(lengths, dict) else {}


def _foreign_key(fk: dict[str, Any], schema: str | None) -> ForeignKey:
    options = fk.get("options") or {}
    ref_schema = fk.get("referred_schema")
    return ForeignKey(
        name=fk.get("name"),
        columns=tuple(fk["constrained_columns"]),
        ref_table=fk["referred_table"],
        ref_columns=tuple(fk["referred_columns"]),
        ref_schema=None if ref_schema == schema else ref_schema,
        ondelete=_fk_action(options.get("ondelete")),
        onupdate=_fk_action(options.get("onupdate")),
    )


def _fk_action(action: str | None) -> str | None:
    if not action:
        return None
    action = action.upper()
    return action if action in ("CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT") else None


def require_table(tables: Sequence[Table], name: str) -> Table:
    for t in tables:
        if t.name == name:
            return t
    raise SchemaError(f"table '{name}' was not reflected")
