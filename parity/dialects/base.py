"""The dialect contract: what parity needs to know about one database, as data where it can be.

A dialect answers four questions: which driver and URL scheme it uses, how canonical types are
spelled in its DDL (``TYPE_MAPPING`` and limits), how its reflected types and defaults map back to
canonical ones, and (for copy, diff and sync) how values travel in and out.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.types import UserDefinedType

from parity.schema.model import Default
from parity.schema.types import CanonicalType, Kind, from_sqlalchemy


class RawType(UserDefinedType):
    """A column type spelled exactly as the target database wants it in DDL."""

    cache_ok = True

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def get_col_spec(self, **kw: Any) -> str:
        return self.spec


_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
_NOW = re.compile(
    r"^(now\(\)|current_timestamp(\(\d*\))?|localtimestamp(\(\d*\))?|getdate\(\)|sysdate|systimestamp)$", re.I
)


class Dialect:
    """Base of the per-database adapters. Subclasses override class attributes, rarely methods."""

    names: ClassVar[tuple[str, ...]] = ()
    """SQLAlchemy dialect names this adapter serves (``engine.dialect.name``)."""

    schemes: ClassVar[dict[str, str]] = {}
    """URL schemes users type, mapped to the SQLAlchemy ``dialect+driver`` parity picks."""

    driver_hint: ClassVar[str] = ""
    """What to install when the driver is missing."""

    TYPE_MAPPING: ClassVar[dict[Kind, str]] = {
        Kind.BOOLEAN: "BOOLEAN",
        Kind.SMALLINT: "SMALLINT",
        Kind.INTEGER: "INTEGER",
        Kind.BIGINT: "BIGINT",
        Kind.DECIMAL: "DECIMAL({precision},{scale})",
        Kind.FLOAT: "REAL",
        Kind.DOUBLE: "DOUBLE PRECISION",
        Kind.VARCHAR: "VARCHAR({length})",
        Kind.CHAR: "CHAR({length})",
        Kind.TEXT: "TEXT",
        Kind.DATE: "DATE",
        Kind.TIME: "TIME",
        Kind.TIMESTAMP: "TIMESTAMP",
        Kind.TIMESTAMPTZ: "TIMESTAMP WITH TIME ZONE",
        Kind.BINARY: "BLOB",
        Kind.UUID: "UUID",
        Kind.JSON: "JSON",
    }
    """How each canonical kind is spelled in this database's DDL."""

    UNBOUNDED_DECIMAL: ClassVar[str | None] = "NUMERIC"
    """DDL for a decimal without precision; None when the database needs one (then MAX_* are used)."""

    MAX_DECIMAL_PRECISION: ClassVar[int] = 38
    MAX_DECIMAL_SCALE: ClassVar[int] = 38
    MAX_VARCHAR: ClassVar[int | None] = None
    """Longest VARCHAR(n); longer strings become TEXT. None: no limit."""

    MAX_CHAR: ClassVar[int] = 255
    SIZED_BINARY: ClassVar[str | None] = None
    """DDL for binary(n), when the database has a sized binary type."""

    MAX_SIZED_BINARY: ClassVar[int] = 8000

    STORES_TIME_ZONE: ClassVar[bool] = True
    """False when timestamptz is stored as UTC in a type without zone (the plan warns)."""

    HAS_IDENTITY: ClassVar[bool] = True
    """Whether the database can generate integer keys (auto_increment, identity, serial)."""

    ALTER_ADD_FOREIGN_KEY: ClassVar[bool] = True
    """Whether FKs can be added after the table exists; if not, they are declared inline."""

    INLINE_FK_NEEDS_TARGET: ClassVar[bool] = True
    """Whether an inline FK needs the referenced table to exist already."""

    TABLE_SCOPED_INDEX_NAMES: ClassVar[bool] = False
    """True when index names only need to be unique per table (MySQL), not per schema."""

    MAX_IDENTIFIER: ClassVar[int] = 63

    TRANSACTIONAL_DDL: ClassVar[bool] = False
    """Whether CREATE/ALTER can be rolled back; if not, a failed schema apply undoes what it created."""

    FK_CHECKS: ClassVar[tuple[str, str] | None] = None
    """Statements that switch FK checks off and on again for a session, where the database has them."""

    # ---- moving rows -----------------------------------------------------------------------------

    WRITER: ClassVar[str] = "executemany"
    """The bulk writer (a key of parity.bulk.WRITERS)."""

    ROW_WRITER: ClassVar[str] = "executemany"
    """A strict writer used to find the rows a bulk load rejected, a few at a time."""

    NATIVE_KINDS: ClassVar[frozenset[Kind]] = frozenset(
        {
            Kind.SMALLINT,
            Kind.INTEGER,
            Kind.BIGINT,
            Kind.DECIMAL,
            Kind.DOUBLE,
            Kind.VARCHAR,
            Kind.TEXT,
            Kind.DATE,
        }
    )
    """Kinds whose driver values are already canonical (see parity.values); others are decoded."""

    SESSION_SETUP: ClassVar[tuple[str, ...]] = ()
    """Statements run on every new connection (time zone UTC, so timestamps travel unshifted)."""

    TRUNCATE_TOGETHER: ClassVar[bool] = False
    """Whether ``TRUNCATE a, b, c`` empties tables that reference each other in one statement."""

    SAVEPOINTS: ClassVar[bool] = True
    """Whether a failed batch can be rolled back alone, keeping the rest of the chunk's transaction."""

    def referencing_tables(self, conn: Connection, tables: list[str], schema: str | None) -> set[str]:
        """Tables outside ``tables`` whose FKs reference one of them."""
        wanted = set(tables)
        return {
            name
            for name in self.table_names(conn, schema)
            if name not in wanted
            and any(fk.get("referred_table") in wanted for fk in self.foreign_keys(conn, name, schema))
        }

    def upsert(
        self, target: sa.TableClause, staging: sa.TableClause, columns: list[str], key: list[str]
    ) -> sa.Executable:
        """INSERT the staging rows into the target, updating rows whose key exists (ON CONFLICT form)."""
        from sqlalchemy.dialects.postgresql import insert

        # WHERE true: SQLite cannot otherwise tell the upsert clause from a join condition
        rows = sa.select(*(staging.c[c] for c in columns)).where(sa.true())
        stmt = insert(target).from_select(columns, rows)
        rest = [c for c in columns if c not in key]
        if not rest:
            return stmt.on_conflict_do_nothing(index_elements=key)
        return stmt.on_conflict_do_update(index_elements=key, set_={c: stmt.excluded[c] for c in rest})

    # ---- DDL -------------------------------------------------------------------------------------

    def ddl_type(self, ctype: CanonicalType) -> tuple[str, str | None]:
        """Spell ``ctype`` for CREATE TABLE; the second item is a note when the type had to change."""
        kind, note = ctype.kind, None
        if kind is Kind.DECIMAL:
            return self._decimal(ctype)
        if kind is Kind.VARCHAR and ctype.length is None:
            kind = Kind.TEXT
        if kind is Kind.VARCHAR and self.MAX_VARCHAR is not None and (ctype.length or 0) > self.MAX_VARCHAR:
            kind = Kind.TEXT
        if kind is Kind.CHAR and (ctype.length or 1) > self.MAX_CHAR:
            kind = (
                Kind.VARCHAR
                if self.MAX_VARCHAR is None or (ctype.length or 0) <= self.MAX_VARCHAR
                else Kind.TEXT
            )
        if (
            kind is Kind.BINARY
            and ctype.length
            and self.SIZED_BINARY
            and ctype.length <= self.MAX_SIZED_BINARY
        ):
            return self.SIZED_BINARY.format(length=ctype.length), None
        if kind is Kind.TIMESTAMPTZ and not self.STORES_TIME_ZONE:
            note = "stored in UTC in a type without time zone"
        spec = self.TYPE_MAPPING[kind].format(length=ctype.length or 1)
        return spec, note

    def stored_as(self, ctype: CanonicalType) -> CanonicalType:
        """The canonical type a column planned for ``ctype`` reads back as from this database."""
        kind = ctype.kind
        if kind is Kind.TIMESTAMPTZ and not self.STORES_TIME_ZONE:
            return CanonicalType(Kind.TIMESTAMP)
        if kind is Kind.DECIMAL and (ctype.precision is None or ctype.precision > self.MAX_DECIMAL_PRECISION):
            if self.UNBOUNDED_DECIMAL:
                return CanonicalType(Kind.DECIMAL)
            return CanonicalType(
                Kind.DECIMAL, precision=self.MAX_DECIMAL_PRECISION, scale=min(self.MAX_DECIMAL_SCALE, 10)
            )
        return self.STORED_AS.get(kind, ctype)

    STORED_AS: ClassVar[dict[Kind, CanonicalType]] = {}
    """Kinds that read back as another canonical type (a widening the database imposes)."""

    def _decimal(self, ctype: CanonicalType) -> tuple[str, str | None]:
        template = self.TYPE_MAPPING[Kind.DECIMAL]
        if ctype.precision is None:
            if self.UNBOUNDED_DECIMAL:
                return self.UNBOUNDED_DECIMAL, None
            scale = min(self.MAX_DECIMAL_SCALE, 10)
            spec = template.format(precision=self.MAX_DECIMAL_PRECISION, scale=scale)
            return spec, f"unbounded decimal narrowed to {spec}: larger values will be rejected"
        if ctype.precision > self.MAX_DECIMAL_PRECISION or (ctype.scale or 0) > self.MAX_DECIMAL_SCALE:
            if self.UNBOUNDED_DECIMAL:
                return self.UNBOUNDED_DECIMAL, None
            raise LossyType(
                f"{ctype} does not fit: the largest decimal is "
                f"decimal({self.MAX_DECIMAL_PRECISION},{self.MAX_DECIMAL_SCALE})"
            )
        return template.format(precision=ctype.precision, scale=ctype.scale or 0), None

    def render_default(self, default: Default, ctype: CanonicalType) -> sa.TextClause | None:
        """The server default clause for a column of this type, or None when it has no portable form."""
        if default.now:
            if ctype.kind not in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
                return None
            return sa.text("CURRENT_TIMESTAMP")
        value = default.literal
        if isinstance(value, bool) or ctype.kind is Kind.BOOLEAN:
            return sa.text(
                self.boolean_literal(bool(value) if not isinstance(value, str) else value in ("1", "true"))
            )
        if isinstance(value, (int, float)):
            return sa.text(repr(value))
        if isinstance(value, str):
            return sa.text("'" + value.replace("'", "''") + "'")
        return None

    def boolean_literal(self, value: bool) -> str:
        return "TRUE" if value else "FALSE"

    # ---- reflection ------------------------------------------------------------------------------

    def canonical_type(
        self, column: dict[str, Any], conn: Connection, table: str, schema: str | None
    ) -> CanonicalType | None:
        """Map one reflected column (an Inspector.get_columns dict) to its canonical type."""
        return from_sqlalchemy(column["type"])

    def parse_default(self, text: str | None) -> Default | None:
        """Turn a reflected server default into a portable one; None when it is not portable."""
        if text is None:
            return None
        raw = self.strip_default(text.strip())
        while raw.startswith("(") and raw.endswith(")"):
            raw = raw[1:-1].strip()
        if _NOW.match(raw):
            return Default(now=True)
        if _NUMBER.match(raw):
            return Default(literal=int(raw) if re.match(r"^-?\d+$", raw) else float(raw))
        if raw.lower() in ("true", "false"):
            return Default(literal=raw.lower() == "true")
        if len(raw) >= 2 and raw[0] == raw[-1] == "'":
            return Default(literal=raw[1:-1].replace("''", "'"))
        return None

    def strip_default(self, text: str) -> str:
        """Remove database-specific decoration around a default (casts, for example)."""
        return text

    def is_identity(self, column: dict[str, Any], primary_key: tuple[str, ...]) -> bool:
        """Whether the database generates this column's values."""
        if column.get("identity"):
            return True
        default = str(column.get("default") or "")
        if "nextval(" in default.lower():
            return True
        return column.get("autoincrement") is True and column["name"] in primary_key and len(primary_key) == 1

    def table_names(self, conn: Connection, schema: str | None) -> list[str]:
        return sa.inspect(conn).get_table_names(schema=schema)

    def columns(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        """Columns in SQLAlchemy Inspector form (name, type, nullable, default, autoincrement ...)."""
        return [dict(x) for x in sa.inspect(conn).get_columns(table, schema=schema)]

    def primary_key(self, conn: Connection, table: str, schema: str | None) -> tuple[str, ...]:
        return tuple(
            sa.inspect(conn).get_pk_constraint(table, schema=schema).get("constrained_columns") or ()
        )

    def indexes(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        return [dict(x) for x in sa.inspect(conn).get_indexes(table, schema=schema)]

    def foreign_keys(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        return [dict(x) for x in sa.inspect(conn).get_foreign_keys(table, schema=schema)]

    def unique_constraints(
        self, conn: Connection, table: str, schema: str | None
    ) -> list[tuple[str | None, tuple[str, ...]]]:
        """(name, columns) of each unique constraint."""
        found = sa.inspect(conn).get_unique_constraints(table, schema=schema)
        return [(u.get("name"), tuple(u["column_names"])) for u in found]


class LossyType(Exception):
    """Internal: a canonical type cannot be held exactly by a dialect."""
