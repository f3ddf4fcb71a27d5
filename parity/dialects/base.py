"""The dialect contract: what parity needs to know about one database, as data where it can be.

A dialect answers four questions: which driver and URL scheme it uses, how canonical types are
spelled in its DDL (``TYPE_MAPPING`` and limits), how its reflected types and defaults map back to
canonical ones, and (for copy, diff and sync) how values travel in and out.
"""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.types import UserDefinedType

from parity.errors import ParityError
from parity.schema.model import Column, Default, Table
from parity.schema.types import STRING_KINDS, CanonicalType, Kind, from_sqlalchemy
from parity.values import BOOLEAN_TEXT, SINGLE_HIGH, SINGLE_LOW

if TYPE_CHECKING:
    from parity.endpoint import Endpoint


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


COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))
"""COPY text's escapes of a string's characters (the backslash first), as (character, escape)."""


TINY = 1e-290
"""Below this a float's text is the database's own: ``text_float``'s power of ten would underflow."""

BIGINT_SAFE = 9.0e18
"""A double below this in magnitude rounds to a BIGINT without overflow."""

ROUNDED_LIMIT = 2.0**32
"""``Dialect.text_rounded``: quotients of a value by its tolerance below this are rounded in the
database (a double's rounding of them is 2**-20 of a step at most)."""

_INSPECTORS: dict[Connection, sa.Inspector] = {}


@contextmanager
def inspecting(conn: Connection) -> Iterator[None]:
    """Within the block, every reflection on ``conn`` through ``inspector`` shares one Inspector, and so
    its cache: a table's CREATE TABLE (MySQL) or catalog rows (PostgreSQL) are read once, not once per
    question (columns, key, indexes, foreign keys, unique constraints). Outside it, each asks afresh (a
    cache kept longer would not see the tables a copy creates)."""
    _INSPECTORS[conn] = sa.inspect(conn)
    try:
        yield
    finally:
        _INSPECTORS.pop(conn, None)


def inspector(conn: Connection) -> sa.Inspector:
    return _INSPECTORS.get(conn) or sa.inspect(conn)


class Merge(sa.sql.expression.Executable, sa.sql.expression.ClauseElement):
    """``MERGE INTO target USING staging``: the upsert of databases without ON CONFLICT or ON DUPLICATE
    KEY (Oracle, SQL Server): staging rows whose key the target holds update its other columns (but
    ``fixed`` ones), the others are inserted."""

    inherit_cache = False

    def __init__(
        self,
        target: sa.TableClause,
        staging: sa.TableClause,
        columns: Sequence[str],
        key: Sequence[str],
        fixed: Collection[str] = (),
    ) -> None:
        self.target, self.staging, self.columns, self.key = target, staging, list(columns), list(key)
        self.fixed = set(fixed)


@compiles(Merge)
def _compile_merge(element: Merge, compiler: Any, **kw: Any) -> str:
    preparer = compiler.preparer
    names = {c: preparer.quote(c) for c in element.columns}
    on = " AND ".join(f"t.{names[k]} = s.{names[k]}" for k in element.key)
    rest = [c for c in element.columns if c not in element.key and c not in element.fixed]
    sql = f"MERGE INTO {preparer.format_table(element.target)} t USING {preparer.format_table(element.staging)} s ON ({on})"
    if rest:
        sql += " WHEN MATCHED THEN UPDATE SET " + ", ".join(f"t.{names[c]} = s.{names[c]}" for c in rest)
    listed = ", ".join(names.values())
    sql += f" WHEN NOT MATCHED THEN INSERT ({listed}) VALUES ({', '.join(f's.{n}' for n in names.values())})"
    return sql + (";" if compiler.dialect.name == "mssql" else "")  # (SQL Server's MERGE must end so)


_SKIPPED_INDEX = re.compile(r"Skipped unsupported reflection of expression-based index (\S+)")


@contextmanager
def _expression_indexes() -> Iterator[list[str]]:
    """The names of the indexes SQLAlchemy skips inside the block with an SAWarning (an expression's),
    instead of that warning; other warnings pass."""
    skipped: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", sa.exc.SAWarning)
        yield skipped
    for warning in caught:
        found = _SKIPPED_INDEX.search(str(warning.message))
        if found is None:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        else:
            skipped.append(found.group(1))


_BOOLEAN_DEFAULTS = {**BOOLEAN_TEXT, "1": True, "0": False}

TABLE_OPTIONS: dict[str, Any] = {"mysql_charset": "utf8mb4", "mariadb_charset": "utf8mb4"}
"""What every table parity creates says to the databases that read it (the others ignore it): in MySQL
and MariaDB its text is utf8mb4 whatever the database's default (one in latin1 refused an emoji)."""


def temporary_name(prefix: str, table: sa.TableClause) -> str:
    """A temporary table's name of the table's own (one a table and session: made anew for each use)."""
    return prefix + hashlib.sha1(f"{table.schema}.{table.name}".encode()).hexdigest()[:10]


def insert_numbered(conn: Connection, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Rows into a temporary table (``table``: its name as SQL), each after its place from 1, by the
    driver's own many-row INSERT (SQLAlchemy's took 10 us a row into MariaDB)."""
    if not rows:
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    marks = ", ".join([mark] * (len(rows[0]) + 1))
    conn.exec_driver_sql(
        f"INSERT INTO {table} VALUES ({marks})", [(n, *row) for n, row in enumerate(rows, 1)]
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
    ROUNDS_DECIMALS: ClassVar[bool] = True
    """Whether a decimal with more decimals than its column keeps is rounded without a word (False:
    MySQL warns, which fails the batch; SQLite keeps the value whole)."""

    KEY_TEXT_CHARS: ClassVar[int | None] = None
    """Where a key cannot hold a TEXT column (MySQL/MariaDB: BLOB/TEXT in a key needs a length), the
    characters a VARCHAR key column gets instead, shared among the key's text columns."""

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

    FK_ACTIONS: ClassVar[frozenset[str]] = frozenset(
        {"CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION"}
    )
    """The ON DELETE / ON UPDATE actions a foreign key may have here (DuckDB's parser takes no other
    than RESTRICT and NO ACTION)."""

    ALTER_ADD_FOREIGN_KEY: ClassVar[bool] = True
    """Whether FKs can be added after the table exists; if not, they are declared inline."""

    INLINE_FK_NEEDS_TARGET: ClassVar[bool] = True
    """Whether an inline FK needs the referenced table to exist already."""

    TABLE_SCOPED_INDEX_NAMES: ClassVar[bool] = False
    """True when index names only need to be unique per table (MySQL), not per schema."""

    MAX_IDENTIFIER: ClassVar[int] = 63

    TRANSACTIONAL_DDL: ClassVar[bool] = False
    """Whether CREATE/ALTER can be rolled back; if not, a failed schema apply undoes what it created."""

    UNCHECKED_FOREIGN_KEY: ClassVar[str | None] = None
    """How a foreign key is added without checking the rows already there (``{sql}``: the ADD statement),
    where the database can; None where FK checks switched off (FK_CHECKS) do it, or nothing does."""

    DEFERS_FOREIGN_KEYS: ClassVar[bool] = False
    """Whether a copy into tables it creates adds their FKs after every table's rows, under FK_CHECKS
    off, after a query for a row whose reference finds no row (a warning names one): a load without FKs to check
    is faster, and rows a source such as SQLite kept without their parent arrive, as on PostgreSQL
    (whose FKs wait for the keys they reference anyway), where adding a checked FK would copy the table
    again (MySQL)."""

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

    def configure_engine(self, engine: Any) -> None:
        """What parity sets on a new engine of this database (besides ``SESSION_SETUP``)."""

    BINARY_LITERAL: ClassVar[str] = "X'{hex}'"
    """How a binary value is written as a literal in printed SQL (``--dry-run``)."""

    TRUNCATE_TOGETHER: ClassVar[bool] = False
    """Whether ``TRUNCATE a, b, c`` empties tables that reference each other in one statement."""

    SAVEPOINTS: ClassVar[bool] = True
    """Whether a failed batch can be rolled back alone, keeping the rest of the chunk's transaction."""

    def savepoint(self, conn: Connection) -> Any:
        """A savepoint inside the connection's transaction (``begin_nested``)."""
        return conn.begin_nested()

    @contextmanager
    def planned_anew(self, conn: Connection, probes: bool = False) -> Iterator[None]:
        """Within the block, the database plans each query for its own values and the tables as they
        are now, not once for all (a plan made while a table was small, kept as it grows); where it
        keeps such plans. ``probes``: a join of key rows to a table looks each up in the table's index,
        whatever the table's statistics say (stale, while it is written)."""
        yield

    def compares_exactly(self, conn: Connection, table: sa.TableClause, columns: Sequence[str]) -> bool:
        """Whether the table's ``columns`` compare text by its exact characters, as Python does (no
        case folded, no trailing spaces ignored); False where the database cannot tell."""
        return False

    def key_rows(
        self, conn: Connection, table: sa.TableClause, columns: Sequence[str]
    ) -> sa.FromClause | None:
        """Rows (n, k0, k1 ...) to join to the table: many keys of its ``columns`` (k0 of the first
        column, k1 of the second ...), each of its column's own type, with its place ``n`` from 1, given
        by ``bind_key_rows``, so that one query looks for all, whatever their number. Here a temporary
        table made as the key columns are (``KEY_TABLE``: their types and collations), one a table (it
        lives on with its pooled connection: made anew for each chunk). None where the database has no
        such rows, or the session may not make them (keys are then bound one by one, a few hundred a
        query)."""
        q = conn.dialect.identifier_preparer.quote
        name = temporary_name("_parity_keys_", table)
        keys = [f"{q(c)} AS k{i}" for i, c in enumerate(columns)]
        if self._temporary_table(conn, table, name, keys) is None:
            return None
        names: list[sa.ColumnClause[Any]] = [
            sa.column("n"),
            *(sa.column(f"k{i}") for i in range(len(columns))),
        ]
        return sa.table(name, *names, schema=table.schema if self.KEY_TABLE_IN_SCHEMA else None)

    def bind_key_rows(
        self, conn: Connection, rows: sa.FromClause, keys: Sequence[tuple[Any, ...]]
    ) -> dict[str, Any]:
        """Make ``key_rows``'s ``rows`` the ``keys``; returns the parameters of the statement that joins
        them (none here: they are the temporary table's rows)."""
        assert isinstance(rows, sa.TableClause)
        conn.execute(sa.delete(rows))
        q = conn.dialect.identifier_preparer.quote
        insert_numbered(conn, f"{q(rows.schema)}.{q(rows.name)}" if rows.schema else q(rows.name), keys)
        return {}

    def _temporary_table(
        self, conn: Connection, table: sa.TableClause, name: str, columns: Sequence[str]
    ) -> str | None:
        """Make a temporary table named ``name`` anew (``KEY_TABLE``): n, then the ``columns`` (SQL:
        the table's columns with their aliases) as the table has them, no rows; its name as SQL, or
        None where the database has no such table or the session may not make it."""
        if self.KEY_TABLE is None:
            return None
        q = conn.dialect.identifier_preparer.quote
        within = f"{q(table.schema)}.{q(name)}" if table.schema and self.KEY_TABLE_IN_SCHEMA else q(name)
        source = f"{q(table.schema)}.{q(table.name)}" if table.schema else q(table.name)
        try:
            for statement in self.KEY_TABLE:
                conn.exec_driver_sql(statement.format(table=within, keys=", ".join(columns), source=source))
        except sa.exc.DBAPIError:  # (refused: MySQL's transaction stays as it was, SQLite's too)
            return None
        return within

    def update_rows(
        self,
        conn: Connection,
        table: sa.TableClause,
        keys: Sequence[str],
        changed: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
    ) -> int | None:
        """Update the table's rows by many ``rows`` at once, each its key columns' values then its
        ``changed`` columns' (the order they go in is not kept: a target row two of them match is
        matched once, and counted once); returns the target rows matched, or None where the database
        does not do it so (``executemany`` of one UPDATE then: PostgreSQL's driver sends them in one
        pipeline)."""
        return None

    KEY_TABLE: ClassVar[tuple[str, ...] | None] = None
    """The statements that make ``key_rows``'s temporary table anew ({table}: its name; {keys}: the key
    columns as k0, k1 ...; {source}: the table); None: no key rows. ``update_rows``'s too, on MySQL."""
    KEY_TABLE_IN_SCHEMA: ClassVar[bool] = True
    """Whether that temporary table is named in the table's schema (else in the session's own)."""

    KEY_ROWS_FIRST: ClassVar[str | None] = None
    """A SELECT's prefix that joins the tables in the order written: the key rows first."""

    MAX_CASE_DEPTH: ClassVar[int | None] = None
    """How deep CASE expressions may nest (diff's ``window_index``); None: deep enough."""

    TEXT_KEYS_FOLD: ClassVar[bool] = False
    """Whether the text of a key parity creates compares as the server's default collation has it,
    ignoring case and trailing spaces (MySQL/MariaDB, SQL Server), not by its exact characters."""

    def exact_collation(self, sa_dialect: Any) -> str | None:
        """Where keys fold text (``TEXT_KEYS_FOLD``), the collation of a key column parity creates for a
        source that compares text by its exact characters: unique 'a' and 'A', or 'a' and 'a ', are two
        keys there, and one of them was refused as a duplicate. None: keys compare exactly already."""
        return None

    INTEGER_BOOLEANS: ClassVar[bool] = False
    """Whether a boolean column holds any integer (MySQL's TINYINT(1), SQLite's): copy writes a source's
    2 there as it is, not as true."""

    ANY_VALUE_ANYWHERE: ClassVar[bool] = False
    """Whether a column may hold a value of any type, whatever its declared type (SQLite): copy then
    checks the Python types of the values it reads as they are (``NATIVE_KINDS``)."""

    SINGLE_FLOATS: ClassVar[bool] = False
    """Whether a column of kind FLOAT holds a 4-byte float (PostgreSQL real, MySQL FLOAT, DuckDB FLOAT),
    so that two such columns are compared exactly; SQLite's REAL is a double, whatever wrote it."""

    FAILED_SAVEPOINTS: ClassVar[int | None] = None
    """The most savepoints rolled back after a refused write that one transaction may make, where each
    keeps a lock until the transaction ends (PostgreSQL: the subtransaction's XID), from a lock table
    the whole server shares; None: no such cost."""

    def count_failed_savepoint(self, failed: int, workers: int = 1) -> None:
        """Stop isolating refused rows in a transaction that has made ``failed`` refused writes under
        savepoints, once more would crowd the server's lock table: ``FAILED_SAVEPOINTS`` shared among
        the ``workers`` transactions a copy has open at once."""
        if self.FAILED_SAVEPOINTS is None:
            return
        most = max(1, self.FAILED_SAVEPOINTS // max(1, workers))
        if failed > most:
            raise ParityError(
                f"the target refused more than {most} writes in one chunk, and each keeps"
                " a lock until the chunk commits, from a lock table the whole server shares: the chunk"
                " was rolled back; mend the refused rows, or copy with a smaller --batch-size"
            )

    DEFERS_KEYS: ClassVar[bool] = False
    """Whether a copy into a table it creates builds the table's primary key, unique constraints and
    indexes after the rows are in (PostgreSQL: a COPY into a bare heap, then one index build each, is a
    fifth faster, as pg_restore does); not where the primary key orders the rows (InnoDB)."""

    PARALLEL_CHUNKS: ClassVar[bool] = True
    """Whether copy runs a table's chunks in parallel (``--workers``) with this database on either side;
    False where the reading or writing is this process's own Python work (SQLite, which also takes one
    writer at a time): its threads share one interpreter lock, and parallel chunks only contend for it
    (measured on 1M rows: 4 workers 15-20% slower than 1). Chunks read in reader processes
    (``parity.textread``) run in parallel whatever the source."""

    def log_position(self, conn: Connection) -> str | None:
        """The current position of the database's change log (MySQL binlog), or None without one."""
        return None

    def references(self, conn: Connection, schema: str | None) -> dict[str, set[str]]:
        """Every table of the schema, with the tables its FKs reference."""
        return {
            name: {
                fk["referred_table"]
                for fk in self.foreign_keys(conn, name, schema)
                if fk.get("referred_table")
            }
            for name in self.table_names(conn, schema)
        }

    def referencing_tables(self, conn: Connection, tables: list[str], schema: str | None) -> set[str]:
        """Tables outside ``tables`` whose FKs reference one of them."""
        wanted = set(tables)
        return {
            name
            for name, refers in self.references(conn, schema).items()
            if name not in wanted and refers & wanted
        }

    REFERENCES_ELSEWHERE: ClassVar[str | None] = None
    """A query of the tables in other schemas whose FKs reference one of ``:tables`` of ``:schema``
    (rows: their schema and name), or None where no FK reaches across schemas (SQLite, DuckDB)."""

    def referencing_elsewhere(self, conn: Connection, tables: list[str], schema: str | None) -> set[str]:
        """Tables of other schemas (as ``schema.table``) whose FKs reference one of ``tables``."""
        if self.REFERENCES_ELSEWHERE is None or not tables:
            return set()
        dialect = conn.dialect
        folds = dialect.requires_name_normalize  # (Oracle's catalog: names SQLAlchemy lower-cases)
        stored, shown = (dialect.denormalize_name, dialect.normalize_name) if folds else (str, str)
        query = sa.text(self.REFERENCES_ELSEWHERE).bindparams(sa.bindparam("tables", expanding=True))
        params = {
            "schema": stored(schema or dialect.default_schema_name or ""),
            "tables": [stored(t) for t in tables],
        }
        return {f"{shown(owner)}.{shown(name)}" for owner, name in conn.execute(query, params)}

    def since_value(self, x: Any, kind: Kind) -> Any:
        """A ``since`` column as copy orders it, for its watermark and its condition: the column."""
        return x

    ANALYZE: ClassVar[str | None] = None
    """The statement that has the planner count a table's values anew (``{table}``: its quoted name), or
    None. After copy --remap-ids fills ``_parity_id_map``, MariaDB's plan for diff's join through it
    without fresh counts read the map whole for every row: 47 s for 20,000 rows, 0.6 s once counted."""

    def reserve_ids(
        self, conn: Connection, target: Endpoint, table: str, column: str, count: int
    ) -> list[int] | None:
        """``count`` new IDs of ``table``'s numbered ``column``, taken from the database as INSERTs
        would take them, so that rows carrying them can go by the bulk path (copy --remap-ids); None
        where the database has no way to (the rows are then inserted and their IDs returned)."""
        return None

    def bulk_refused(self, endpoint: Endpoint) -> str | None:
        """Why the database refuses the bulk writer (``WRITER``), its row writer then loading the rows;
        None where it takes it."""
        return None

    def load_numbering(self, conn: Connection, target: Endpoint, table: str) -> int | None:
        """Where one bulk load (``WRITER``) into ``table`` numbers its rows consecutively, in their
        order: the step between two IDs (the first is ``first_loaded_id``); else None."""
        return None

    def first_loaded_id(self, conn: Connection) -> int:
        """The ID the last bulk load on ``conn`` gave its first row (``load_numbering``)."""
        raise NotImplementedError

    def advance_sequences(
        self, conn: Connection, target: Endpoint, table: str, columns: Sequence[str]
    ) -> None:
        """After rows were written with their own values into columns the database numbers (identity,
        serial), make the next number it gives come after the largest."""

    def fixed_columns(self, conn: Connection, target: Endpoint, table: str) -> set[str]:
        """The table's columns an UPDATE may not set, even to the value they hold: values the database
        always generates (PostgreSQL's and Oracle's GENERATED ALWAYS, SQL Server's identity)."""
        return set()

    def ids_never_written(self, conn: Connection, target: Endpoint, table: str) -> set[str]:
        """The table's columns an INSERT may not give a value, whatever the session allows: identities
        the database always numbers itself (Oracle's GENERATED ALWAYS; PostgreSQL's takes values with
        OVERRIDING SYSTEM VALUE, SQL Server's under IDENTITY_INSERT)."""
        return set()

    def numbers_nulls(self, conn: Connection, target: Endpoint, table: str) -> set[str]:
        """The table's columns that take a number of the database's own for a NULL written to them
        (SQLite's rowid, MySQL's AUTO_INCREMENT, Oracle's identity ON NULL): a source row holding NULL
        there would arrive under another key, so copy refuses it."""
        return set()

    def changed_only_columns(self, conn: Connection, target: Endpoint, table: str) -> set[str]:
        """The table's columns an UPDATE may set only where the value changes (merge updates them apart,
        row by row where they differ); none but on DuckDB."""
        return set()

    FK_SEES_OWN_DELETES: ClassVar[bool] = True
    """Whether an FK check sees the rows its own transaction deleted; where not (DuckDB), replace empties
    each table in a transaction of its own, children first."""

    def explicit_ids_sql(
        self, conn: Connection, target: Endpoint, table: str, columns: Sequence[str]
    ) -> tuple[str, str] | None:
        """The statements (on, off) that let INSERTs into ``table`` give ``columns`` values even where the
        database numbers them (SQL Server's IDENTITY_INSERT); None where none is needed."""
        return None

    @contextmanager
    def explicit_ids(
        self, conn: Connection, target: Endpoint, table: str, columns: Sequence[str]
    ) -> Iterator[None]:
        """Within the block, INSERTs on ``conn`` into ``table`` may give ``columns`` values
        (``explicit_ids_sql``); off again before the connection goes back to the pool (SQL Server
        lets one table a session have IDENTITY_INSERT on)."""
        switch = self.explicit_ids_sql(conn, target, table, columns)
        if switch is None:
            yield
            return
        from parity.endpoint import switched

        with switched(conn, switch, if_off_fails="discard"):
            yield

    def breaks_foreign_key(self, error: BaseException) -> bool:
        """Whether the driver's error says rows reference rows that are not there."""
        return False

    def settle(self, endpoint: Endpoint) -> None:
        """Before a copy records that it is done: the work closing the database does after the rows
        (DuckDB's checkpoint, seconds of a large copy), so that a run killed in it is resumed, not
        taken for done (a copy appending again would double a table without a key)."""

    INDEXES_AGAIN: ClassVar[bool] = False
    """Whether ``index_there`` knows the database's error for an index there already: where DDL
    commits on its own, copy then builds a created table's indexes again at its finish (a run killed
    between CREATE TABLE and them left the table without them)."""

    def index_there(self, error: BaseException) -> bool:
        """Whether the driver's error says the index being created exists already."""
        return False

    def already_there(self, error: BaseException) -> bool:
        """Whether the driver's error says the constraint being added exists already (added by a run
        stopped before it recorded so, where DDL commits on its own)."""
        return False

    def explicit_values(self, stmt: Any) -> Any:
        """The INSERT, made to store the values it gives even in columns whose values the database
        generates (PostgreSQL's GENERATED ALWAYS refuses them otherwise)."""
        return stmt

    TEMPORARY_PREFIX: ClassVar[str] = ""
    """How the names of temporary tables begin, where the database tells them by name."""

    UPSERT_BY_MERGE: ClassVar[bool] = False
    """Whether ``upsert`` is a MERGE statement (databases without ON CONFLICT or ON DUPLICATE KEY)."""

    def create_staging(self, staging: str, columns: str, source: str) -> list[str]:
        """The statements that make an empty temporary table ``staging`` (a quoted name) with ``columns``
        (quoted, comma-separated) as the table ``source`` has them, for the session (or transaction)
        that then writes to it; one left by an earlier chunk of the session is kept, or made again."""
        return [
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} AS SELECT {columns} FROM {source} WHERE 1 = 0"
        ]

    def upsert(
        self,
        target: sa.TableClause,
        staging: sa.TableClause,
        columns: list[str],
        key: list[str],
        fixed: Collection[str] = (),
    ) -> sa.Executable | tuple[sa.Executable, ...]:
        """INSERT the staging rows into the target, updating rows whose key exists (ON CONFLICT form, or
        MERGE with ``UPSERT_BY_MERGE``; or statements run in order); ``fixed`` columns keep the target's
        value (``fixed_columns``). A clash on another unique key is an error, never an update."""
        if self.UPSERT_BY_MERGE:
            return Merge(target, staging, columns, key, fixed)
        from sqlalchemy.dialects.postgresql import insert

        # WHERE true: SQLite cannot otherwise tell the upsert clause from a join condition
        rows = sa.select(*(staging.c[c] for c in columns)).where(sa.true())
        stmt = self.explicit_values(insert(target).from_select(columns, rows))
        rest = [c for c in columns if c not in key and c not in fixed]
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
            if isinstance(value, str):  # ('t', 'TRUE', 'yes' ... as old schemas spell them; else none)
                spelled = value.strip().lower()
                if spelled not in _BOOLEAN_DEFAULTS:
                    return None
                value = _BOOLEAN_DEFAULTS[spelled]
            return sa.text(self.boolean_literal(bool(value)))
        if isinstance(value, (int, float)):
            return sa.text(repr(value))
        if isinstance(value, str):
            if self.BACKSLASH_ESCAPES:
                value = value.replace("\\", "\\\\")
            return sa.text("'" + value.replace("'", "''") + "'")
        return None

    BACKSLASH_ESCAPES: ClassVar[bool] = False
    """Whether a backslash in a string literal starts an escape (MySQL's default sql_mode)."""

    BOOLEAN_LITERALS: ClassVar[tuple[str, str]] = ("TRUE", "FALSE")
    """How true and false are written in DDL defaults."""

    def boolean_literal(self, value: bool) -> str:
        return self.BOOLEAN_LITERALS[0 if value else 1]

    # ---- reflection ------------------------------------------------------------------------------

    def canonical_type(
        self, column: dict[str, Any], conn: Connection, table: str, schema: str | None
    ) -> CanonicalType | None:
        """Map one reflected column (an Inspector.get_columns dict) to its canonical type."""
        return from_sqlalchemy(column["type"])

    def wider_than_declared(
        self, column: dict[str, Any], conn: Connection, table: str, schema: str | None
    ) -> bool:
        """Whether the column may hold values wider than its declared type (Column.wider_than_declared)."""
        return False

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

    def primary_key_nulls(
        self, conn: Connection, table: str, schema: str | None, primary_key: tuple[str, ...]
    ) -> tuple[str, ...]:
        """The primary key's columns that may hold NULL (SQLite's); elsewhere none."""
        return ()

    def is_identity(self, column: dict[str, Any], primary_key: tuple[str, ...]) -> bool:
        """Whether the database generates this column's values."""
        if column.get("identity"):
            return True
        default = str(column.get("default") or "")
        if "nextval(" in default.lower():
            return True
        return column.get("autoincrement") is True and column["name"] in primary_key and len(primary_key) == 1

    def table_names(self, conn: Connection, schema: str | None) -> list[str]:
        return inspector(conn).get_table_names(schema=schema)

    def table_notes(self, conn: Connection, table: str, schema: str | None) -> list[str]:
        """What the schema of a table holds that parity does not carry over, for the plan's warnings."""
        return []

    def inner_tables(self, conn: Connection, schema: str | None) -> dict[str, str]:
        """Tables whose rows a read of another table of the schema includes, each with that table:
        PostgreSQL's partitions and child tables (``INHERITS``), with their parents."""
        return {}

    def columns(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        """Columns in SQLAlchemy Inspector form (name, type, nullable, default, autoincrement ...)."""
        return [dict(x) for x in inspector(conn).get_columns(table, schema=schema)]

    def primary_key(self, conn: Connection, table: str, schema: str | None) -> tuple[str, ...]:
        return tuple(inspector(conn).get_pk_constraint(table, schema=schema).get("constrained_columns") or ())

    def indexes(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        """Inspector's indexes; one SQLAlchemy skips with a warning (SQLite's on an expression) comes
        with no columns, so that the plan names it in its own warning, not a Python one."""
        with _expression_indexes() as skipped:
            found = [dict(x) for x in inspector(conn).get_indexes(table, schema=schema)]
        return found + [{"name": name, "column_names": [None], "unique": False} for name in skipped]

    def foreign_keys(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        return [dict(x) for x in inspector(conn).get_foreign_keys(table, schema=schema)]

    def unique_constraints(
        self, conn: Connection, table: str, schema: str | None
    ) -> list[tuple[str | None, tuple[str, ...]]]:
        """(name, columns) of each unique constraint."""
        with _expression_indexes():  # (SQLite reads its indexes for them: named by ``indexes``)
            found = inspector(conn).get_unique_constraints(table, schema=schema)
        return [(u.get("name"), tuple(u["column_names"])) for u in found]

    def check_constraints(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        """CHECK constraints in Inspector form (name, sqltext); none where reflection has no way to them."""
        try:
            return [dict(x) for x in inspector(conn).get_check_constraints(table, schema=schema)]
        except NotImplementedError:
            return []

    # ---- diff: canonical text, row hashes, buckets -------------------------------------------------
    # parity diff renders every compared value in SQL as one canonical text, equal on every database
    # for equal values (docs/types.md), hashes a row's text with SHA-256 into a 60-bit integer and sums
    # those per bucket. These methods only build SQLAlchemy expressions; values are bound, never pasted.

    CAST_TEXT: ClassVar[sa.types.TypeEngine[Any]] = sa.Text()
    """The type named in ``CAST(x AS ...)`` to turn a value into text."""

    DATE_FORMAT: ClassVar[str | None] = None
    TIME_FORMAT: ClassVar[str | None] = None
    TIMESTAMP_FORMAT: ClassVar[str | None] = None
    """Format strings (the database's own syntax) giving ``YYYY-MM-DD``, ``HH:MM:SS.ffffff`` and
    ``YYYY-MM-DD HH:MM:SS.ffffff``; None where the dialect overrides the method instead."""

    COPY_TEXT_SETUP: ClassVar[tuple[str, ...]] = ()
    """Statements run in the transaction of a ``COPY ... TO STDOUT`` whose text a writer loads as it is
    (``bulk.TextBatch``): the output formats that text relies on."""

    def copy_line(
        self, columns: Sequence[Any], kinds: Sequence[Kind], charsets: Mapping[str, str | None] | None = None
    ) -> sa.ColumnElement[Any] | None:
        """One row as a line of COPY text computed by the database (tab-separated; backslash escapes in
        strings; ``\\N`` for NULL), which ``bulk.TextBatch`` carries to a
        writer unchanged; None where the database does not give such text (PostgreSQL says
        ``COPY ... TO STDOUT`` instead). The line may be NULL only where it would not fit in a value.
        ``charsets``: the columns' character sets (``column_charsets``)."""
        return None

    def taken_names(self, conn: Connection, schema: str | None) -> set[str]:
        """The names in the schema that a new index or constraint may not take, where the database
        keeps them per schema, not per table (PostgreSQL's indexes are relations; MySQL's FK names)."""
        return set()

    def estimated_rows(self, conn: Connection, table: str, schema: str | None) -> int | None:
        """The table's row count as the database's statistics hold it (no scan), or None where it has
        none; it may be stale."""
        return None

    def column_charsets(self, conn: Connection, table: str, schema: str | None) -> dict[str, str | None]:
        """Each column's character set, where the database has one per column (MySQL, MariaDB)."""
        return {}

    DIFF_SETUP: ClassVar[tuple[str, ...]] = ()
    """Statements run in the transaction of each diff query (planner settings local to it)."""

    GROUP_BY_SORTS: ClassVar[bool] = False
    """True where GROUP BY also sorts the groups unless the query says ``ORDER BY NULL`` (MySQL,
    MariaDB): diff's checksum queries say so."""

    LENIENT_LOADERS: ClassVar[bool] = False
    """Whether ``lenient_loaders`` does anything (diff then runs a query its driver failed on again)."""

    FK_SEES_OWN_STATEMENT: ClassVar[bool] = True
    """Whether an FK check sees the rows its own statement writes (a row referencing itself; not
    DuckDB's, which checks against the rows before the statement)."""

    HOLDS_ENDLESS_TIMES: ClassVar[bool] = False
    """Whether its dates and timestamps hold infinity, -infinity and days before Christ, as PostgreSQL
    writes them ('0045-03-15 BC'; no Python date holds them, and such a value comes as that text):
    sync and fix write the text, which the database reads (PostgreSQL, DuckDB). Elsewhere such a row is
    refused, naming it, as copy rejects it (SQLite would keep the text, which no one reads as a date)."""

    HOLDS_NAN: ClassVar[bool] = True
    """Whether its floats hold NaN and the infinities (not MySQL's, MariaDB's or SQL Server's): where
    not, copy rejects such a row naming the column, as the driver's refusal does not."""

    READS_TIME_TEXT: ClassVar[bool] = False
    """Whether the database reads the text of dates and times that ``lenient_loaders`` give as text
    (PostgreSQL's infinities, years past 9999) as such values (PostgreSQL, DuckDB); elsewhere copy
    rejects those rows, with the value."""

    def lenient_loaders(self, conn: Connection) -> None:
        """Have the driver give the text of a value it cannot make a Python value of (PostgreSQL's
        infinite timestamps and dates, years past 9999) instead of failing the query."""

    def prepare_connection(self, conn: Connection) -> None:
        """Make a connection ready for diff's SQL (SQLite registers SHA-256 and friends here)."""

    def text(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.cast(x, self.CAST_TEXT)

    def id_text(self, x: Any) -> sa.ColumnElement[Any]:
        """An integer ID as the text ``_parity_id_map`` holds it, compared with that column as its
        own collation compares (so that its index serves)."""
        return sa.cast(x, sa.String(40))

    NULL_PROPAGATES: ClassVar[bool] = True
    """Whether ``||``/concat() of NULL is NULL, so that ``COALESCE(text, marker)`` marks NULLs (cheaper
    than CASE); False where concatenation treats NULL as '' (Oracle, SQL Server's CONCAT)."""

    def exact_text(self, column: Any) -> Any:
        """A text column as its exact characters, for grouping or comparing without the collation's
        equalities (MySQL's ignore case, accents and trailing spaces)."""
        return column

    def key_equals(self, column: Any, value: Any, kind: Kind) -> sa.ColumnElement[Any]:
        """``column = value`` for a key, exactly: what sync and fix update or delete by. Where the
        column's collation would also match other text (MySQL's ignore case, accents and trailing
        spaces), an exact test of the bytes is added beside ``=``, which an index can still serve."""
        return column == value

    def key_spellings(self, kind: Kind) -> Callable[[Any], list[str]] | None:
        """For a key of this kind held as text in more than one spelling diff takes as one value (SQLite's
        '2020-01-02T10:00:00' and '2020-01-02 10:00:00.000'): the value's ``UUID_SPELLINGS`` spellings,
        which sync and fix find its row by; None where the database holds the value itself."""
        return None

    def key_loosely(self, column: Any, kind: Kind, value: Any) -> sa.ColumnElement[Any] | None:
        """Where ``key_spellings`` may miss a spelling diff takes as the value (SQLite's 'Z', an offset,
        '.5'): a test that finds the row in any of them, which fix tries when those found none (an index
        serves it in part); None where the spellings are all."""
        return None

    def fraction_digits(self, sa_type: Any) -> int | None:
        """The digits of a second a reflected TIME or TIMESTAMP type keeps: as declared, else the
        database's default (microseconds); None where it is not known (SQLite's text)."""
        precision = getattr(sa_type, "precision", None)
        return min(precision, 6) if isinstance(precision, int) else 6

    def text_prefix(self, text: Any, length: int) -> sa.ColumnElement[Any]:
        """The first ``length`` characters of a text."""
        return sa.func.substr(text, 1, length)

    TABLE_NAMES_IGNORE_CASE: ClassVar[bool] = False
    """Whether ``t`` and ``T`` name one table (SQLite, DuckDB; MySQL only with lower_case_table_names)."""

    COLUMN_NAMES_IGNORE_CASE: ClassVar[bool] = False
    """Whether ``c`` and ``C`` name one column (MySQL, MariaDB, SQLite, DuckDB, SQL Server)."""

    CHARSET_PER_COLUMN: ClassVar[bool] = False
    """Whether a string column has a character set of its own (``column_charsets``): MySQL, MariaDB."""

    def column_utf8(self, x: Any, charset: str | None) -> sa.ColumnElement[Any]:
        """A string column whose text is in ``charset`` as UTF-8 text, where the two differ: diff hashes
        the bytes of a row's text, and equal strings must give equal bytes on every database."""
        return x

    def text_length(self, x: Any) -> sa.ColumnElement[Any]:
        """Length in bytes of the UTF-8 text, used to length-prefix strings in a row's text."""
        return sa.func.octet_length(x)

    def concat(self, *parts: Any) -> sa.ColumnElement[Any]:
        out = parts[0]
        for part in parts[1:]:
            out = out.concat(part) if isinstance(out, sa.ColumnElement) else sa.literal(out).concat(part)
        return out

    def int_div(self, a: Any, b: Any) -> sa.ColumnElement[Any]:
        """Integer division of non-negative integers, exact for 64-bit values."""
        return a.op("/", precedence=8)(b)  # integer operands: integer division

    def rtrim_chars(self, x: Any, chars: str) -> sa.ColumnElement[Any]:
        return sa.func.rtrim(x, sa.literal(chars))

    def text_integer(self, x: Any) -> sa.ColumnElement[Any]:
        return self.text(x)

    def text_decimal(self, x: Any, declared: int | None, scale: int | None) -> sa.ColumnElement[Any]:
        """A decimal of ``declared`` scale (None: unbounded) as text with exactly ``scale`` decimals,
        or, when ``scale`` is None, with trailing zeros (and a trailing point) removed."""
        if scale is None:
            if declared == 0:
                return self.text(x)
            text = self.text(x)
            trimmed = self.rtrim_chars(self.rtrim_chars(text, "0"), ".")
            return trimmed if declared else sa.case((text.like(sa.literal("%.%")), trimmed), else_=text)
        if declared == scale:
            return self.text(x)
        return self.text(sa.cast(x, sa.Numeric(self.MAX_DECIMAL_PRECISION, scale)))

    def as_double(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.cast(x, sa.Double())

    def as_single(self, x: Any) -> sa.ColumnElement[Any]:
        """A double rounded to the nearest 4-byte float, as a double (a FLOAT compared with a DOUBLE);
        one that no 4-byte float holds (NaN, infinities, past its largest, below its least) as it is,
        where casting it would fail."""
        d = self.as_double(x)
        a = sa.func.abs(d)
        fits = sa.and_(a < sa.literal(SINGLE_HIGH, sa.Double()), a > sa.literal(SINGLE_LOW, sa.Double()))
        return sa.case((fits, self.as_double(self.to_single(d))), else_=d)

    def to_single(self, d: Any) -> sa.ColumnElement[Any]:
        """``CAST(d AS <the 4-byte float>)``, ``d`` a double that fits one."""
        return sa.cast(d, sa.REAL())

    def text_float(self, x: Any, digits: int) -> sa.ColumnElement[Any]:
        """A float rounded to ``digits`` significant digits: mantissa 'e' exponent (``12500000000e-10``)."""
        d = self.as_double(x)
        exponent = sa.func.floor(self.log10(sa.func.abs(d)))
        unit: sa.ColumnElement[float] = sa.func.power(
            sa.literal(10.0, sa.Double()), exponent - (digits - 1), type_=sa.Double()
        )
        mantissa = self.round(d / unit)
        as_int = sa.BigInteger()
        return sa.case(
            (d == 0, sa.literal("0")),
            (d - d != 0, self.text(d)),  # infinities and NaN
            (sa.func.abs(d) < sa.literal(TINY, sa.Double()), self.text(d)),  # (the unit would underflow)
            else_=self.concat(
                self.text(sa.cast(mantissa, as_int)), sa.literal("e"), self.text(sa.cast(exponent, as_int))
            ),
        )

    def text_double(self, x: Any) -> sa.ColumnElement[Any]:
        """A double's exact value: its sign, its 53-bit significand as an integer and its power of two
        (``-6004799503160661p-55`` is -1/6), the same on every database for the same 64 bits; zero is
        ``0`` (whatever its sign), infinities and NaN the database's own text."""
        d = self.as_double(x)
        a = sa.func.abs(d)
        two = self.as_double(sa.literal(2.0, sa.Double()))  # (Oracle: a NUMBER holds no 2**-1074)
        floor = sa.func.floor(self.log2(a))
        guess = sa.case((floor > 1023, 1023), (floor < -1074, -1074), else_=floor)
        scaled = a / sa.func.power(two, guess, type_=sa.Double())
        # the logarithm may be a step off next to a power of two: a division by one is exact, so the
        # scaled value says which way
        exponent = guess + sa.case((scaled >= 2, 1), (scaled < 1, -1), else_=0)
        significand = (
            a
            / sa.func.power(two, exponent, type_=sa.Double())
            * self.as_double(sa.literal(2.0**52, sa.Double()))
        )
        as_int = sa.BigInteger()
        return sa.case(
            (d == 0, sa.literal("0")),
            (d - d != 0, self.text(d)),  # infinities and NaN
            else_=self.concat(
                sa.case((d < 0, sa.literal("-")), else_=sa.literal("")),
                self.text(sa.cast(significand, as_int)),
                sa.literal("p"),
                self.text(sa.cast(exponent - 52, as_int)),
            ),
        )

    def log2(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.log2(x)

    def text_rounded(
        self, x: Any, step: float, exact: Any = None, limit: float = ROUNDED_LIMIT
    ) -> sa.ColumnElement[Any]:
        """``round(x / step)``: values within a tolerance of each other mostly share it, never when
        further. That holds where the double quotient is exact enough: below ``limit`` (its rounding
        then moves it by a millionth of a step at most), and, for an integer or a decimal (``exact``:
        its own text), where the value is within a double's integers (2**53). Elsewhere the value's own
        text (``exact``, else a double's 17 digits), compared in Python within the tolerance: a BIGINT
        of nanoseconds, or a numeric(20,4) by 0.0001, shared it 1.2 tolerances apart."""
        value = self.as_double(x)
        quotient = value / sa.literal(step, sa.Double())
        safe: sa.ColumnElement[bool] = sa.func.abs(quotient) < sa.literal(
            min(limit, BIGINT_SAFE), sa.Double()
        )
        if exact is not None:
            safe = sa.and_(safe, sa.func.abs(value) < sa.literal(float(2**53), sa.Double()))
        return sa.case(
            (safe, self.text(sa.cast(self.round(quotient), sa.BigInteger()))),
            # (marked: an exact text never reads as some other value's quotient; 17 digits have an e)
            else_=self.text_float(x, 17) if exact is None else self.concat(sa.literal("="), exact),
        )

    def round(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.round(x)

    def log10(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.log10(x)

    def text_boolean(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.case((x, sa.literal("1")), else_=sa.literal("0"))

    def text_integer_boolean(self, x: Any) -> sa.ColumnElement[Any]:
        """``text_boolean`` where a boolean is an integer column (MySQL's TINYINT(1), SQLite): 1 and 0 as
        such, any other value its own text, which no boolean's is (2 was '1', equal to true)."""
        return sa.case((x == 1, sa.literal("1")), (x == 0, sa.literal("0")), else_=self.text(x))

    def text_string(self, x: Any, strip: bool) -> sa.ColumnElement[Any]:
        # (spaces only: DuckDB's rtrim() of one argument takes every white space, U+00A0 too)
        return self.rtrim_chars(x, " ") if strip else x

    def text_date(self, x: Any) -> sa.ColumnElement[Any]:
        if self.DATE_FORMAT:
            return self.format_time(x, self.DATE_FORMAT)
        return self.text(x)

    def text_time(self, x: Any) -> sa.ColumnElement[Any]:
        assert self.TIME_FORMAT, f"{type(self).__name__} must override text_time"
        return self.format_time(x, self.TIME_FORMAT)

    def text_timestamp(self, x: Any, with_zone: bool) -> sa.ColumnElement[Any]:
        """``YYYY-MM-DD HH:MM:SS.ffffff``; in UTC when the column has a time zone."""
        assert self.TIMESTAMP_FORMAT, f"{type(self).__name__} must override text_timestamp"
        return self.format_time(self.in_utc(x) if with_zone else x, self.TIMESTAMP_FORMAT)

    def compared(self, x: Any, column: Column) -> Any:
        """The column as diff hashes it, where the database's own type needs a step first."""
        return x

    def timestamp_as_text(self, column: Column) -> bool:
        """Whether the column, as a string, is the canonical text of a timestamp already (diff then
        hashes it without ``text_timestamp``); decided on the database's own type, not on a type the
        job file gives it."""
        return False

    def format_time(self, x: Any, fmt: str) -> sa.ColumnElement[Any]:
        return sa.func.to_char(x, sa.literal(fmt))

    def in_utc(self, x: Any) -> sa.ColumnElement[Any]:
        """A timestamp with time zone as the UTC wall-clock time."""
        return sa.func.timezone(sa.literal("UTC"), x)

    def epoch_seconds(self, x: Any, with_zone: bool) -> sa.ColumnElement[Any]:
        """Seconds since 1970-01-01 UTC (a naive timestamp counts as UTC), as a number."""
        return sa.extract("epoch", x)

    def text_epoch_rounded(self, x: Any, with_zone: bool, step: float) -> sa.ColumnElement[Any]:
        # The tolerance is whole microseconds (as diff compares in Python), so two values further
        # apart differ by a microsecond more at least; seconds since 1970 as a double are off by a
        # quarter of one at most below 2**31 (1901 to 2038), too little to put them in one bucket.
        micros = math.floor(step * 1e6 + 1e-6)
        seconds = self.epoch_seconds(x, with_zone)
        if micros == 0:
            return self.text_float(seconds, 17)
        step = micros / 1e6
        return self.text_rounded(seconds, step, limit=2.0**31 / step)

    def text_binary(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.lower(sa.func.hex(x))

    def text_uuid(self, x: Any, native_string: bool) -> sa.ColumnElement[Any]:
        """A UUID's text in lower case with dashes; held as text, in any spelling Python's ``uuid.UUID``
        reads (as diff compares it in Python: two spellings of one key hashed apart were found as a
        missing row and an extra one, and fix deleted the extra one), else the text in lower case."""
        if not native_string:
            return sa.func.lower(self.text(x))
        digits = self.uuid_digits(x)
        parts = [
            self.text_slice(digits, start, n) for start, n in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
        ]
        dash = sa.literal("-")
        dashed = self.concat(parts[0], dash, parts[1], dash, parts[2], dash, parts[3], dash, parts[4])
        spelled = self.text_length(digits) == sa.literal(32)
        return sa.case((spelled, dashed), else_=sa.func.lower(sa.func.rtrim(x)))

    def text_slice(self, text: Any, start: int, length: int) -> sa.ColumnElement[Any]:
        """``length`` characters of a text from the ``start``-th (counted from 1)."""
        return sa.func.substr(text, start, length)

    NARROW_PARAMETERS: ClassVar[bool] = False
    """Whether a parameter takes the type of the column it meets in arithmetic (DuckDB's), so that
    diff's arithmetic on a key is made in BIGINT (``Side.wide_key``)."""

    UUID_AS_TEXT: ClassVar[bool] = False
    """Whether a column of kind UUID holds text, in whatever case and form was written (SQLite's)."""

    def holds_uuid_as_text(self, kind: Kind) -> bool:
        """Whether a column of this kind holds a UUID as text, where diff compares it as a UUID: sync,
        fix and --record find its row in each spelling diff pairs with it (``values.uuid_spellings``)."""
        return kind in STRING_KINDS or (kind is Kind.UUID and self.UUID_AS_TEXT)

    def uuid_digits(self, x: Any) -> sa.ColumnElement[Any]:
        """The hex digits of a UUID held as text in any spelling Python's ``uuid.UUID`` reads
        ('urn:uuid:...', braces, dashes or none, any case, spaces around), in lower case."""
        text = sa.func.lower(sa.func.trim(x))
        for spelled in ("urn:", "uuid:", "-", "{", "}"):
            text = sa.func.replace(text, sa.literal(spelled), sa.literal(""))
        return text

    JSON_HASHED_AS_JSONB: ClassVar[bool] = False
    """Whether ``text_json`` writes any JSON the database holds in jsonb's text (else the text it holds):
    copy then writes JSON into a database that hashes the text it holds in that form."""

    def output_text(self, x: Any, native: str = "") -> sa.ColumnElement[Any]:
        """A value of a type parity takes as text (``Column.read_as_text``) as the database writes it;
        ``native``: the column's own type (``Column.native_type``)."""
        own = self.own_text(x, native)
        return sa.cast(x, self.CAST_TEXT) if own is None else own

    def not_text(self, columns: Sequence[Any]) -> sa.ColumnElement[bool] | None:
        """Where copy may read the database's rows through ADBC into Arrow (``parity.arrowtext``): the
        condition of a row holding, in one of ``columns`` (columns of text), a value that is no text,
        which the driver would give as text all the same; None where copy reads the rows otherwise."""
        return None

    def own_text(self, x: Any, native: str) -> sa.ColumnElement[Any] | None:
        """The text of a column of a type the database casts to no text (MySQL's spatial types: their
        WKT), or None."""
        return None

    def auto_updated(self, conn: Connection, table: str, schema: str | None) -> set[str]:
        """The table's columns the database sets itself when another column of the row changes
        (MySQL's ``ON UPDATE CURRENT_TIMESTAMP``); none elsewhere."""
        return set()

    def readable(self, table: Table, schema: str | None) -> Any:
        """The table as copy and diff read it, conditions included (``--where``): as it is, where its
        values are (SQLite's dates held as numbers: ``SQLite.readable``)."""
        return sa.table(table.name, *(sa.column(c.name) for c in table.columns), schema=schema)

    def read_value(self, x: Any, kind: Kind) -> Any:
        """How copy and diff read a column of ``kind`` so that its value arrives exactly (MySQL sends a
        FLOAT as 6 digits of text); ``x`` itself where the column as it is does."""
        return x

    LENIENT_KINDS: ClassVar[tuple[Kind, ...]] = ()
    """The kinds ``read_leniently`` reads otherwise than their values (SQLite's strings as bytes): copy
    decodes them, refusing the values that do not decode."""

    def read_checked(self, x: Any, kind: Kind) -> Any:
        """How copy reads a column: ``read_exactly``, but where the driver would give a value it cannot
        make as another one (DuckDB's infinity as 9999-12-31), the read fails (``read_refused``)."""
        return self.read_exactly(x, kind)

    def read_leniently(self, x: Any, kind: Kind) -> Any:
        """How copy reads a column again where ``read_checked`` refused a value: as text, say
        (``lenient_loaders`` does it for PostgreSQL)."""
        return self.read_exactly(x, kind)

    def read_refused(self, exc: BaseException) -> bool:
        """Whether a read failed where ``read_checked`` refused a value (copy then reads the chunk
        again, ``read_leniently``)."""
        return False

    def text_decoder(self, kind: Kind) -> Callable[[Any], Any] | None:
        """How diff decodes a value of a kind the driver gives as its value (``NATIVE_KINDS``) where it
        may come otherwise: as text (DuckDB's day before Christ, or the text ``read_leniently`` reads),
        as a number (SQLite's in a column of no declared type); None where it never does."""
        return None

    def read_exactly(self, x: Any, kind: Kind) -> Any:
        """``read_value``, labelled with the column's name where it is not the column itself."""
        value = self.read_value(x, kind)
        return x if value is x else value.label(x.name)

    def text_json(self, x: Any) -> sa.ColumnElement[Any]:
        """JSON in jsonb's text (``values.jsonb_text``) where the database can write it (PostgreSQL,
        SQLite through Python), else the text it holds: equal there when it was written in that form
        (as parity's copy and sync write it), else its rows are downloaded and compared in Python."""
        return self.text(x)

    def hash60(self, text: Any) -> sa.ColumnElement[Any]:
        """The first 15 hex digits of ``SHA-256(text)`` (UTF-8) as a non-negative integer.

        SHA-256 because every database has it (PostgreSQL 11+, MySQL/MariaDB ``sha2``, SQL Server
        2012+, Oracle 12c+, DuckDB; Python for SQLite), and MariaDB's ``md5()`` costs three times its
        ``sha2()`` (a third of a whole row checksum); elsewhere the two cost about the same."""
        raise NotImplementedError(f"{type(self).__name__} has no SHA-256 hash for diff")

    def hash_sum(self, h: Any) -> sa.ColumnElement[Any]:
        """An exact sum of 60-bit hashes (no 64-bit overflow): numeric, decimal or text."""
        return sa.func.sum(h)

    PYTHON_FUNCTIONS: ClassVar[bool] = False
    """Whether diff's SQL calls functions written in Python (``prepare_connection``: SQLite's)."""

    MAX_IN_LIST: ClassVar[int] = 1_000_000
    """The most values diff names in one ``IN (...)`` list (bucket numbers, keys)."""

    DECODES: ClassVar[bool] = False
    """Whether ``located_sums`` is implemented: then, where both databases have it, a bucket of an
    integer key range in which a single row differs names that row's key itself (the first moment of
    the differing hashes over the offsets), and diff fetches the row instead of splitting the bucket."""

    DECODE_FENCE: ClassVar[bool] = False
    """True where the planner would copy the hash into each aggregate that reads it (PostgreSQL pulls
    subqueries up): the subquery then says OFFSET 0, so that each row is hashed once."""

    def located_sums(self, h: Any, offset: Any, bits: int) -> list[sa.ColumnElement[Any]]:
        """Aggregates over a bucket from which ``located_totals`` recovers the sum of ``h`` and the sum
        of ``offset * h`` exactly (``0 <= offset < 2**bits``; ``h`` is read once)."""
        raise NotImplementedError(f"{type(self).__name__} cannot locate rows")

    def located_totals(self, values: Sequence[Any], bits: int) -> tuple[int, int]:
        """(sum of h, sum of offset * h) from the values of ``located_sums``."""
        raise NotImplementedError(f"{type(self).__name__} cannot locate rows")

    def period_slack(self, kind: Kind) -> timedelta:
        """How far a date or timestamp column's least or greatest value as the database orders it (an
        index serves ``min()`` and ``max()``) may be from its least or greatest time at UTC: diff's
        partition windows reach that much further (SQLite orders the text, offsets and all)."""
        return timedelta(0)

    def partition_value(self, x: Any, kind: Kind) -> sa.ColumnElement[Any]:
        """A date or timestamp column as diff's partition windows compare it (so an index can serve)."""
        return x

    def partition_bound(self, value: Any, kind: Kind) -> sa.ColumnElement[Any]:
        """A window's bound (a date, or a naive UTC datetime) bound for a column of ``kind``."""
        if kind is Kind.TIMESTAMPTZ:
            return sa.literal(value.replace(tzinfo=timezone.utc), sa.DateTime(timezone=True))
        return sa.literal(value, sa.Date() if kind is Kind.DATE else sa.DateTime())

    def partition_window(
        self, value: Any, bounds: Sequence[Any], indices: Sequence[int], kind: Kind
    ) -> sa.ColumnElement[Any] | None:
        """``indices[k]`` for the last of the ascending ``bounds`` (dates, or naive UTC datetimes) that
        ``value`` (``partition_value``) is not below, the first where it is below all: one function
        a row where the database has one (SQLite); None here, where diff compares ``value`` with the
        bounds in a balanced CASE."""
        return None


class LossyType(Exception):
    """Internal: a canonical type cannot be held exactly by a dialect."""
