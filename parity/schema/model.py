"""parity's neutral picture of a table: what reflection produces and what planning consumes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from parity.errors import not_found
from parity.schema.types import CanonicalType


@dataclass(frozen=True)
class Default:
    """A portable server default: a literal value, or the current timestamp."""

    literal: str | int | float | bool | None = None
    now: bool = False


@dataclass(frozen=True)
class Generated:
    """A column whose values the database computes from the row's other columns."""

    expression: str | None
    """As its database spells it (None where reflection cannot tell it exactly: SQLite)."""
    stored: bool
    dialect: str
    """The SQLAlchemy dialect name of the database the expression is written for."""


@dataclass(frozen=True)
class Check:
    """A CHECK constraint, its condition as its database spells it."""

    name: str | None
    expression: str
    dialect: str


@dataclass(frozen=True)
class Column:
    name: str
    type: CanonicalType
    nullable: bool = True
    default: Default | None = None
    identity: bool = False
    native_type: str = ""
    """The type as the database spells it, for messages."""
    fraction: int | None = None
    """Digits of a second a TIME or TIMESTAMP column keeps, where the database declares them (diff
    compares two such columns at the fewer); None: not declared (microseconds, or text)."""
    generated: Generated | None = None
    """Set for a column the database computes: never written to by copy, sync or fix; created as
    generated where the expression is the target database's SQL, else as a plain column (a warning)."""
    read_as_text: bool = False
    """The database's type has no canonical kind of its own (PostgreSQL's inet, interval, arrays ...)
    and the column is taken as text: copy reads it as the database writes it as text (its driver's
    Python objects for such types are no strings)."""
    collation: str | None = None
    """The column's own collation, where MySQL/MariaDB declares one other than its table's (in utf8mb4's
    spelling): kept into MySQL/MariaDB (``utf8mb4_bin`` on a unique key holds 'a' and 'A')."""
    wider_than_declared: bool = False
    """The column may hold values wider than its declared type says (SQLite's INTEGER, read as bigint
    because SQLite keeps 64-bit values in it): an existing narrower integer column in the target is then
    used as it is, with a warning, and values beyond its range are rejected row by row."""


@dataclass(frozen=True)
class Index:
    name: str | None
    columns: tuple[str, ...]
    unique: bool = False
    prefixes: tuple[int | None, ...] = ()
    """MySQL's prefix index: per column, the characters it indexes (``KEY (body(20))``), or None."""
    method: str | None = None
    """An index of another kind than a B-tree, as its database names it: MySQL's FULLTEXT or SPATIAL,
    PostgreSQL's gin, gist, brin ...; made so into a database of the same kind (``method_of``), and
    elsewhere not made (a B-tree of its columns neither serves its searches nor holds long values),
    with a warning."""
    method_of: str = ""
    """The database kind ``method`` belongs to: mysql (MariaDB too) or postgresql."""
    method_ops: tuple[tuple[str, str], ...] = ()
    """PostgreSQL's operator classes of its columns, where not the default (gin_trgm_ops)."""
    sorting: tuple[tuple[str, ...], ...] = ()
    """Per column, how the index orders it where not ascending by default, in SQLAlchemy's words:
    ``("desc",)``, ``("nulls_first",)``, ``("desc", "nulls_last")``; empty when every column is plain."""
    include: tuple[str, ...] = ()
    """Columns a covering index holds beside its key (PostgreSQL's and SQL Server's INCLUDE)."""


@dataclass(frozen=True)
class ForeignKey:
    name: str | None
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    ref_schema: str | None = None
    ondelete: str | None = None
    onupdate: str | None = None

    def references_key(self, key: Sequence[str]) -> bool:
        """Whether it references its parent's ``key`` (its columns unnamed: the key; or the key
        unknown)."""
        return not self.ref_columns or not key or tuple(self.ref_columns) == tuple(key)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    schema: str | None = None
    primary_key: tuple[str, ...] = ()
    uniques: tuple[Index, ...] = ()
    indexes: tuple[Index, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    checks: tuple[Check, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise not_found("column", name, self.column_names, where=f"table '{self.name}'")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def key(self) -> tuple[str, ...]:
        """The primary key, or else the first unique constraint whose columns are all NOT NULL."""
        if self.primary_key:
            return self.primary_key
        for uq in (*self.uniques, *(i for i in self.indexes if i.unique)):
            if all(not self.column(c).nullable for c in uq.columns):
                return uq.columns
        return ()
