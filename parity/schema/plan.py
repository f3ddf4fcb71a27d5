"""Plan the DDL that makes a target hold the source tables: create what is missing, extend what exists.

Nothing is ever dropped or narrowed. A target column that cannot hold the source's values is a
problem reported in the plan, never altered. DDL is compiled by SQLAlchemy (CREATE TABLE, indexes,
constraints) and Alembic (ADD COLUMN) for the target's dialect, so plans for Oracle and SQL Server
compile without a server.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect as SADialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import AddConstraint, CreateIndex, CreateTable

from parity.dialects.base import TABLE_OPTIONS, Dialect, LossyType, RawType
from parity.dialects.duckdb import register_alembic
from parity.schema.model import Column, ForeignKey, Index, Table
from parity.schema.order import fk_order
from parity.schema.types import INTEGER_KINDS, STRING_KINDS, CanonicalType, Kind, holds
from parity.sqltext import as_sent

_TIMES = (Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ)
_INTEGER_TYPES = {Kind.SMALLINT: sa.SmallInteger, Kind.INTEGER: sa.Integer, Kind.BIGINT: sa.BigInteger}


@dataclass(frozen=True)
class Step:
    table: str
    action: str
    sql: str
    column: str | None = None
    """The column an "add column" step adds."""


@dataclass
class SchemaPlan:
    """What would make the target hold the source: DDL steps in order, and what to tell the user."""

    steps: list[Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Existing target columns that cannot hold the source's values (reported, never altered)."""

    order: list[str] = field(default_factory=list)
    """Target tables in FK order (parents first)."""

    names: dict[str, str] = field(default_factory=dict)
    """Source table -> target table."""

    generated: dict[str, set[str]] = field(default_factory=dict)
    """Target table -> its columns the target computes (existing ones, and ones created so): never
    written to."""

    fractions: dict[str, dict[str, int]] = field(default_factory=dict)
    """Target table -> its existing time and timestamp columns that keep fewer digits of a second
    than the source's values may hold (SQLite's, or a ``types:`` override's), and how many: a row
    with more is rejected, not rounded or cut by the target without a word."""

    decimals: dict[str, dict[str, int | None]] = field(default_factory=dict)
    """Target table -> its decimal columns, and the decimals each keeps (None: as many as it is given),
    as the target holds them (an existing table) or as they are created."""

    def sql(self) -> str:
        lines = [f"-- warning: {w}" for w in self.warnings]
        lines += [f"-- problem: {p}" for p in self.problems]
        lines += [f"{s.sql.strip()};" for s in self.steps]
        return "\n".join(lines) + ("\n" if lines else "")


@dataclass
class _Context:
    dialect: Dialect
    sa_dialect: SADialect
    schema: str | None
    names: Mapping[str, str]
    existing: Mapping[str, Table]
    metadata: sa.MetaData = field(default_factory=sa.MetaData)
    used_names: set[str] = field(default_factory=set)
    plan: SchemaPlan = field(default_factory=SchemaPlan)
    defer_keys: set[str] = field(default_factory=set)
    defer_fks: set[str] = field(default_factory=set)
    tables: Mapping[str, Table] = field(default_factory=dict)
    """The source tables, by name."""
    assigned: Collection[str] = ()
    """Source tables whose IDs the target assigns (``--remap-ids``)."""
    remapped: Collection[str] = ()
    """Source tables a copy gives new IDs, which the references to them are rewritten to."""
    exact_keys: bool = False
    """Whether the source's keys compare text by its exact characters (``Dialect.exact_collation``)."""
    folded_keys: bool = False
    """Whether the source's keys fold text (MySQL's and SQL Server's collations ignore case and trailing
    spaces): into a database whose keys do not, its text keys are named in warnings (weaker there)."""


def plan_schema(
    source: Sequence[Table],
    dialect: Dialect,
    sa_dialect: SADialect,
    existing: Mapping[str, Table],
    schema: str | None = None,
    names: Mapping[str, str] | None = None,
    defer_keys: Collection[str] = (),
    assigned: Collection[str] = (),
    remapped: Collection[str] = (),
    missing_keys: bool = False,
    taken: Collection[str] = (),
    exact_keys: bool = False,
    folded_keys: bool = False,
) -> SchemaPlan:
    """Plan DDL for the source tables into a target whose existing tables (by target name) are given.

    ``defer_keys``: source tables whose primary key, unique constraints and indexes may come after
    their rows (``Dialect.DEFERS_KEYS``: a copy into a table it creates); they become "add key" steps,
    and the FKs that reference such a table "add foreign key" steps (an FK needs the key it references).
    Where the target adds FKs after the rows (``Dialect.DEFERS_FOREIGN_KEYS``), those of these tables
    are such steps too, each after a "check foreign key" step: a query for a row that references none.

    ``remapped``: source tables whose rows a copy gives new IDs (``--remap-ids``). The references to
    them are rewritten through the ID map, which finds each row's parent (a row whose parent has no new
    ID is rejected): where the target builds keys after the rows (``Dialect.DEFERS_KEYS``), a table made
    here gets its FKs to them after its rows too (PostgreSQL checked each of 200,000 rows' parent as it
    came: a load of 0.55 s took 1.6 s; the FK added after them, 0.05 s). Not MySQL/MariaDB's: InnoDB
    then builds the FK's index after the rows too (3.2 s of 200,000, where the load checked them in 1).

    ``taken``: names in the target's schema that a new index or constraint may not take
    (``Dialect.taken_names``). ``missing_keys``: name in warnings the source's indexes, unique keys and FKs that an existing
    table lacks (``parity schema``; a copy adds the ones it deferred itself at its end). ``exact_keys``:
    the source's keys compare text by its exact characters, which the text columns of the keys of tables
    made here then do too (``Dialect.exact_collation``); ``folded_keys``: they fold text (MySQL's
    collations), and the text keys of tables made where keys do not are named in warnings.

    Raises SchemaError when a source type cannot be held exactly by the target and no override was given.
    """
    names = {t.name: (names or {}).get(t.name, t.name) for t in source}
    used = set(taken)
    if not dialect.TABLE_SCOPED_INDEX_NAMES:  # (an index named as a table made here: MySQL names an FK's
        used |= set(names.values()) | set(existing)  # index after the table it references)
    ctx = _Context(
        dialect,
        sa_dialect,
        schema,
        names,
        existing,
        assigned=assigned,
        remapped=remapped,
        used_names=used,
        exact_keys=exact_keys,
        folded_keys=folded_keys,
    )
    if dialect.DEFERS_KEYS and defer_keys:
        ctx.defer_keys = {t.name for t in source if names[t.name] not in existing} & set(defer_keys)
    if dialect.DEFERS_FOREIGN_KEYS and defer_keys:
        ctx.defer_fks = {t.name for t in source if names[t.name] not in existing} & set(defer_keys)
    ctx.plan.names = dict(names)
    order, deferred = fk_order(source)
    by_name = ctx.tables = {t.name: t for t in source}
    lossy: list[str] = []
    later: list[Step] = []
    for name in order:
        table = by_name[name]
        ctx.plan.warnings.extend(table.notes)
        ctx.plan.decimals[names[name]] = _kept_decimals(ctx, table, existing.get(names[name]))
        if names[name] not in existing:
            lossy += _too_long(sa_dialect, [names[name], *(c.name for c in table.columns)], names[name])
        if names[name] in existing:
            _extend(ctx, table, existing[names[name]], lossy)
            if missing_keys:
                _missing_keys(ctx, table, existing[names[name]])
        else:
            later += _create(ctx, table, {fk for (t, fk) in deferred if t == name}, lossy)
    ctx.plan.steps.extend(later)
    if lossy:
        from parity.errors import SchemaError

        raise SchemaError("; ".join(lossy))
    ctx.plan.order = [names[n] for n in order]
    return ctx.plan


def _too_long(sa_dialect: SADialect, names: Sequence[str], table: str) -> list[str]:
    """The names longer than the target takes (PostgreSQL cuts them to 63 bytes without a word, and a
    table of two such names, or a column, was another's): a problem each, before any DDL."""
    most = sa_dialect.max_identifier_length
    if sa_dialect.name != "postgresql" or not most:  # (others refuse such a name in one line, or take it)
        return []
    in_bytes = True
    return [
        f"{table}: the name '{name}' is longer than {sa_dialect.name} takes ({most} {'bytes' if in_bytes else 'characters'});"
        " give it a shorter one (-t SOURCE:TARGET for a table, map: for a column)"
        for name in names
        if (len(name.encode("utf-8")) if in_bytes else len(name)) > most
    ]


def _column_type(ctx: _Context, table: Table, col: Column, lossy: list[str]) -> sa.types.TypeEngine:
    if col.identity and col.type.kind in INTEGER_KINDS and ctx.dialect.HAS_IDENTITY:
        if ctx.sa_dialect.name == "sqlite":
            return sa.Integer()
        return _INTEGER_TYPES[col.type.kind]()
    referenced = _referenced_integer(ctx, table, col)
    if referenced is not None and referenced != col.type:
        ctx.plan.warnings.append(
            f"{table.name}.{col.name} {col.type}: {referenced}, as the column it references in the existing "
            "table (MySQL/MariaDB refuse a foreign key between integer types of two sizes)"
        )
        col = Column(col.name, referenced, col.nullable)
    length = _key_text_length(ctx, table, col)
    if length is not None and col.type.kind is Kind.BINARY:
        ctx.plan.warnings.append(
            f"{table.name}.{col.name} binary: a key column, VARBINARY({length}) in {ctx.sa_dialect.name}"
            " (its keys hold no BLOB); longer values are rejected"
        )
        return RawType(ctx.dialect.ddl_type(CanonicalType(Kind.BINARY, length=length))[0])
    if length is not None:
        ctx.plan.warnings.append(
            f"{table.name}.{col.name} text: a key column, VARCHAR({length}) in {ctx.sa_dialect.name} "
            "(its keys hold no TEXT); longer values are rejected"
        )
        return RawType(ctx.dialect.ddl_type(CanonicalType(Kind.VARCHAR, length=length))[0])
    try:
        spec, note = ctx.dialect.ddl_type(col.type)
    except LossyType as exc:
        lossy.append(
            f"{table.name}.{col.name}: {exc} in {ctx.sa_dialect.name}; override its type "
            f"in the job file (tables: - name: {table.name}, types: {{{col.name}: ...}})"
        )
        return RawType(str(col.type))  # compiles, so planning goes on and reports every such column
    if note:
        ctx.plan.warnings.append(f"{table.name}.{col.name} {col.type}: {note}")
    return RawType(spec)


def _referenced_integer(ctx: _Context, table: Table, col: Column) -> CanonicalType | None:
    """The integer type of the existing target column that ``col`` alone references, if any: where it
    is a key of its table (else the FK is not made, and the column keeps its own type)."""
    if col.type.kind not in INTEGER_KINDS:
        return None
    for fk in table.foreign_keys:
        if fk.columns != (col.name,) or fk.ref_schema is not None:
            continue
        parent = ctx.existing.get(ctx.names.get(fk.ref_table, fk.ref_table))
        if parent is None or {fk.ref_columns[0].lower()} not in _unique_keys(parent):
            continue
        found = next((c for c in parent.columns if c.name == fk.ref_columns[0]), None)
        if found is not None and found.type.kind in INTEGER_KINDS:
            return found.type
    return None


def _key_text_length(ctx: _Context, table: Table, col: Column) -> int | None:
    """Where the target's keys hold no TEXT (``Dialect.KEY_TEXT_CHARS``), the length of the VARCHAR a
    TEXT column of the primary key or of a foreign key (which MySQL indexes) is made instead; of a
    binary column of no length, the bytes of its VARBINARY."""
    if not _unbounded(col.type) or not ctx.dialect.KEY_TEXT_CHARS:
        return None
    referenced = [  # (another table's FK references them: a key held unique, which the FK needs)
        fk.ref_columns
        for other in ctx.tables.values()
        for fk in other.foreign_keys
        if fk.ref_table == table.name and fk.ref_schema is None
    ]
    keys = [
        k
        for k in (table.primary_key, *(fk.columns for fk in table.foreign_keys), *referenced)
        if col.name in k
    ]
    lengths = []
    for key in keys:  # (the key's other columns take their bytes first; the text columns share the rest)
        types = [table.column(c).type for c in key]
        texts = sum(map(_unbounded, types))
        others = sum(_key_bytes(t) for t in types if not _unbounded(t))
        share = (ctx.dialect.KEY_TEXT_CHARS * 4 - others) // texts  # (bytes; a character takes 4)
        lengths.append(max(1, share if col.type.kind is Kind.BINARY else share // 4))
    return min(lengths) if lengths else None


def _unbounded(ctype: CanonicalType) -> bool:
    """A TEXT, or a binary type of no length: no key of MySQL's holds it whole."""
    return ctype.kind is Kind.TEXT or (ctype.kind is Kind.BINARY and not ctype.length)


def _text_prefixes(ctx: _Context, table: Table, columns: Sequence[str]) -> dict[str, int]:
    """Where the target's keys hold no TEXT and a few thousand bytes at most (``Dialect.KEY_TEXT_CHARS``),
    the characters an index takes of each of its text columns that does not fit whole (a prefix): a
    TEXT column, or a VARCHAR too long for what the key's other columns leave (MySQL's `KEY (name(20))`
    on a VARCHAR(2000)); the columns that fit are taken whole, the others share the rest. Empty where
    every column fits."""
    if not ctx.dialect.KEY_TEXT_CHARS:
        return {}
    kept = {c: _key_text_length(ctx, table, table.column(c)) for c in columns}  # (made VARCHAR: whole)
    types = {c: table.column(c).type for c in columns}
    chars: dict[str, int | None] = {  # (a string column's characters, None for TEXT)
        c: kept[c] or (t.length if t.kind is not Kind.TEXT else None)
        for c, t in types.items()
        if t.kind in STRING_KINDS
    }
    budget = ctx.dialect.KEY_TEXT_CHARS * 4 - sum(_key_bytes(t) for c, t in types.items() if c not in chars)
    left = dict(chars)
    while left:  # (the columns that fit in an equal share are taken whole, and leave the rest to the others)
        share = budget // 4 // len(left)
        whole = {c: n for c, n in left.items() if n is not None and n <= share}
        if not whole:
            break
        budget -= 4 * sum(whole.values())
        left = {c: n for c, n in left.items() if c not in whole}
    if not left:
        return {}
    return dict.fromkeys(left, max(1, budget // 4 // len(left)))


def _method_index(ctx: _Context, target: str, table: Table, ix: Index, sa_table: sa.Table) -> Any:
    """CREATE INDEX of an index of its own kind (``Index.method``), into a database of that kind."""
    options: dict[str, Any] = (
        {f"{ctx.sa_dialect.name}_prefix": ix.method}
        if _mysql(ctx)
        else {"postgresql_using": ix.method, "postgresql_ops": dict(ix.method_ops)}
    )
    name = _constraint_name(ctx, target, ix.name, "ix", ix.columns, table.name)
    parts, more = _index_parts(ctx, table, sa_table, ix, {})
    return CreateIndex(sa.Index(name, *parts, unique=ix.unique, **options, **more))


def _index_parts(
    ctx: _Context, table: Table, sa_table: sa.Table, ix: Index, lengths: dict[str, int]
) -> tuple[list[Any], dict[str, Any]]:
    """An index's columns as CREATE INDEX names them in the target: each in its order (DESC where the
    target has it, NULLS FIRST/LAST into PostgreSQL), MySQL's with its prefix length; and its dialect
    options (the prefix lengths, INCLUDE)."""
    name = ctx.sa_dialect.name
    sorting = dict(zip(ix.columns, ix.sorting, strict=False))
    ordered = any(sorting.values()) and name != "duckdb"  # (DuckDB's indexes have no order)
    by_part = ordered and _mysql(ctx) and bool(lengths)  # (SQLAlchemy names a prefix only of a bare column)
    options: dict[str, Any] = {f"{name}_length": lengths} if lengths and not by_part else {}
    if ix.include and name in ("postgresql", "mssql"):
        options[f"{name}_include"] = list(ix.include)
    elif ix.include:
        ctx.plan.warnings.append(
            f"{table.name}: index {ix.name or ''} on ({', '.join(ix.columns)}) also holds"
            f" {', '.join(ix.include)} (INCLUDE), which {name} cannot: made without them"
        )
    if not ordered:
        return [sa_table.c[c] for c in ix.columns], options
    parts: list[Any] = []
    for c in ix.columns:
        desc = "desc" in sorting.get(c, ())
        if by_part:
            parts.append(_MySQLKeyPart(sa_table.c[c], lengths.get(c), desc))
            continue
        part: Any = sa_table.c[c].desc() if desc else sa_table.c[c]
        if name == "postgresql" and "nulls_first" in sorting.get(c, ()):
            part = part.nulls_first()
        elif name == "postgresql" and "nulls_last" in sorting.get(c, ()):
            part = part.nulls_last()
        parts.append(part)
    return parts, options


class _MySQLKeyPart(sa.ColumnElement[Any]):
    """One column of a MySQL index with its prefix and order: ``name(5) DESC``."""

    inherit_cache = False

    def __init__(self, column: sa.Column[Any], length: int | None, desc: bool) -> None:
        self.column, self.length, self.descending = column, length, desc

    def get_children(self, **kw: Any) -> list[Any]:  # (so that the index finds its table)
        return [self.column]


@compiles(_MySQLKeyPart)
def _mysql_key_part(part: _MySQLKeyPart, compiler: Any, **kw: Any) -> str:
    length = f"({int(part.length)})" if part.length else ""
    return f"{compiler.process(part.column, **kw)}{length}{' DESC' if part.descending else ''}"


def _mysql(ctx: _Context) -> bool:
    return ctx.sa_dialect.name in ("mysql", "mariadb")


def _short_string(ctype: CanonicalType) -> bool:
    """A VARCHAR or CHAR short enough for any database's index to hold its values whole."""
    return ctype.kind in (Kind.VARCHAR, Kind.CHAR) and ctype.length is not None and ctype.length <= 255


def _hash_lookups(ctx: _Context, table: Table) -> list[Index]:
    """Beside each unique key MariaDB holds by a hash of its values (one on TEXT, too long for a key),
    which its queries never search by: a plain index of their first characters, so that a row is found
    by its key (copy's natural keys: a lookup a row that scanned the table, 200,000 rows in hours; diff's
    and sync's rows by key), unless an index of the table starts with those columns already."""
    if not _long_unique(ctx):
        return []
    plain = [i.columns for i in table.indexes if not i.unique and not i.method]
    return [
        Index(None, cols)
        for cols in dict.fromkeys(_unique_columns(table))
        if _text_prefixes(ctx, table, cols) and not any(p[: len(cols)] == cols for p in plain)
    ]


def _held_by_hash(ctx: _Context, table: Table) -> bool:
    """Whether MariaDB holds a unique key of the table by a hash of its values (``_long_unique``): then
    every ALTER TABLE copies the table whole (an FK added after 1M rows: 40 s, where the rows took 38),
    so its FKs are declared with it, its rows loaded with the FK checks off, and a query after them
    looks for rows that reference none (a "check foreign key" step alone), as where the FK is added
    after them."""
    return _long_unique(ctx) and any(_text_prefixes(ctx, table, cols) for cols in _unique_columns(table))


def _unique_columns(table: Table) -> list[Any]:
    """The columns of the table's unique constraints and unique indexes, as they name them."""
    return [*(u.columns for u in table.uniques), *(i.columns for i in table.indexes if i.unique)]


def _long_unique(ctx: _Context) -> bool:
    """Whether a unique key may hold a TEXT or long VARCHAR whole (MariaDB 10.4 on: it keeps a hash of
    the values; MySQL indexes no TEXT whole, and a unique key on a prefix would refuse rows)."""
    return bool(getattr(ctx.sa_dialect, "is_mariadb", False))


def _key_bytes(ctype: CanonicalType) -> int:
    """The most bytes a value of ``ctype`` takes in a MySQL key (utf8mb4: 4 a character)."""
    if ctype.kind in (Kind.VARCHAR, Kind.CHAR):
        return 4 * (ctype.length or 1)
    if ctype.kind is Kind.DECIMAL:
        return 4 * ((ctype.precision or 65) // 9 + 2)
    if ctype.kind is Kind.BINARY:
        return ctype.length or 8
    return {Kind.BOOLEAN: 1, Kind.SMALLINT: 2, Kind.INTEGER: 4, Kind.DATE: 3, Kind.UUID: 16}.get(
        ctype.kind, 8
    )


_KEY_IDENTITY_ONLY = ("mysql", "mariadb", "sqlite")
"""Databases whose DDL here generates the values of a column that is the primary key alone."""


def _sa_column(
    ctx: _Context, table: Table, col: Column, lossy: list[str], force_nullable: bool = False
) -> sa.Column:
    type_ = _column_type(ctx, table, col, lossy)
    kwargs: dict[str, Any] = {}
    identity = col.identity and col.type.kind in INTEGER_KINDS
    if identity and not ctx.dialect.HAS_IDENTITY:
        ctx.plan.warnings.append(
            f"{table.name}.{col.name}: {ctx.sa_dialect.name} has no identity columns; values are copied"
        )
    args: list[Any] = []
    generated = col.generated
    if generated is not None and generated.expression and generated.dialect == ctx.sa_dialect.name:
        args.append(sa.Computed(sa.text(generated.expression), persisted=generated.stored))
        ctx.plan.generated.setdefault(ctx.names[table.name], set()).add(col.name)
    elif generated is not None:
        how = (
            f" as {generated.expression} (in {generated.dialect}'s SQL)"
            if generated.expression
            else " (by an expression not carried over: not known exactly, or naming columns renamed or left out)"
        )
        ctx.plan.warnings.append(
            f"{table.name}.{col.name} is computed by the source{how}; created as a plain column holding"
            " the source's values"
        )
    own_key = table.primary_key == (col.name,)
    if identity and ctx.dialect.HAS_IDENTITY and not own_key and ctx.sa_dialect.name in _KEY_IDENTITY_ONLY:
        identity = False
        ctx.plan.warnings.append(
            f"{table.name}.{col.name}: generated by the source, but no primary key of its own: a plain"
            f" column in {ctx.sa_dialect.name} (values are copied; new rows must give one)"
        )
    if identity and ctx.dialect.HAS_IDENTITY:
        kwargs["autoincrement"] = True
        if ctx.sa_dialect.name in ("postgresql", "oracle", "mssql"):
            args.append(sa.Identity())
    else:
        kwargs["autoincrement"] = False
    if col.default is not None and not identity and not args:
        clause = ctx.dialect.render_default(col.default, col.type)
        if clause is not None:
            kwargs["server_default"] = clause
    # (a key's columns NOT NULL, where SQLite's may hold NULL: such rows are rejected, not the key)
    nullable = True if force_nullable else col.nullable and col.name not in table.primary_key
    return sa.Column(col.name, type_, *args, nullable=nullable, **kwargs)


def _constraint_name(
    ctx: _Context,
    table: str,
    name: str | None,
    prefix: str,
    cols: Sequence[str],
    source_table: str | None = None,
    foreign_key: bool = False,
) -> str:
    """A name unique where the database needs it (schema-wide on most; MySQL's index names are the
    table's, its FK names the database's), within the identifier limit. A source's name that starts
    with its table's name starts with the target table's (a table copied under another name beside
    it: z_code_key was taken, z2_code_key is not)."""
    base = name or f"{prefix}_{table}_{'_'.join(cols)}"
    if name and source_table and source_table != table and name.startswith(source_table):
        base = table + name[len(source_table) :]
    scoped = ctx.dialect.TABLE_SCOPED_INDEX_NAMES and not foreign_key
    if scoped:
        key = f"{table}.{base}"
    else:
        key = base
        if base in ctx.used_names:
            base = f"{table}_{base}"
    key = key if scoped else base
    limit = ctx.dialect.MAX_IDENTIFIER
    if len(base) > limit:
        digest = hashlib.sha1(base.encode()).hexdigest()[:8]
        base = f"{base[: limit - 9]}_{digest}"
        key = f"{table}.{base}" if scoped else base
    ctx.used_names.add(key)
    return base


def _stub(ctx: _Context, name: str, columns: Sequence[str], schema: str | None) -> sa.Table:
    """A referenced table known only by name, so that SQLAlchemy can render REFERENCES to it."""
    key = f"{schema}.{name}" if schema else name
    if key in ctx.metadata.tables:
        stub = ctx.metadata.tables[key]
        for c in columns:
            if c not in stub.c:
                stub.append_column(sa.Column(c, sa.Integer()))
        return stub
    return sa.Table(name, ctx.metadata, *(sa.Column(c, sa.Integer()) for c in columns), schema=schema)


def _fk_constraint(ctx: _Context, table: Table, fk: ForeignKey) -> sa.ForeignKeyConstraint | None:
    ref_name = ctx.names.get(fk.ref_table, fk.ref_table)
    ref_schema = fk.ref_schema or ctx.schema
    selected = fk.ref_table in ctx.names
    if not selected and ref_name not in ctx.existing and fk.ref_schema is None:
        ctx.plan.warnings.append(
            f"{table.name}: foreign key to '{fk.ref_table}' skipped: that table is not selected and not in the target"
        )
        return None
    parent = ctx.tables.get(fk.ref_table) if selected else ctx.existing.get(ref_name)
    referenced = {c.lower() for c in fk.ref_columns}  # (SQLite's REFERENCES a(ID) names the column id)
    if parent is not None and fk.ref_schema is None and referenced not in _unique_keys(parent):
        ctx.plan.warnings.append(
            f"{table.name}: foreign key {', '.join(fk.columns)} -> {fk.ref_table} ({', '.join(fk.ref_columns)})"
            " skipped: those columns are no key of theirs, which the target needs (SQLite takes it)"
        )
        return None
    # (the referenced columns as the table names them: SQLite takes REFERENCES a (ID) for a's id)
    named = {c.name.lower(): c.name for c in parent.columns} if parent is not None else {}
    ref_columns = tuple(named.get(c.lower(), c) for c in fk.ref_columns)
    _stub(ctx, ref_name, ref_columns, ref_schema)
    prefix = f"{ref_schema}.{ref_name}" if ref_schema else ref_name
    actions = {"ON DELETE": fk.ondelete, "ON UPDATE": fk.onupdate}
    dropped = [
        f"{when} {what}"
        for when, what in actions.items()
        if what and what.upper() not in ctx.dialect.FK_ACTIONS
    ]
    if dropped:  # (the key is kept; what it did on its own is the application's now)
        ctx.plan.warnings.append(
            f"{table.name}: foreign key {', '.join(fk.columns)} -> {fk.ref_table} made without"
            f" {' and '.join(dropped)}, which {ctx.sa_dialect.name} does not take"
        )
    return sa.ForeignKeyConstraint(
        list(fk.columns),
        [f"{prefix}.{c}" for c in ref_columns],
        name=_constraint_name(
            ctx, ctx.names[table.name], fk.name, "fk", fk.columns, table.name, foreign_key=True
        ),
        ondelete=None if f"ON DELETE {fk.ondelete}" in dropped else fk.ondelete,
        onupdate=None if f"ON UPDATE {fk.onupdate}" in dropped else fk.onupdate,
    )


def _collate(ctx: _Context, table: Table, columns: Sequence[sa.Column[Any]]) -> None:
    """The collations of a table made here: exact for the text of its keys, from a source that compares
    text so (``exact_keys``); into MySQL/MariaDB, each column's own from a MySQL/MariaDB source."""
    exact = ctx.dialect.exact_collation(ctx.sa_dialect) if ctx.exact_keys else None
    exact_columns = _exact_key_columns(ctx, table) if exact else set()
    own = {c.name: c.collation for c in table.columns if c.collation} if _mysql(ctx) else {}
    for column in columns:
        collation = exact if column.name in exact_columns else own.get(column.name)
        if collation and isinstance(column.type, RawType):
            column.type = RawType(f"{column.type.spec} COLLATE {collation}")


def _warn_unfolded(ctx: _Context, table: Table) -> None:
    """The source's unique keys of text its collation folds (no ``_bin`` one of its own), which the
    target's keys hold by their exact characters: 'a@x.org' and 'A@x.org' are two keys there."""
    texts = {
        c.name
        for c in table.columns
        if c.type.kind in STRING_KINDS and not (c.collation or "").endswith("_bin")
    }
    keys = [
        table.primary_key,
        *(u.columns for u in table.uniques),
        *(i.columns for i in table.indexes if i.unique),
    ]
    for key in keys:
        folded = [c for c in key if c in texts]
        if folded:
            which = "" if len(folded) == len(key) else f" ({', '.join(folded)})"
            ctx.plan.warnings.append(
                f"{table.name}: unique key ({', '.join(key)}) ignores case and trailing spaces in the"
                f" source's collation{which}, not in {ctx.sa_dialect.name}: values that differ only so can"
                " both be held there"
            )


def _exact_key_columns(ctx: _Context, table: Table) -> set[str]:
    """The text columns of the table's keys (``exact_keys``): its primary key, unique keys and unique
    indexes, and the columns of its FKs to a table made here too (an FK's columns take the collation of
    the ones it references; those of a table that exists keep the server's)."""
    keys = [
        *(set(k) for k in _unique_keys(table)),
        *(
            {c.lower() for c in fk.columns}
            for fk in table.foreign_keys
            if fk.ref_schema is None and ctx.names.get(fk.ref_table, fk.ref_table) not in ctx.existing
        ),
    ]
    named = set().union(*keys) if keys else set()
    return {c.name for c in table.columns if c.name.lower() in named and c.type.kind in STRING_KINDS}


def _unique_keys(table: Table) -> list[set[str]]:
    """The column sets a table holds unique: its primary key, unique constraints and unique indexes."""
    keys = [
        table.primary_key,
        *(u.columns for u in table.uniques),
        *(i.columns for i in table.indexes if i.unique),
    ]
    return [{c.lower() for c in k} for k in keys if k]


def _create(ctx: _Context, table: Table, deferred: set[ForeignKey], lossy: list[str]) -> list[Step]:
    """Steps to create the table and its indexes; returns the FK steps that must wait for every table."""
    target = ctx.names[table.name]
    inline_deferred = not ctx.dialect.ALTER_ADD_FOREIGN_KEY and not ctx.dialect.INLINE_FK_NEEDS_TARGET
    pieces: list[Any] = [_sa_column(ctx, table, c, lossy) for c in table.columns]
    _collate(ctx, table, pieces)
    if ctx.folded_keys and not ctx.dialect.TEXT_KEYS_FOLD:
        _warn_unfolded(ctx, table)
    defer = table.name in ctx.defer_keys
    keys: list[Any] = []
    if table.primary_key:  # (added later, it is named as PostgreSQL would name it inline)
        keys.append(
            sa.PrimaryKeyConstraint(*table.primary_key, name=f"{target}_pkey"[:63] if defer else None)
        )
    prefixed: list[Index] = []  # (unique keys on TEXT where keys hold none: indexes by a prefix)
    for uq in table.uniques:
        if not _long_unique(ctx) and _text_prefixes(ctx, table, uq.columns):
            prefixed.append(uq)
            continue
        keys.append(
            sa.UniqueConstraint(
                *uq.columns, name=_constraint_name(ctx, target, uq.name, "uq", uq.columns, table.name)
            )
        )
    prefixed += _hash_lookups(ctx, table)
    if not defer:
        pieces += keys
    later: list[tuple[sa.ForeignKeyConstraint, ForeignKey, bool]] = []  # (with a check first or not)
    checks: list[Step] = []
    declared = table.name in ctx.defer_fks and _held_by_hash(ctx, table)
    for fk in table.foreign_keys:
        # its key comes after the rows, or the table's FKs do, or the ID map finds its rows' parents
        mapped = _through_id_map(ctx, fk)
        if declared and fk not in deferred:  # (declared now, its rows checked after them)
            constraint = _fk_constraint(ctx, table, fk)
            if constraint is not None:
                pieces.append(constraint)
                checks.append(Step(target, "check foreign key", _orphan_query(ctx, target, fk)))
            continue
        if (
            (fk.ref_table in ctx.defer_keys and fk.ref_schema is None)
            or table.name in ctx.defer_fks
            or mapped
        ):
            constraint = _fk_constraint(ctx, table, fk)
            if constraint is not None:
                later.append((constraint, fk, table.name in ctx.defer_fks))
            continue
        if fk in deferred and not inline_deferred:
            if not ctx.dialect.ALTER_ADD_FOREIGN_KEY:
                ctx.plan.warnings.append(
                    f"{table.name}: foreign key {fk.columns} -> {fk.ref_table} is part of a cycle and "
                    f"{ctx.sa_dialect.name} cannot add it afterwards; skipped"
                )
                continue
            constraint = _fk_constraint(ctx, table, fk)
            if constraint is not None:
                later.append((constraint, fk, False))
            continue
        constraint = _fk_constraint(ctx, table, fk)
        if constraint is not None:
            pieces.append(constraint)
    pieces += _checks(ctx, table)
    key = f"{ctx.schema}.{target}" if ctx.schema else target
    if key in ctx.metadata.tables:  # a stub from an earlier reference: replace it
        ctx.metadata.remove(ctx.metadata.tables[key])
    sa_table = sa.Table(target, ctx.metadata, *pieces, schema=ctx.schema, **TABLE_OPTIONS)
    ctx.plan.steps.append(Step(target, "create table", _ddl(CreateTable(sa_table), ctx.sa_dialect)))
    if defer:
        for key in keys:
            sa_table.append_constraint(key)
            sql = _ddl(AddConstraint(key), ctx.sa_dialect)
            ctx.plan.steps.append(Step(target, "add key", sql))
    for found in (*table.indexes, *prefixed):
        made = _index(ctx, table, target, sa_table, found)
        if made is not None:
            action = "add key" if defer else "create index"
            ctx.plan.steps.append(Step(target, action, _ddl(made, ctx.sa_dialect)))
    steps = checks
    for constraint, fk, checked in later:
        sa_table.append_constraint(constraint)
        if checked:
            steps.append(Step(target, "check foreign key", _orphan_query(ctx, target, fk)))
        steps.append(Step(target, "add foreign key", _ddl(AddConstraint(constraint), ctx.sa_dialect)))
    return steps


def _through_id_map(ctx: _Context, fk: ForeignKey) -> bool:
    """Whether the FK references the key of a table the copy gives new IDs (``remapped``) where the
    target builds keys after the rows: its column is rewritten through the ID map, which checks its
    parents."""
    if not ctx.dialect.DEFERS_KEYS:
        return False
    if fk.ref_table not in ctx.remapped or fk.ref_schema is not None or len(fk.columns) != 1:
        return False
    parent = ctx.tables.get(fk.ref_table)
    return parent is not None and fk.references_key(parent.primary_key)


def _index(ctx: _Context, table: Table, target: str, sa_table: sa.Table, found: Index) -> Any | None:
    """CREATE INDEX of one source index in the target, or None where the target cannot hold it as it
    is (a warning says why): another database's kind of index, JSON in MySQL, a prefix elsewhere."""
    shown = f"index {found.name or ''} on ({', '.join(found.columns)})"
    foreign = found.method and found.method_of != ("mysql" if _mysql(ctx) else ctx.sa_dialect.name)
    # (PostgreSQL's hash index: a plain one does its work elsewhere)
    ix = replace(found, method=None) if foreign and found.method == "hash" else found
    if foreign and ix.method:
        ctx.plan.warnings.append(
            f"{table.name}: {ix.method} {shown} is {ix.method_of}'s own kind of index; not made in"
            f" {ctx.sa_dialect.name} (make its own, where it has one)"
        )
        return None
    as_text = [c for c in ix.columns if table.column(c).read_as_text]
    if ix.method and as_text:  # (an array's gin, a POINT's SPATIAL: the column is text here)
        ctx.plan.warnings.append(
            f"{table.name}: {ix.method} {shown} indexes {', '.join(as_text)}, which is text in the target;"
            " not made"
        )
        return None
    if ix.method:  # (as it is: no prefix)
        return _method_index(ctx, target, table, ix, sa_table)
    json = [c for c in ix.columns if table.column(c).type.kind is Kind.JSON]
    if json and _mysql(ctx):
        ctx.plan.warnings.append(
            f"{table.name}: {shown} holds JSON ({', '.join(json)}), which {ctx.sa_dialect.name} indexes"
            " by no key; not made"
        )
        return None
    given = {c: n for c, n in zip(ix.columns, ix.prefixes, strict=False) if n}
    if given and not _mysql(ctx):
        shown = ", ".join(f"{c}({given[c]})" if c in given else c for c in ix.columns)
        kind = f"{'unique ' if ix.unique else ''}index {ix.name or ''} on ({shown})"
        if not all(_short_string(table.column(c).type) for c in given):
            ctx.plan.warnings.append(
                f"{table.name}: {kind} indexes the first characters of a column, which"
                f" {ctx.sa_dialect.name} cannot: not made (an index of whole values would refuse long ones)"
            )
            return None
        if ix.unique:  # (a plain index of whole short values finds the rows its prefix did)
            ctx.plan.warnings.append(
                f"{table.name}: {kind} is unique on the first characters of a column, which"
                f" {ctx.sa_dialect.name} cannot index: made unique on whole values, which is weaker"
                " (it takes values that begin alike)"
            )
        given = {}
    prefixes = {} if ix.unique and _long_unique(ctx) else _text_prefixes(ctx, table, ix.columns)
    unique = ix.unique and not prefixes
    if given:  # (MySQL into MySQL: the source's own prefixes, shorter where it needs them so)
        merged = {c: min(n, prefixes.get(c, n)) for c, n in given.items()} | {
            c: n for c, n in prefixes.items() if c not in given
        }
        unique = ix.unique and merged == given  # (unique on the source's own prefixes: as it is)
        prefixes = merged
    if ix.unique and not unique:
        ctx.plan.warnings.append(
            f"{table.name}: unique key on ({', '.join(ix.columns)}) made a plain index: {ctx.sa_dialect.name}"
            " indexes a TEXT column by its first characters, and unique on them it would refuse rows"
            " the source holds"
        )
    name = _constraint_name(ctx, target, ix.name, "ix", ix.columns, table.name)
    parts, options = _index_parts(ctx, table, sa_table, ix, prefixes)
    return CreateIndex(sa.Index(name, *parts, unique=unique, **options))


def _orphan_query(ctx: _Context, target: str, fk: ForeignKey) -> str:
    """A query for the referencing columns of one row that references no row (none: every row does)."""
    child = sa.table(target, *(sa.column(c) for c in fk.columns), schema=ctx.schema).alias("c")
    parent = sa.table(
        ctx.names.get(fk.ref_table, fk.ref_table),
        *(sa.column(c) for c in fk.ref_columns),
        schema=fk.ref_schema or ctx.schema,
    ).alias("p")
    pairs = list(zip(fk.columns, fk.ref_columns, strict=True))
    query = (
        sa.select(*(child.c[c] for c in fk.columns))
        .where(*(child.c[c].is_not(None) for c in fk.columns))
        .where(~sa.exists().where(*(parent.c[r] == child.c[c] for c, r in pairs)))
        .limit(1)
    )
    text = str(query.compile(dialect=ctx.sa_dialect, compile_kwargs={"literal_binds": True}))
    return as_sent(text, ctx.sa_dialect)


def _checks(ctx: _Context, table: Table) -> list[sa.CheckConstraint]:
    """The table's CHECK constraints, where they are written in the target database's SQL; the others
    are named in a warning (a condition is not translated from one database's SQL to another's)."""
    kept = [c for c in table.checks if c.dialect == ctx.sa_dialect.name]
    left = [c.expression for c in table.checks if c.dialect != ctx.sa_dialect.name]
    if left:
        ctx.plan.warnings.append(
            f"{table.name}: CHECK constraints written in {table.checks[0].dialect}'s SQL not created: "
            + "; ".join(left)
        )
    # a name is kept where the table keeps its own: else (and for the names Oracle makes up) the
    # database names it, as constraint names may have to be unique in the schema (Oracle, MySQL 8)
    renamed = ctx.names[table.name] != table.name
    return [
        sa.CheckConstraint(
            sa.text(c.expression), name=None if renamed or _SYSTEM_NAME.match(c.name or "") else c.name
        )
        for c in kept
    ]


_SYSTEM_NAME = re.compile(r"sys_c\d+$", re.IGNORECASE)
"""A constraint name Oracle made up (``SYS_C0012345``)."""


def _kept_decimals(ctx: _Context, table: Table, existing: Table | None) -> dict[str, int | None]:
    """The decimals each decimal column of the table keeps in the target: the existing column's, where
    it is one (None where it is no bounded decimal), else the type it is created as."""
    out: dict[str, int | None] = {}
    have = {c.name.lower(): c for c in existing.columns} if existing is not None else {}
    for col in table.columns:
        if col.type.kind is not Kind.DECIMAL:
            continue
        found = have.get(col.name.lower())
        kept = found.type if found is not None else ctx.dialect.stored_as(col.type)  # (or added so)
        bounded = kept.kind is Kind.DECIMAL and kept.precision is not None
        out[col.name] = (kept.scale or 0) if bounded else None
    return out


def _assigned_id(ctx: _Context, table: Table, column: str) -> bool:
    """Whether the column holds IDs the target assigns (``--remap-ids``): the table's own, or a
    reference to such a table's."""
    if table.name in ctx.assigned and table.primary_key == (column,):
        return True
    return any(fk.columns == (column,) and fk.ref_table in ctx.assigned for fk in table.foreign_keys)


def _extend(ctx: _Context, table: Table, existing: Table, lossy: list[str]) -> None:
    target = ctx.names[table.name]
    have = {c.name: c for c in existing.columns}
    folded = {c.name.lower(): c for c in existing.columns} if ctx.dialect.COLUMN_NAMES_IGNORE_CASE else {}
    for col in table.columns:
        found = have.get(col.name) or folded.get(col.name.lower())  # ('id' is the column 'ID' there)
        if found is not None and found.generated is not None:  # (the target computes it: nothing to hold)
            ctx.plan.generated.setdefault(target, set()).add(col.name)
            continue
        if found is None:
            lossy += _too_long(ctx.sa_dialect, [col.name], target)
            sa_col = _sa_column(ctx, table, col, lossy, force_nullable=col.default is None)
            if col.default is None and not col.nullable:
                ctx.plan.warnings.append(
                    f"{target}.{col.name}: added as NULL-able because {target} already exists"
                )
            sql = _ddl(_add_column(target, sa_col, ctx.schema), ctx.sa_dialect)
            ctx.plan.steps.append(Step(target, "add column", sql, col.name))
        elif _is_year(found) and not _is_year(col):
            ctx.plan.problems.append(
                f"{target}.{col.name} is {found.native_type} in the target, which changes the source's"
                f" {col.native_type or col.type} values (MySQL reads 5 as 2005, and holds only 1901 to 2155)"
                " (not altered)"
            )
        elif not holds(found.type, col.type) and not holds(found.type, ctx.dialect.stored_as(col.type)):
            if found.type == _referenced_integer(ctx, table, col):
                continue  # (made as the existing column it references is)
            key_length = _key_text_length(ctx, table, col)
            if (
                key_length is not None
                and found.type.kind is Kind.VARCHAR
                and (found.type.length or 0) >= key_length
            ):
                continue  # (the VARCHAR parity makes of a TEXT key column, where keys hold no TEXT)
            as_text = found.type.kind in (Kind.VARCHAR, Kind.CHAR) and (found.type.length or 36) >= 36
            if col.type.kind is Kind.UUID and as_text and _writes_uuid_as_text(ctx.dialect):
                continue  # (its text, 36 characters)
            unbounded = col.type.kind is Kind.TEXT or (
                col.type.kind is Kind.VARCHAR and col.type.length is None
            )
            if unbounded and found.type.kind in (Kind.VARCHAR, Kind.CHAR) and found.type.length:
                ctx.plan.warnings.append(
                    f"{target}.{col.name} is {found.native_type or found.type} in the target, the source's"
                    f" {col.native_type or col.type} has no length: rows whose text is longer are rejected"
                )
                continue
            if col.wider_than_declared and found.type.kind in INTEGER_KINDS:
                if _assigned_id(ctx, table, col.name):
                    continue  # (the target's own IDs go there, never the source's)
                ctx.plan.warnings.append(
                    f"{target}.{col.name} is {found.native_type or found.type} in the target, the source's"
                    f" {col.native_type} holds 64-bit values: rows beyond the target's range are rejected"
                )
                continue
            ctx.plan.problems.append(
                f"{target}.{col.name} is {found.native_type or found.type} in the target and cannot hold "
                f"the source's {col.type} values (not altered)"
            )
        elif found.fraction is not None and found.fraction < 6 and col.type.kind in _TIMES:
            digits = found.fraction
            if col.fraction is not None and digits < col.fraction:
                ctx.plan.problems.append(
                    f"{target}.{col.name} keeps {digits} digits of a second in the target, the source "
                    f"{col.fraction}: its values would lose their {'fractions' if not digits else 'last digits'}"
                    f" (not altered; declare types: {{{col.name}: {col.type.kind.value}({digits})}} to copy the"
                    " rows whose values fit, the others rejected)"
                )
            elif col.fraction is None or col.wider_than_declared:
                ctx.plan.fractions.setdefault(target, {})[col.name] = digits
                ctx.plan.warnings.append(
                    f"{target}.{col.name} keeps {digits} digits of a second in the target: rows whose "
                    "values hold more are rejected"
                )


def _is_year(column: Column) -> bool:
    """A MySQL YEAR column: a small integer that reads 1 to 99 as years (5 is 2005)."""
    return column.native_type.upper().startswith("YEAR")


def _missing_keys(ctx: _Context, table: Table, existing: Table) -> None:
    """The source's indexes, unique keys and FKs that the existing target table lacks, named in a
    warning: parity adds columns to a table that exists, never indexes or keys (a unique key or an
    FK the target's own rows break would fail the run half-way)."""
    target = ctx.names[table.name]

    def folded(columns: Iterable[str]) -> tuple[str, ...]:
        return tuple(c.lower() if ctx.dialect.COLUMN_NAMES_IGNORE_CASE else c for c in columns)

    held = {folded(i.columns) for i in (*existing.indexes, *existing.uniques)}
    held |= {folded(existing.primary_key)} if existing.primary_key else set()
    for index in (*table.uniques, *table.indexes):
        if folded(index.columns) not in held:
            kind = "unique key" if index.unique else "index"
            ctx.plan.warnings.append(
                f"{target}: the source's {kind} on ({', '.join(index.columns)}) is not in the existing"
                " target table (not added: parity adds only columns to a table that exists)"
            )
    fks = {(folded(fk.columns), fk.ref_table.lower()) for fk in existing.foreign_keys}
    # (where no FK can be added to a table that exists, DuckDB's, the plan that made it said so)
    for fk in table.foreign_keys if ctx.dialect.ALTER_ADD_FOREIGN_KEY else ():
        ref = ctx.names.get(fk.ref_table, fk.ref_table)
        if (folded(fk.columns), ref.lower()) not in fks:
            ctx.plan.warnings.append(
                f"{target}: the source's foreign key ({', '.join(fk.columns)}) -> {ref} is not in the"
                " existing target table (not added: parity adds only columns to a table that exists)"
            )


def _writes_uuid_as_text(dialect: Dialect) -> bool:
    """Whether copy writes a UUID into this database as its text (Oracle's writers bind its 16 bytes,
    which a text column would take as 32 hex digits)."""
    from parity import bulk

    sample = uuid.UUID(int=0)
    for name in (dialect.WRITER, dialect.ROW_WRITER):
        encode = bulk.WRITERS[name].ENCODERS.get(Kind.UUID)
        if encode is not None and not isinstance(encode(sample), str):
            return False
    return True


def _add_column(table: str, column: sa.Column[Any], schema: str | None) -> Any:
    """Alembic's ADD COLUMN (imported here: most runs never need it)."""
    from alembic.ddl.base import AddColumn

    register_alembic()
    return AddColumn(table, column, schema=schema)


def _ddl(element: Any, dialect: sa.Dialect) -> str:
    """A DDL statement's text as it runs with no parameters: SQLAlchemy doubles ``%`` for drivers
    whose parameters are ``%s`` (a column named ``%(s)s`` would be created as ``%%(s)s``)."""
    return as_sent(str(element.compile(dialect=dialect)), dialect)
