"""MySQL and MariaDB: utf8mb4 everywhere, DATETIME(6) for timestamps, JSON detected by its CHECK."""

from __future__ import annotations

import re
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from parity.dialects.base import COPY_ESCAPES, Dialect, insert_numbered, temporary_name
from parity.schema.model import Column, Default
from parity.schema.types import STRING_KINDS, CanonicalType, Kind, from_sqlalchemy

if TYPE_CHECKING:
    from parity.endpoint import Endpoint


def _unticked(name: Any) -> Any:
    """A name as MySQL holds it, from SHOW CREATE TABLE's text (``b``q`` is ``b`q``)."""
    return name.replace("``", "`") if isinstance(name, str) else name


class MySQL(Dialect):
    ANALYZE = "ANALYZE TABLE {table}"
    COLUMN_NAMES_IGNORE_CASE = True
    names: ClassVar[tuple[str, ...]] = ("mysql", "mariadb")
    schemes = {"mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}
    driver_hint = "pip install pymysql"

    FK_CHECKS = ("SET FOREIGN_KEY_CHECKS=0", "SET FOREIGN_KEY_CHECKS=1")
    REFERENCES_ELSEWHERE = (
        "SELECT DISTINCT CONSTRAINT_SCHEMA, TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS"
        " WHERE UNIQUE_CONSTRAINT_SCHEMA = :schema AND REFERENCED_TABLE_NAME IN :tables"
        " AND CONSTRAINT_SCHEMA <> :schema"
    )
    HOLDS_NAN = False
    DEFERS_FOREIGN_KEYS = True
    WRITER = "load_data"
    ROW_WRITER = "mysql_insert"
    NATIVE_KINDS = frozenset(Kind) - {Kind.BOOLEAN, Kind.TIME, Kind.TIMESTAMPTZ, Kind.UUID, Kind.JSON}
    SESSION_SETUP = (
        "SET time_zone = '+00:00'",
        # (0 written to an AUTO_INCREMENT column is kept, as mysqldump does: else it takes a new number)
        "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'NO_AUTO_VALUE_ON_ZERO')",
    )

    BOOLEAN_LITERALS = ("1", "0")

    KEY_TABLE = (
        "DROP TEMPORARY TABLE IF EXISTS {table}",
        "CREATE TEMPORARY TABLE {table} (n INT NOT NULL DEFAULT 0 PRIMARY KEY) SELECT {keys} FROM {source} LIMIT 0",
    )
    """MariaDB's lists of equalities cost 15 us a key whatever their length (2,000 keys of two columns in
    38 ms); written to this table (8 us a key) and joined (2.5 us), they cost less, and the join gives
    each held key's row. Refused without the CREATE TEMPORARY TABLES grant, or by MySQL with GTIDs
    inside a transaction."""
    KEY_ROWS_FIRST = "STRAIGHT_JOIN"

    def update_rows(
        self,
        conn: Connection,
        table: sa.TableClause,
        keys: Sequence[str],
        changed: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
    ) -> int | None:
        """The rows written to a temporary table made as their columns are (``KEY_TABLE``'s way: their
        types and collations), by the driver's many-row INSERT, and joined to the table by one UPDATE:
        the drivers send an executemany of UPDATE a row at a time (50,000 rows: 10 s, a round trip
        each). None where the session may not make the table."""
        q = conn.dialect.identifier_preparer.quote
        columns = [
            *(f"{q(c)} AS k{i}" for i, c in enumerate(keys)),
            *(f"{q(c)} AS v{i}" for i, c in enumerate(changed)),
        ]
        within = self._temporary_table(conn, table, temporary_name("_parity_rows_", table), columns)
        if within is None:
            return None
        insert_numbered(conn, within, rows)
        source = f"{q(table.schema)}.{q(table.name)}" if table.schema else q(table.name)
        on = " AND ".join(f"t.{q(c)} = r.k{i}" for i, c in enumerate(keys))
        sets = ", ".join(f"t.{q(c)} = r.v{i}" for i, c in enumerate(changed))
        # (the matched rows: SQLAlchemy's MySQL connections count those, not the rows changed only)
        matched = conn.exec_driver_sql(f"UPDATE {source} t JOIN {within} r ON {on} SET {sets}").rowcount
        conn.exec_driver_sql(f"DROP TEMPORARY TABLE {within}")
        return int(matched)

    def compares_exactly(self, conn: Connection, table: sa.TableClause, columns: Sequence[str]) -> bool:
        """Text of a binary collation that does not pad (``exact_collation``'s, which parity gives the
        text keys of tables it makes from a source that compares exactly) compares its bytes, numbers
        and dates their values; char(n), binary(n) and other collations may not."""
        rows = conn.execute(
            sa.text(
                "SELECT column_name, data_type, collation_name FROM information_schema.columns"
                " WHERE table_schema = coalesce(:schema, database()) AND table_name = :table"
            ),
            {"schema": table.schema, "table": table.name},
        ).all()
        wanted = set(columns)
        found = {name: (kind.lower(), collation) for name, kind, collation in rows if name in wanted}
        text = {"varchar", "tinytext", "text", "mediumtext", "longtext"}
        numbers_dates = {"tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "date", "datetime"}
        return len(found) == len(wanted) and all(
            (kind in text and bool(collation) and collation.endswith(("_nopad_bin", "_0900_bin")))
            or (kind in numbers_dates and collation is None)
            for kind, collation in found.values()
        )

    # SQLAlchemy (2.0, 2.1) reads names from SHOW CREATE TABLE without undoing its doubled backticks:
    # a column b`q comes back as b``q, which no statement finds. Every reflected name is undone here.

    def auto_updated(self, conn: Connection, table: str, schema: str | None) -> set[str]:
        return set(self._on_update(conn, table, schema))

    def _on_update(self, conn: Connection, table: str, schema: str | None) -> dict[str, str]:
        """Column -> its EXTRA (``on update current_timestamp()``), of the columns that have one."""
        query = sa.text(
            "SELECT column_name, extra FROM information_schema.columns WHERE table_schema = "
            + ("DATABASE()" if schema is None else ":schema")
            + " AND table_name = :table AND extra LIKE :on_update"
        )
        params = {"table": table, "on_update": "%on update%", **({"schema": schema} if schema else {})}
        return {str(name): str(extra) for name, extra in conn.execute(query, params)}

    def columns(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        """Inspector's, with the ``ON UPDATE`` of a column whose default is no CURRENT_TIMESTAMP, which
        SQLAlchemy leaves out (the plan says it is not carried over, as it does beside that default),
        and a spatial column's type by name (SQLAlchemy knows none: ``_Spatial``)."""
        with warnings.catch_warnings():  # (a type SQLAlchemy does not know: named below, or in the plan)
            warnings.filterwarnings("ignore", "Did not recognize type", sa.exc.SAWarning)
            found = [{**c, "name": _unticked(c["name"])} for c in super().columns(conn, table, schema)]
        if any(isinstance(c["type"], sa.types.NullType) for c in found):
            query = sa.text(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
                + ("DATABASE()" if schema is None else ":schema")
                + " AND table_name = :table"
            )
            params = {"table": table, **({"schema": schema} if schema else {})}
            spatial = {
                str(n): str(t).upper() for n, t in conn.execute(query, params) if str(t).upper() in _SPATIAL
            }
            for column in found:
                if isinstance(column["type"], sa.types.NullType) and column["name"] in spatial:
                    column["type"] = _Spatial(spatial[column["name"]])
        updated = self._on_update(conn, table, schema)
        for column in found:
            extra = updated.get(column["name"], "")
            at = extra.lower().find("on update")
            if at >= 0 and "on update" not in str(column.get("default") or "").lower():
                column["default"] = f"{column.get('default') or 'NULL'} {extra[at:]}"
        return found

    def primary_key(self, conn: Connection, table: str, schema: str | None) -> tuple[str, ...]:
        return tuple(_unticked(c) for c in super().primary_key(conn, table, schema))

    def check_constraints(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        """Inspector's, and MariaDB's CHECKs written on a column (`a INT CHECK (a > 0)`), which it
        leaves out (they were dropped without a word): each is a check named as its column."""
        found = super().check_constraints(conn, table, schema)
        if not getattr(conn.dialect, "is_mariadb", False):
            return found
        query = sa.text(
            "SELECT constraint_name, check_clause FROM information_schema.check_constraints WHERE"
            + (" constraint_schema = DATABASE()" if schema is None else " constraint_schema = :schema")
            + " AND table_name = :table AND level = 'Column'"
        )
        params = {"table": table, **({"schema": schema} if schema else {})}
        named = {c.get("name") for c in found}
        return found + [
            {"name": str(name), "sqltext": str(text)}
            for name, text in conn.execute(query, params)
            if name not in named and str(text).replace(" ", "") != f"json_valid(`{name}`)"
        ]  # (a JSON column's own json_valid(): its JSON type makes it again)

    def indexes(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        """Inspector's indexes, with the columns each holds in descending order (MariaDB 10.8, MySQL 8),
        which SQLAlchemy does not reflect."""
        query = sa.text(
            "SELECT index_name, column_name FROM information_schema.statistics WHERE table_schema ="
            " COALESCE(:schema, DATABASE()) AND table_name = :table AND collation = 'D'"
        )
        descending: dict[str, dict[str, tuple[str, ...]]] = {}
        for name, column in conn.execute(query, {"schema": schema, "table": table}):
            descending.setdefault(str(name), {})[str(column)] = ("desc",)
        out = []
        for ix in super().indexes(conn, table, schema):
            name = _unticked(ix["name"])
            sorting = {"column_sorting": descending[name]} if name in descending else {}
            out.append(
                {**ix, "name": name, "column_names": [_unticked(c) for c in ix["column_names"]]} | sorting
            )
        return out

    def foreign_keys(self, conn: Connection, table: str, schema: str | None) -> list[dict[str, Any]]:
        return [
            {
                **fk,
                "name": _unticked(fk["name"]),
                "constrained_columns": [_unticked(c) for c in fk["constrained_columns"]],
                "referred_table": _unticked(fk["referred_table"]),
                "referred_columns": [_unticked(c) for c in fk["referred_columns"]],
            }
            for fk in super().foreign_keys(conn, table, schema)
        ]

    def unique_constraints(
        self, conn: Connection, table: str, schema: str | None
    ) -> list[tuple[str | None, tuple[str, ...]]]:
        return [
            (_unticked(name), tuple(_unticked(c) for c in cols))
            for name, cols in super().unique_constraints(conn, table, schema)
        ]

    def breaks_foreign_key(self, error: BaseException) -> bool:
        return bool(error.args) and error.args[0] == 1452  # (ER_NO_REFERENCED_ROW_2)

    def already_there(self, error: BaseException) -> bool:
        # ER_FK_DUP_NAME (checks off); with checks on, MariaDB's "Can't create table (errno: 121)"
        code = error.args[0] if error.args else None
        return code == 1826 or (code == 1005 and "errno: 121" in str(error.args[1:]))

    INDEXES_AGAIN = True

    def index_there(self, error: BaseException) -> bool:
        return bool(error.args) and error.args[0] == 1061  # ER_DUP_KEYNAME

    def bulk_refused(self, endpoint: Endpoint) -> str | None:
        """A server with ``local_infile`` off (MySQL 8's default) refuses LOAD DATA LOCAL INFILE."""
        try:
            with endpoint.connect() as conn:
                allowed = conn.execute(sa.text("SELECT @@GLOBAL.local_infile")).scalar()
        except sa.exc.DBAPIError:  # (a server like MySQL that has no such variable: LOAD DATA is tried)
            return None
        if str(allowed).upper() in ("1", "ON"):
            return None
        return "the server refuses LOAD DATA LOCAL INFILE (local_infile is OFF; SET GLOBAL local_infile = 1 allows it)"

    def load_numbering(self, conn: Connection, target: Endpoint, table: str) -> int | None:
        """InnoDB in its "consecutive" or "traditional" AUTO_INCREMENT lock mode (1, MariaDB's default,
        or 0) holds the table's AUTO-INC lock for a whole LOAD DATA, whose rows then take consecutive
        IDs in their order; MyISAM and Aria lock the table. MySQL 8's default, 2 ("interleaved"), may
        give another session's rows IDs between them: None."""
        engine = conn.execute(
            sa.text(
                "SELECT engine FROM information_schema.tables WHERE table_schema = COALESCE(:schema,"
                " DATABASE()) AND table_name = :table"
            ),
            {"schema": target.schema, "table": table},
        ).scalar()
        mode, step = conn.execute(
            sa.text("SELECT @@innodb_autoinc_lock_mode, @@auto_increment_increment")
        ).one()
        if str(engine).lower() in ("myisam", "aria") or (str(engine).lower() == "innodb" and int(mode) <= 1):
            return int(step)
        return None

    def first_loaded_id(self, conn: Connection) -> int:
        return int(conn.execute(sa.text("SELECT LAST_INSERT_ID()")).scalar_one())

    def log_position(self, conn: Connection) -> str | None:
        for statement in ("SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"):
            try:
                row = conn.exec_driver_sql(statement).first()
            except sa.exc.DBAPIError:
                conn.rollback()
                continue
            return None if row is None else f"{row[0]}:{row[1]}"
        return None

    def upsert(
        self,
        target: sa.TableClause,
        staging: sa.TableClause,
        columns: list[str],
        key: list[str],
        fixed: Collection[str] = (),
    ) -> sa.Executable | tuple[sa.Executable, ...]:
        # An UPDATE of the rows whose key the target holds, then an INSERT of the others: ON DUPLICATE
        # KEY UPDATE takes a clash on any unique key for the merge key's, and so updated another row
        # with a new row's values, or, where they were its own, dropped the new row without a word
        # (counted as written: the audit). Here such a clash is an error, and the row is isolated.
        match = [target.c[k] == staging.c[k] for k in key]
        rest = [c for c in columns if c not in key and c not in fixed]
        new_rows = sa.select(*(staging.c[c] for c in columns)).where(~sa.exists().where(*match))
        insert = mysql.insert(target).from_select(columns, new_rows)
        if not rest:
            return (insert,)
        update = sa.update(target).where(*match).values({c: staging.c[c] for c in rest})
        return update, insert

    TYPE_MAPPING: ClassVar[dict[Kind, str]] = {
        **Dialect.TYPE_MAPPING,
        Kind.BOOLEAN: "BOOL",
        Kind.INTEGER: "INT",
        Kind.FLOAT: "FLOAT",
        Kind.DOUBLE: "DOUBLE",
        Kind.TEXT: "LONGTEXT",
        Kind.TIME: "TIME(6)",
        Kind.TIMESTAMP: "DATETIME(6)",
        Kind.TIMESTAMPTZ: "DATETIME(6)",
        Kind.BINARY: "LONGBLOB",
        Kind.UUID: "UUID",
        Kind.JSON: "JSON",
    }
    UNBOUNDED_DECIMAL = None
    MAX_DECIMAL_PRECISION = 65
    MAX_DECIMAL_SCALE = 30
    MAX_VARCHAR = 4000
    SINGLE_FLOATS = True
    INTEGER_BOOLEANS = True
    TEXT_KEYS_FOLD = True
    BACKSLASH_ESCAPES = True

    def exact_collation(self, sa_dialect: Any) -> str | None:
        """Binary and NO PAD ('a ' is not 'a'): MariaDB's own, MySQL 8's; MySQL 5.7 has no binary one
        that does not pad."""
        if getattr(sa_dialect, "is_mariadb", False):
            return "utf8mb4_nopad_bin"
        version = getattr(sa_dialect, "server_version_info", None) or ()
        return "utf8mb4_0900_bin" if tuple(version[:1]) >= (8,) else "utf8mb4_bin"

    def parse_default(self, text: str | None) -> Default | None:
        """A string default as MySQL writes it, its backslash escapes read (a backslash is written
        doubled: it was copied with both)."""
        default = super().parse_default(text)
        if default is not None and isinstance(default.literal, str) and "\\" in default.literal:
            literal = re.sub(r"\\(.)", lambda m: _MYSQL_ESCAPES.get(m.group(1), m.group(1)), default.literal)
            return replace(default, literal=literal)
        return default

    KEY_TEXT_CHARS = 768  # (InnoDB keys hold 3072 bytes: 768 utf8mb4 characters)
    ROUNDS_DECIMALS = False  # (it warns: LOAD DATA's batch fails on the warning)
    SIZED_BINARY = "VARBINARY({length})"
    STORES_TIME_ZONE = False
    TABLE_SCOPED_INDEX_NAMES = True
    FK_ACTIONS = frozenset(
        {"CASCADE", "SET NULL", "RESTRICT", "NO ACTION"}
    )  # (InnoDB: SET DEFAULT is RESTRICT)
    MAX_IDENTIFIER = 64

    def own_text(self, x: Any, native: str) -> sa.ColumnElement[Any] | None:
        # (a spatial value's text cast is refused: "Illegal parameter data type point")
        return sa.func.ST_AsText(x) if native.upper() in _SPATIAL else None

    def is_identity(self, column: dict[str, Any], primary_key: tuple[str, ...]) -> bool:
        # (AUTO_INCREMENT on a column that is no primary key of its own: `PRIMARY KEY (tenant, id)`)
        return column.get("autoincrement") is True or super().is_identity(column, primary_key)

    def canonical_type(
        self, column: dict[str, Any], conn: Connection, table: str, schema: str | None
    ) -> CanonicalType | None:
        t = column["type"]
        if isinstance(t, mysql.TINYINT) and t.display_width == 1:
            return CanonicalType(Kind.BOOLEAN)
        if isinstance(t, mysql.LONGTEXT) and column["name"] in self._json_columns(conn, table, schema):
            return CanonicalType(Kind.JSON)
        if getattr(t, "unsigned", False):
            widen = {
                mysql.TINYINT: Kind.SMALLINT,
                mysql.SMALLINT: Kind.INTEGER,
                mysql.MEDIUMINT: Kind.INTEGER,
            }
            for cls, kind in widen.items():
                if type(t) is cls:
                    return CanonicalType(kind)
            if isinstance(t, mysql.BIGINT):
                return CanonicalType(Kind.DECIMAL, precision=20, scale=0)
            if isinstance(t, mysql.INTEGER):
                return CanonicalType(Kind.BIGINT)
        if isinstance(t, (mysql.TINYINT, mysql.MEDIUMINT)):
            return CanonicalType(Kind.SMALLINT if isinstance(t, mysql.TINYINT) else Kind.INTEGER)
        if isinstance(t, mysql.YEAR):
            return CanonicalType(Kind.SMALLINT)
        if isinstance(t, mysql.SET):  # a value is any members, joined by commas
            members = list(getattr(t, "values", None) or getattr(t, "enums", None) or ())
            return CanonicalType(Kind.VARCHAR, length=max(1, sum(len(m) + 1 for m in members) - 1))
        if isinstance(t, mysql.BIT):  # (its bits as bytes, which every database holds exactly)
            return CanonicalType(Kind.BINARY, length=max(1, ((t.length or 1) + 7) // 8))
        if type(t) is mysql.FLOAT:  # 4 bytes, like REAL elsewhere; SQLAlchemy's FLOAT has no precision here
            return CanonicalType(Kind.FLOAT)
        return from_sqlalchemy(t)

    def _json_columns(self, conn: Connection, table: str, schema: str | None) -> set[str]:
        query = sa.text(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :table"
        )
        try:
            clauses = conn.execute(query, {"schema": schema, "table": table}).scalars().all()
        except sa.exc.DBAPIError:
            return set()
        found = set()
        for clause in clauses:
            text = str(clause).strip()
            if text.lower().startswith("json_valid(") and text.endswith(")"):
                found.add(text[len("json_valid(") : -1].strip("`"))
        return found

    # ---- diff ----------------------------------------------------------------------------------------

    DATE_FORMAT = "%Y-%m-%d"
    TIME_FORMAT = "%H:%i:%s.%f"
    GROUP_BY_SORTS = True
    ESCAPE_TEST: ClassVar[bool] = True
    """``copy_line`` escapes only the rows whose strings hold a character to escape (a REGEXP test)."""
    TIMESTAMP_FORMAT = "%Y-%m-%d %H:%i:%s.%f"

    def concat(self, *parts: Any) -> sa.ColumnElement[Any]:
        return sa.func.concat(*parts)

    def read_value(self, x: Any, kind: Kind) -> Any:
        # a FLOAT comes as 6 significant digits of text (123456.8 as 123457); as a DOUBLE it is the
        # FLOAT's exact value (123456.796875), which a 4-byte float elsewhere holds the same
        return self.as_double(x) if kind is Kind.FLOAT else x

    def copy_line(
        self, columns: Sequence[Any], kinds: Sequence[Kind], charsets: Mapping[str, str | None] | None = None
    ) -> sa.ColumnElement[Any] | None:
        # numbers, dates and DATETIME(6) become the text the protocol would send; CONCAT() is NULL when
        # the line exceeds max_allowed_packet (the reader then takes the rows as values)
        strings = [c for c, k in zip(columns, kinds, strict=True) if k in STRING_KINDS]
        shared = {(charsets or {}).get(c.name) for c in strings}
        # CONCAT() needs one character set: where the string columns do not share a known one that
        # mixes with utf8mb4 text (a UUID's), each is cast to utf8mb4 (a cast costs the server about a
        # tenth of the line)
        cast = len(shared) > 1 or not shared <= _MIXES_WITH_UTF8MB4
        plain, escaped = [], []
        for column, kind in zip(columns, kinds, strict=True):
            value = self.read_value(column, kind)
            if kind is Kind.UUID or (kind in STRING_KINDS and cast):  # (IFNULL() of a UUID gives a UUID)
                value = sa.cast(column, mysql.CHAR(charset="utf8mb4"))
            plain.append(sa.func.ifnull(value, sa.literal("\\N")))
            if kind in STRING_KINDS:
                for raw, text in COPY_ESCAPES:
                    value = sa.func.replace(value, sa.literal(raw), sa.literal(text))
            escaped.append(sa.func.ifnull(value, sa.literal("\\N")))
        line, escaped_line = _tab_joined(plain), _tab_joined(escaped)
        if not strings:
            return line
        # no line where a long string is escaped: MariaDB's REPLACE() costs the square of its matches
        # (a 128 KB text of short lines took 9 s): NULL, and the chunk goes as values (LineTooLong)
        if not self.ESCAPE_TEST:  # (MySQL: every line escaped; its REPLACE() is not MariaDB's)
            return escaped_line
        escaped_line = sa.func.if_(
            sa.or_(*(sa.func.length(c) > _LONGEST_ESCAPED for c in strings)), sa.null(), escaped_line
        )
        # the escapes only where a string holds a character to escape: the REPLACE()s cost the server
        # more than the test
        needs = sa.or_(*(c.regexp_match(_ESCAPED_CHARACTER) for c in strings))
        return sa.func.if_(needs, escaped_line, line)

    def taken_names(self, conn: Connection, schema: str | None) -> set[str]:
        view = sa.table(
            "referential_constraints", sa.column("constraint_schema"), sa.column("constraint_name"),
            schema="information_schema",
        )  # fmt: skip
        database = sa.literal(schema) if schema else sa.func.database()
        query = sa.select(view.c.constraint_name).where(view.c.constraint_schema == database)
        return {row[0] for row in conn.execute(query)}

    def estimated_rows(self, conn: Connection, table: str, schema: str | None) -> int | None:
        tables = _information_schema("tables", "table_rows")
        rows = conn.execute(sa.select(tables.c.table_rows).where(*_of_table(tables, table, schema))).scalar()
        return None if rows is None else int(rows)

    def exact_text(self, column: Any) -> Any:
        return sa.cast(sa.cast(column, mysql.CHAR(charset="utf8mb4")), mysql.BINARY())

    def key_equals(self, column: Any, value: Any, kind: Kind) -> sa.ColumnElement[Any]:
        if kind not in STRING_KINDS:
            return column == value
        if kind is Kind.CHAR:  # (CHAR values are read without their trailing spaces)
            value = self.rtrim_chars(value, " ")
        return sa.and_(column == value, self.exact_text(column) == sa.cast(value, mysql.BINARY()))

    CHARSET_PER_COLUMN = True

    def fraction_digits(self, sa_type: Any) -> int | None:
        fsp = getattr(sa_type, "fsp", None)
        return fsp if isinstance(fsp, int) else 0  # (DATETIME, TIME and TIMESTAMP keep whole seconds)

    def column_utf8(self, x: Any, charset: str | None) -> sa.ColumnElement[Any]:
        # (sha2() and octet_length() read the expression's own bytes: latin1 'é' is one byte, not two)
        if charset is None or charset.lower() in _UTF8_BYTES:
            return x
        return sa.cast(x, mysql.CHAR(charset="utf8mb4"))

    def column_charsets(self, conn: Connection, table: str, schema: str | None) -> dict[str, str | None]:
        columns = _information_schema("columns", "column_name", "character_set_name")
        query = sa.select(columns.c.column_name, columns.c.character_set_name).where(
            *_of_table(columns, table, schema)
        )
        return {str(name): charset for name, charset in conn.execute(query)}

    def numbers_nulls(self, conn: Connection, target: Endpoint, table: str) -> set[str]:
        columns = _information_schema("columns", "column_name", "extra")
        query = sa.select(columns.c.column_name).where(
            *_of_table(columns, table, target.schema), columns.c.extra.like("%auto_increment%")
        )
        return {str(name) for (name,) in conn.execute(query)}

    def int_div(self, a: Any, b: Any) -> sa.ColumnElement[Any]:
        return a.op("DIV", precedence=8)(b)  # "/" is decimal division here, rounded to 4 digits

    def rtrim_chars(self, x: Any, chars: str) -> sa.ColumnElement[Any]:
        return trim_trailing(x, sa.literal(chars))

    def as_double(self, x: Any) -> sa.ColumnElement[Any]:
        return x + sa.literal(0.0, sa.Double())  # SQLAlchemy drops CAST(... AS DOUBLE) for MySQL

    def to_single(self, d: Any) -> sa.ColumnElement[Any]:
        return cast_float(d)  # (MySQL 8.0.17, MariaDB 10.4.5)

    # Numbers, dates and DATETIME(6) values become exactly their canonical text where concat(),
    # coalesce() and sha2() need a string: an explicit CAST(... AS CHAR) or date_format() per value
    # costs a third of the whole row hash.

    def text_integer(self, x: Any) -> sa.ColumnElement[Any]:
        return x

    def id_text(self, x: Any) -> sa.ColumnElement[Any]:
        # (a CAST's text has the connection's collation, as strong as the column's: 'Illegal mix of
        # collations'; concat() of a number yields to the column's, and its index serves)
        return sa.func.concat(x)

    def text_decimal(self, x: Any, declared: int | None, scale: int | None) -> sa.ColumnElement[Any]:
        if scale is not None and declared == scale:
            return x
        if scale is not None:
            return sa.cast(x, sa.Numeric(self.MAX_DECIMAL_PRECISION, scale))
        return super().text_decimal(x, declared, scale)

    def text_binary(self, x: Any) -> sa.ColumnElement[Any]:
        # (a BIT's HEX() is its number's, without leading zeros: its bytes' are as copy writes them)
        return sa.func.lower(sa.func.hex(sa.cast(x, mysql.BINARY())))

    def text_boolean(self, x: Any) -> sa.ColumnElement[Any]:
        return self.text_integer_boolean(x)

    def text_date(self, x: Any) -> sa.ColumnElement[Any]:
        return x

    def text_timestamp(self, x: Any, with_zone: bool) -> sa.ColumnElement[Any]:
        return sa.cast(x, mysql.DATETIME(fsp=6))  # always six decimals, as date_format's %f

    def compared(self, x: Any, column: Column) -> Any:
        # (a YEAR's text pads 0 to '0000', where every other database's integer reads '0')
        return x + 0 if column.native_type.upper().startswith("YEAR") else x

    def timestamp_as_text(self, column: Column) -> bool:
        # DATETIME(6) and TIMESTAMP(6) as strings are the cast's text (the cast costs 4% of a row hash)
        return column.fraction == 6 and column.native_type.upper().startswith(("DATETIME", "TIMESTAMP"))

    def format_time(self, x: Any, fmt: str) -> sa.ColumnElement[Any]:
        return sa.func.date_format(x, sa.literal(fmt))

    def text_time(self, x: Any) -> sa.ColumnElement[Any]:
        return sa.func.time_format(x, sa.literal(self.TIME_FORMAT))

    def in_utc(self, x: Any) -> sa.ColumnElement[Any]:
        return x  # timestamptz is stored as UTC in DATETIME(6) (STORES_TIME_ZONE)

    def epoch_seconds(self, x: Any, with_zone: bool) -> sa.ColumnElement[Any]:
        micros = sa.func.timestampdiff(sa.literal_column("MICROSECOND"), sa.literal("1970-01-01 00:00:00"), x)
        return micros / sa.literal(1e6, sa.Double())

    def text_json(self, x: Any) -> sa.ColumnElement[Any]:
        return x  # (MariaDB's JSON is the LONGTEXT it was given)

    DECODES = True

    def located_sums(self, h: Any, offset: Any, bits: int) -> list[sa.ColumnElement[Any]]:
        # h read twice is hashed twice: one exact DECIMAL sum of h * (1 + offset * 2**k) holds both
        # totals (the sum of h stays below 2**k: a bucket holds at most 2**bits rows)
        unit = sa.cast(sa.literal(1 << (61 + bits)), mysql.DECIMAL(65, 0))  # not a BIGINT: no overflow
        return [sa.func.sum(h * (1 + offset * unit))]

    def located_totals(self, values: Sequence[Any], bits: int) -> tuple[int, int]:
        high, low = divmod(int(values[0] or 0), 1 << (61 + bits))
        return low, high

    def hash60(self, text: Any) -> sa.ColumnElement[Any]:
        hex15 = sa.func.substring(sa.func.sha2(text, sa.literal_column("256")), 1, 15)
        return sa.cast(sa.func.conv(hex15, 16, 10), mysql.BIGINT(unsigned=True))


class trim_trailing(FunctionElement[Any]):  # noqa: N801 - named like the sa.func functions
    """``TRIM(TRAILING chars FROM x)``: MySQL's RTRIM takes no character list."""

    name = "trim_trailing"
    inherit_cache = True
    type = sa.Text()


@compiles(trim_trailing)
def _trim_trailing(element: trim_trailing, compiler: Any, **kw: Any) -> str:
    x, chars = list(element.clauses)
    return f"TRIM(TRAILING {compiler.process(chars, **kw)} FROM {compiler.process(x, **kw)})"


class cast_float(FunctionElement[Any]):  # noqa: N801 - named like the sa.func functions
    """``CAST(x AS FLOAT)``, which SQLAlchemy drops for MySQL."""

    name = "cast_float"
    inherit_cache = True
    type = sa.Float()


@compiles(cast_float)
def _cast_float(element: cast_float, compiler: Any, **kw: Any) -> str:
    (x,) = list(element.clauses)
    return f"CAST({compiler.process(x, **kw)} AS FLOAT)"


class MySQLOnly(MySQL):
    """MySQL proper (not MariaDB): no UUID type."""

    ESCAPE_TEST = False  # its REGEXP has a time limit, which a long text can exceed

    def estimated_rows(self, conn: Connection, table: str, schema: str | None) -> int | None:
        return None  # information_schema keeps table statistics for a day (information_schema_stats_expiry)

    names: ClassVar[tuple[str, ...]] = ("mysql",)
    TYPE_MAPPING: ClassVar[dict[Kind, str]] = {**MySQL.TYPE_MAPPING, Kind.UUID: "CHAR(36)"}
    STORED_AS: ClassVar[dict[Kind, CanonicalType]] = {Kind.UUID: CanonicalType(Kind.CHAR, length=36)}

    def text_json(self, x: Any) -> sa.ColumnElement[Any]:
        return self.text(x)


_MIXES_WITH_UTF8MB4 = frozenset({"utf8mb4", "utf8mb3", "utf8", "latin1", "ascii"})
"""Character sets whose text CONCAT() joins with utf8mb4 text unconverted (ucs2, utf16, utf32 not)."""

_UTF8_BYTES = frozenset({"utf8mb4", "utf8mb3", "utf8", "ascii"})
"""Character sets whose text is its UTF-8 bytes."""

_ESCAPED_CHARACTER = "[\t\n\r\\\\]"
"""A regular expression matching any character COPY text escapes (``COPY_ESCAPES``)."""


def _tab_joined(fields: Sequence[Any]) -> sa.ColumnElement[Any]:
    parts: list[Any] = []
    for field in fields:
        parts += (field, sa.literal("\t"))
    return sa.func.concat(*parts[:-1])


_LONGEST_ESCAPED = 1024
"""Bytes of a string past which its line is not made with REPLACE() (0.15 ms a call at 1 KB of short
lines, 0.4 s at 64 KB): its chunk is copied as values instead."""


def _information_schema(view: str, *columns: str) -> sa.TableClause:
    """A view of information_schema with its table_schema and table_name and the given columns."""
    names = ("table_schema", "table_name", *columns)
    return sa.table(view, *(sa.column(c) for c in names), schema="information_schema")


def _of_table(view: sa.TableClause, table: str, schema: str | None) -> list[sa.ColumnElement[bool]]:
    """The conditions selecting one table's rows of an information_schema view (schema None: the
    connection's database)."""
    database = sa.literal(schema) if schema else sa.func.database()
    return [view.c.table_schema == database, view.c.table_name == table]


_MYSQL_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}
"""MySQL's backslash escapes in a string literal that stand for another character (others: itself)."""


_SPATIAL = frozenset(
    {"GEOMETRY", "POINT", "LINESTRING", "POLYGON", "MULTIPOINT", "MULTILINESTRING", "MULTIPOLYGON"}
    | {"GEOMETRYCOLLECTION", "GEOMCOLLECTION"}
)
"""MySQL's spatial types: read as their WKT text (``ST_AsText``), which a text column holds."""


class _Spatial(sa.types.UserDefinedType):
    """A spatial column's type, by its name (SQLAlchemy reflects it as NullType, named 'NULL')."""

    cache_ok = True

    def __init__(self, name: str) -> None:
        self.name = name

    def get_col_spec(self, **kw: Any) -> str:
        return self.name
