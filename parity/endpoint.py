"""Endpoint: one database as parity sees it: a URL, a schema, an engine, and its dialect adapter."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url

from parity import log
from parity.dialects import REGISTRY, SCHEMES, Dialect
from parity.dialects.sqlite import NUMERIC_DATES, SQLite
from parity.errors import (
    ConfigError,
    ConnectionFailed,
    DataError,
    NotFound,
    ParityError,
    UnsupportedURL,
    did_you_mean,
)
from parity.sqltext import as_sent

Role = Literal["source", "target"]

_FILE_DATABASES = ("sqlite", "duckdb")
NUMERIC_DATES_OPTION = "numeric_dates"
_SQLITE_HEADER = b"SQLite format 3\x00"


def parse_url(text: str) -> URL:
    """Parse a user's URL and pick the driver parity uses for that database, unless one is named."""
    scheme, sep, rest = text.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    address, path = rest[:end], rest[end:]  # (the address ends at its path, query or fragment)
    if sep and address.count("@") > 1:  # (a raw '@' in the password: the last one ends it, as in browsers)
        userinfo, _, host = address.rpartition("@")
        text = f"{scheme}://{userinfo.replace('@', '%40')}@{host}{path}"
    try:
        url = make_url(text)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise UnsupportedURL(f"cannot parse database URL '{log.redact(text)}'") from exc
    scheme = url.drivername
    backend = scheme.split("+", 1)[0]
    if backend not in SCHEMES and scheme not in SCHEMES:
        choices = sorted(SCHEMES)
        raise UnsupportedURL(
            f"unsupported database URL scheme '{backend}://'{did_you_mean(backend, choices)}"
        )
    if "+" not in scheme:
        url = url.set(drivername=_with_available_driver(SCHEMES[backend]))
    log.add_secret(url.password if isinstance(url.password, str) else None)
    for name, value in url.query.items():  # (?password=... is a driver's connect argument too)
        if name.lower() in log.PASSWORD_PARAMETERS:
            for secret in (value,) if isinstance(value, str) else value:
                log.add_secret(secret)
    return url


def _with_available_driver(drivername: str) -> str:
    """SQL Server: fall back to pymssql when pyodbc is not installed."""
    if drivername == "mssql+pyodbc":
        try:
            import pyodbc  # noqa: F401
        except ImportError:
            return "mssql+pymssql"
    return drivername


@dataclass
class Endpoint:
    """A database and the schema parity works in. ``role`` decides whether a missing file is an error."""

    url: URL
    schema: str | None = None
    role: Role = "source"
    pool_size: int = 8
    _checked: bool = field(default=False, repr=False)
    _idle_mysqlclient: list[Any] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    numeric_dates: str | None = field(default=None, init=False)
    """SQLite: how its DATE and DATETIME columns hold the dates they hold as numbers (the URL's
    ``?numeric_dates=``, which the driver is not given; ``dialects.sqlite.NUMERIC_DATES``)."""

    def __post_init__(self) -> None:
        given = self.url.query.get(NUMERIC_DATES_OPTION)
        if given is None:
            return
        if self.backend != "sqlite":
            raise ConfigError(f"{self.redacted()}: {NUMERIC_DATES_OPTION} is an option of SQLite URLs only")
        if given not in NUMERIC_DATES:
            raise ConfigError(
                f"{self.redacted()}: {NUMERIC_DATES_OPTION}={given!r} is none of " + ", ".join(NUMERIC_DATES)
            )
        self.numeric_dates = str(given)
        self.url = self.url.difference_update_query([NUMERIC_DATES_OPTION])

    def check_writable(self) -> None:
        """Refuse to write rows into a database whose dates parity reads from numbers: it would write
        them as ISO text, beside the numbers the application wrote."""
        if self.numeric_dates is not None:
            raise ConfigError(
                f"{self.redacted()}: parity reads the dates this file holds as numbers "
                f"({NUMERIC_DATES_OPTION}={self.numeric_dates}) but does not write them; without "
                f"{NUMERIC_DATES_OPTION} it writes dates as ISO text"
            )

    @classmethod
    def from_url(
        cls, url: str | URL, schema: str | None = None, role: Role = "source", pool_size: int = 8
    ) -> Endpoint:
        parsed = url if isinstance(url, URL) else parse_url(url)
        return cls(parsed, schema=schema or None, role=role, pool_size=pool_size)

    def __str__(self) -> str:
        return self.redacted()

    def redacted(self) -> str:
        """The URL with its password masked, fit for messages and logs."""
        return log.redact(self.url.render_as_string(hide_password=True))

    @property
    def backend(self) -> str:
        return self.url.get_backend_name()

    @cached_property
    def engine(self) -> Engine:
        self._check_file()
        kwargs: dict[str, Any] = {}
        if self.backend in ("postgresql", "mysql", "mariadb"):
            kwargs.update(pool_size=self.pool_size, max_overflow=self.pool_size)
        try:
            engine = sa.create_engine(self.url, connect_args=self._connect_args(), **kwargs)
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            hint = REGISTRY.get(self.backend, Dialect).driver_hint
            raise ConnectionFailed(f"no driver for {self.redacted()}: {exc}; {hint}".rstrip("; ")) from exc
        dialect = REGISTRY.get(self.backend, Dialect)
        dialect().configure_engine(engine)
        if dialect.SESSION_SETUP:
            _run_on_connect(engine, dialect.SESSION_SETUP)
        if log.sql_enabled():
            _log_statements(engine)
        return engine

    def _connect_args(self) -> dict[str, Any]:
        """What parity adds to the URL's arguments of the driver's ``connect``."""
        connect_args: dict[str, Any] = {}
        if self.backend == "sqlite":
            connect_args["check_same_thread"] = False
            connect_args["timeout"] = 60
        elif self.backend in ("postgresql", "mysql", "mariadb"):
            connect_args["connect_timeout"] = int(os.environ.get("PARITY_CONNECT_TIMEOUT", "10"))
        if self.backend in ("mysql", "mariadb"):
            connect_args.update(local_infile=True, charset="utf8mb4")
        return connect_args

    def driver_connect_args(self) -> tuple[list[Any], dict[str, Any]]:
        """The arguments of the driver's ``connect`` for a connection like the engine's, made without
        the engine (by a reader process); the session setup (``SESSION_SETUP``) is the caller's."""
        args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        plain = {k: v for k, v in kwargs.items() if isinstance(v, str | int | float | bool)}  # (not psycopg's
        return list(args), {**plain, **self._connect_args()}  # adapters, which SQLAlchemy passes)

    def require_file(self) -> None:
        """A file database must exist already, whatever the role (diff and fix never create one)."""
        path = self.url.database or ""
        if self.backend in _FILE_DATABASES and path not in ("", ":memory:") and not os.path.exists(path):
            raise NotFound(f"database file '{path}' not found ({self.redacted()})")

    def _check_file(self) -> None:
        if self.backend not in _FILE_DATABASES:
            return
        path = self.url.database or ""
        self._check_format(path)
        if path in ("", ":memory:") or self.role == "target":
            if path not in ("", ":memory:"):
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            return
        if not os.path.exists(path):
            raise NotFound(f"database file '{path}' not found ({self.redacted()})")

    def _check_format(self, path: str) -> None:
        """An existing file that holds no database of the URL's kind is refused, naming what it holds
        (the driver says "file is not a database", or DuckDB tries to download an extension to read an
        SQLite file)."""
        try:
            with open(path, "rb") as f:
                head = f.read(16)
        except OSError:  # (no such file, or none to read yet: the driver's own message)
            return
        if not head:  # (an empty file: an empty SQLite database, or the driver's message)
            return
        held = "sqlite" if head == _SQLITE_HEADER else "duckdb" if head[8:12] == b"DUCK" else None
        if held == self.backend:
            return
        names = {"sqlite": "an SQLite", "duckdb": "a DuckDB"}
        found = f" (it is {names[held]} database: use {held}:///{path})" if held else ""
        raise ConfigError(
            f"{self.redacted()}: '{path}' is no {names[self.backend][2:].strip()} database file{found}"
        )

    @cached_property
    def dialect(self) -> Dialect:
        """The adapter; MariaDB behind a mysql:// URL is recognised after the first connection."""
        self.check()
        name = self.engine.dialect.name
        if getattr(self.engine.dialect, "is_mariadb", False):
            name = "mariadb"
        dialect = REGISTRY[name]()
        if isinstance(dialect, SQLite):
            dialect.numeric_dates = self.numeric_dates
        return dialect

    @cached_property
    def bulk_refused(self) -> str | None:
        """Why rows go in by the dialect's row writer, the database refusing its bulk path
        (``Dialect.bulk_refused``, asked once); None where they go by the bulk writer."""
        refused = self.dialect.bulk_refused(self)
        if refused is None:
            return None
        note = f"{self.redacted()}: {refused}: rows go in by INSERT, slower"
        log.logger.warning("%s", note)
        return note

    @property
    def writer(self) -> str:
        """The writer rows go in by (a key of ``bulk.WRITERS``): the bulk writer, unless refused."""
        return self.dialect.ROW_WRITER if self.bulk_refused else self.dialect.WRITER

    def check(self) -> None:
        """Connect once; turn a failure into one clear line naming the database."""
        if self._checked:
            return
        if self.backend in ("mysql", "mariadb") and not (self.url.database or self.schema):
            raise ConfigError(f"{self.redacted()} names no database: add /DATABASE after the host and port")
        with self.connect() as conn:
            if self.schema and (self.backend not in _FILE_DATABASES or self.backend == "sqlite"):
                names = sa.inspect(conn).get_schema_names()
                if self.schema not in names:
                    made = (
                        " (parity makes tables, not schemas: create it first)"
                        if self.role == "target"
                        else ""
                    )
                    raise NotFound(
                        f"schema '{self.schema}' not found in {self.redacted()}"
                        f"{did_you_mean(self.schema, names)}{made}"
                    )
        self._checked = True

    def connect(self) -> Connection:
        try:
            return self.engine.connect()
        except sa.exc.DBAPIError as exc:
            message = driver_message(exc) + self._closest_database(exc)
            raise ConnectionFailed(f"cannot connect to {self.redacted()}: {message}") from exc
        except TypeError as exc:  # (a URL argument the driver's connect() does not take: a typo)
            raise ConnectionFailed(f"cannot connect to {self.redacted()}: {exc}") from exc

    def _closest_database(self, exc: BaseException) -> str:
        """``; did you mean 'x'?`` where the server has no database of the URL's name and one like it
        (read on the server's own database: MySQL's none, PostgreSQL's ``postgres``); else ''."""
        name = self.url.database or ""
        text = str(getattr(exc, "orig", exc))
        if not name or (
            f"Unknown database '{name}'" not in text and f'database "{name}" does not exist' not in text
        ):
            return ""
        listing = {
            "mysql": ("SHOW DATABASES", None),
            "mariadb": ("SHOW DATABASES", None),
            "postgresql": ("SELECT datname FROM pg_database WHERE datallowconn", "postgres"),
        }.get(self.backend)
        if listing is None:
            return ""
        engine = sa.create_engine(
            self.url._replace(database=listing[1]),
            connect_args=self._connect_args(),
            poolclass=sa.pool.NullPool,
        )
        try:
            with engine.connect() as conn:
                names = [str(n) for (n,) in conn.exec_driver_sql(listing[0])]
        except sa.exc.SQLAlchemyError:  # (no right to list them, or no such database either)
            return ""
        finally:
            engine.dispose()
        return did_you_mean(name, names)

    def begin(self) -> Any:
        try:
            return self.engine.begin()
        except sa.exc.DBAPIError as exc:
            raise ConnectionFailed(f"cannot connect to {self.redacted()}: {driver_message(exc)}") from exc

    def quote(self, name: str) -> str:
        """The name quoted by the dialect, as SQL sent with no parameters reads (``as_sent``)."""
        dialect = self.engine.dialect
        return as_sent(dialect.identifier_preparer.quote(name), dialect)

    def qualified(self, table: str) -> str:
        """The table's name quoted by the dialect, with the schema when one is set."""
        quoted = self.quote(table)
        return f"{self.quote(self.schema)}.{quoted}" if self.schema else quoted

    @contextmanager
    def reading(self, lenient: bool = False) -> Iterator[Connection]:
        """A connection; ``lenient``: with the loaders that give a value the driver cannot make (an
        infinity, a year past 9999) as its text (``Dialect.lenient_loaders``), which are slower: it is
        not used again after."""
        with self.connect() as conn:
            if lenient:
                self.dialect.lenient_loaders(conn)
            try:
                yield conn
            finally:
                if lenient:
                    conn.invalidate()

    @contextmanager
    def mysqlclient_session(self) -> Iterator[Any]:
        """A pooled mysqlclient connection to an endpoint it serves (``mysqlclient_serves``), values as
        PyMySQL gives them, in autocommit (each statement reads the data as it is then, as a pooled
        SQLAlchemy connection does); closed after an error, else kept for the next caller until
        ``dispose``."""
        with self._lock:
            conn = self._idle_mysqlclient.pop() if self._idle_mysqlclient else None
        if conn is None:
            conn = mysqlclient_connect(self, raw_text=False)
            conn.autocommit(True)
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._idle_mysqlclient.append(conn)

    def dispose(self) -> None:
        with self._lock:
            idle, self._idle_mysqlclient = self._idle_mysqlclient, []
        for conn in idle:
            conn.close()
        if "engine" in self.__dict__:
            self.engine.dispose()


def mysqlclient() -> Any | None:
    """The C MySQL driver (mysqlclient's ``MySQLdb``) where installed (``pip install parity[mysqlclient]``):
    copy reads MySQL/MariaDB through it, several times faster than PyMySQL; else None."""
    try:
        import MySQLdb
    except ImportError:
        return None
    return MySQLdb


def mysqlclient_serves(endpoint: Endpoint) -> bool:
    """Whether copy reads this endpoint through mysqlclient: MySQL/MariaDB, mysqlclient installed, and
    no URL options beyond the charset (those are PyMySQL's to interpret)."""
    return (
        endpoint.backend in ("mysql", "mariadb")
        and mysqlclient() is not None
        and not set(endpoint.engine.url.query) - {"charset"}
    )


def mysqlclient_connect(endpoint: Endpoint, raw_text: bool) -> Any:
    """A mysqlclient connection to an endpoint it serves (``mysqlclient_serves``), set up as parity's
    own sessions are. ``raw_text``: every value as the server's text (bytes, None for NULL), else Python
    values as PyMySQL gives them."""
    driver: Any = mysqlclient()
    from MySQLdb.constants import FIELD_TYPE
    from MySQLdb.converters import conversions

    args = mysqlclient_args(endpoint, raw_text)
    if not raw_text:
        conv = dict(conversions)
        conv[FIELD_TYPE.DATETIME] = conv[FIELD_TYPE.TIMESTAMP] = _or_text(datetime.fromisoformat)
        conv[FIELD_TYPE.DATE] = _or_text(date.fromisoformat)
        conv[FIELD_TYPE.JSON] = str
        args["conv"] = conv
    try:
        conn = driver.connect(**args)
    except driver.Error as exc:
        raise ConnectionFailed(f"cannot connect to {endpoint.redacted()}: {exc}") from exc
    cursor = conn.cursor()
    for statement in REGISTRY.get(endpoint.backend, Dialect).SESSION_SETUP:
        cursor.execute(statement)
    cursor.close()
    return conn


def mysqlclient_args(endpoint: Endpoint, raw_text: bool = True) -> dict[str, Any]:
    """mysqlclient's ``connect`` arguments for an endpoint; ``raw_text``: every value as the server's
    text (plain data: a reader process connects with them)."""
    url = endpoint.engine.url
    return {
        # over TCP, as PyMySQL: mysqlclient takes "localhost" for the Unix socket (another server's)
        "host": "127.0.0.1" if url.host in (None, "localhost") else url.host,
        "port": url.port or 3306,
        "connect_timeout": int(os.environ.get("PARITY_CONNECT_TIMEOUT", "10")),
        "user": url.username or "",
        "password": url.password or "",
        "database": url.database or "",
        "charset": "utf8mb4",
        "use_unicode": not raw_text,
        "conv": {},
    }


def _or_text(parse: Any) -> Any:
    """A converter of MySQL's date text that keeps what ``parse`` cannot read (zero dates) as text, as
    PyMySQL does, for the target to refuse rather than a silent NULL."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError:
            return text

    return convert


_LOOPBACK = {"localhost", "127.0.0.1", "::1", ""}


def same_database(a: Endpoint, b: Endpoint) -> bool:
    """Whether two endpoints reach the same database and schema (a file by its real path; a server by
    host, port and database, loopback names alike; the schema as the session has it by default)."""
    if a.backend != b.backend and {a.backend, b.backend} != {"mysql", "mariadb"}:
        return False
    if a.backend in _FILE_DATABASES:
        paths = [x.url.database or "" for x in (a, b)]
        if ":memory:" in paths or "" in paths:
            return False
        if os.path.realpath(paths[0]) == os.path.realpath(paths[1]):
            return True
        try:  # (one file under two names: a hard link)
            return os.path.samefile(paths[0], paths[1])
        except OSError:  # (one is not made yet)
            return False

    def place(x: Endpoint) -> tuple[Any, ...]:
        host = (x.url.host or "").lower()
        return ("loopback" if host in _LOOPBACK else host, x.url.port, x.url.database)

    if place(a) != place(b):
        return False
    schemas = [x.schema or x.engine.dialect.default_schema_name for x in (a, b)]
    if None in schemas:  # (not known before a connection)
        for x in (a, b):
            with x.connect():
                pass
        schemas = [x.schema or x.engine.dialect.default_schema_name for x in (a, b)]
    return schemas[0] == schemas[1]


_MYSQL_STATEMENT_ERRORS = frozenset({1044, 1045, 1054, 1064, 1142, 1143, 1146})
"""MySQL's errors of a statement, whatever its rows: access denied, unknown column, syntax, no table."""
_DUCKDB_STATEMENT_ERRORS = frozenset(
    {"ParserException", "BinderException", "CatalogException", "PermissionException"}
)
_SQLITE_STATEMENT_ERRORS = ("no such table", "no such column", "near ", "table ")


_SERVER_STATES = ("08", "25", "28", "3D", "3F", "40", "53", "55", "57", "58", "XX")
"""SQLSTATE classes of a server's or session's failure, whatever the rows: connection, transaction
state, authorization, catalog or schema, rollback (deadlock, serialization), insufficient resources,
object state (a lock not available), operator intervention (a statement timeout, a shutdown), system
and internal errors."""
_MYSQL_SERVER_ERRORS = frozenset(
    {1021, 1030, 1037, 1038, 1040, 1053, 1114, 1180, 1205, 1206, 1213, 1317, 1927, 1969, 2006, 2013, 3024}
)
"""MySQL's and MariaDB's: disk full, storage engine error, out of memory, too many connections,
shutdown, table full, commit failed, lock wait timeout, lock table full, deadlock, query interrupted,
connection killed, statement timeout, server gone or lost, maximum execution time."""
_DUCKDB_SERVER_ERRORS = frozenset(
    {
        "OutOfMemoryException",
        "IOException",
        "InterruptException",
        "ConnectionException",
        "TransactionException",
        "InternalException",
        "FatalException",
    }
)
_SQLITE_SERVER_CODES = frozenset({5, 6, 7, 8, 9, 10, 11, 13, 14, 26})
"""SQLite's primary result codes of a database's failure: busy, locked, no memory, read-only,
interrupted, I/O error, corrupt, full, cannot open, not a database."""


_ORACLE_TRANSIENT = frozenset({54, 60, 8177, 30006})
"""Oracle's resource busy, deadlock, cannot serialize, wait timeout."""
_ORACLE_SERVER = _ORACLE_TRANSIENT | frozenset(
    {18, 20, 257, 1013, 1536, 1652, 1653, 1654, 3113, 3114, 3135, 4030, 4031, 4036, 12170, 30036}
)
"""... and sessions or processes exhausted, archiver stuck, cancelled (a call timeout), quota, no
space to extend, lost connection, out of memory, connect timeout, no undo space."""
_ORACLE_STATEMENT = frozenset(
    {900, 903, 904, 905, 906, 907, 911, 917, 920, 921, 923, 924, 933, 936, 942, 1031}
)
"""Oracle's syntax errors, invalid identifier, no such table or view, insufficient privileges."""


def _state(orig: BaseException) -> str | None:
    """The SQLSTATE of a driver's error: psycopg's and (through SQLAlchemy) PyMySQL's attribute, or
    pyodbc's first argument."""
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str):
        return state
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    if type(orig).__module__.startswith("pyodbc") and args and isinstance(args[0], str) and len(args[0]) == 5:
        return args[0]
    return None


def _mysql_errno(orig: BaseException) -> int | None:
    """The error number of a PyMySQL or mysqlclient error."""
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    if type(orig).__module__.startswith(("pymysql", "MySQLdb")) and args and isinstance(args[0], int):
        return args[0]
    return None


def _duckdb_class(orig: BaseException) -> str | None:
    """The class name of a DuckDB error (ParserException, OutOfMemoryException ...)."""
    return type(orig).__name__ if type(orig).__module__.startswith(("duckdb", "_duckdb")) else None


def _oracle_code(orig: BaseException) -> int | None:
    """The ORA- number of an oracledb error."""
    if not type(orig).__module__.startswith("oracledb"):
        return None
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    error = args[0] if args else None
    code = getattr(error, "code", 0)
    full = str(getattr(error, "full_code", "") or "")
    if not code and full.startswith("ORA-") and full[4:].isdigit():
        code = int(full[4:])
    return code or None


def server_error(exc: BaseException) -> bool:
    """Whether the database failed for a reason of its own or the session's (out of memory or disk, a
    lost connection, a deadlock, a timeout, a lock), not for one of the statement's rows."""
    orig = getattr(exc, "orig", None) or exc
    state = _state(orig)  # (MySQL's too, often HY000: its error number tells)
    if state is not None and (state.startswith(_SERVER_STATES) or state in ("HYT00", "HYT01")):
        return True
    if _oracle_code(orig) in _ORACLE_SERVER or _mysql_errno(orig) in _MYSQL_SERVER_ERRORS:
        return True
    if _duckdb_class(orig) in _DUCKDB_SERVER_ERRORS:
        return True
    code = getattr(orig, "sqlite_errorcode", None)
    return (
        type(orig).__module__ == "sqlite3" and isinstance(code, int) and code & 0xFF in _SQLITE_SERVER_CODES
    )


def transient_error(exc: BaseException) -> bool:
    """Whether the database rolled the transaction back for its meeting with another one (a deadlock,
    a serialization failure, a lock wait timed out): the same work, made again, may go through."""
    orig = getattr(exc, "orig", None) or exc
    state = _state(orig)
    if (state is not None and state.startswith("40")) or _oracle_code(orig) in _ORACLE_TRANSIENT:
        return True
    return _mysql_errno(orig) in (1205, 1213)


def blames_no_row(exc: BaseException) -> bool:
    """Whether a failed write is no row's refusal (``statement_error``, ``server_error``): isolating
    rows would reject every one of them for it, so it fails the table instead."""
    return statement_error(exc) or server_error(exc)


def raise_unless_refusal(error: BaseException) -> None:
    """Fail the table (a ParityError) where the target failed a write for no row's fault
    (``blames_no_row``: the statement, or the server out of memory, a lost connection, a timeout):
    isolating rows would reject every one of them for it. A transient failure (``transient_error``)
    is raised as it is, for the chunk to be made again."""
    from parity.errors import ParityError

    if statement_error(error):
        raise ParityError(f"the target refused the statement: {driver_message(error)}") from error
    if transient_error(error):
        raise error
    if blames_no_row(error):
        raise ParityError(f"the target failed, for no row's fault: {driver_message(error)}") from error


def blames_rows(error: BaseException) -> bool:
    """Whether a failed write may be some row's fault, so that its rows are worth trying one by one:
    not the statement's (``statement_error``), nor a transient failure or one that blames no row."""
    return not (statement_error(error) or transient_error(error) or blames_no_row(error))


def roll_back_to(savepoint: Any, error: BaseException) -> None:
    """Roll back to ``savepoint`` after ``error``; where the database ended the whole transaction
    itself (a deadlock's victim, on MySQL), raise ``error``, which tells why."""
    try:
        savepoint.rollback()
    except sa.exc.DBAPIError:
        raise error from None


def statement_error(exc: BaseException) -> bool:
    """Whether the database refused the statement itself, whatever its rows (a syntax error, a table or
    column it lacks, a privilege: SQLSTATE class 42), not one of its rows: no row is to blame for it."""
    orig = getattr(exc, "orig", None) or exc
    state = _state(orig)
    if state is not None:
        return state.startswith("42")
    if (code := _oracle_code(orig)) is not None:
        return code in _ORACLE_STATEMENT
    if (errno := _mysql_errno(orig)) is not None:
        return errno in _MYSQL_STATEMENT_ERRORS
    if (name := _duckdb_class(orig)) is not None:
        return name in _DUCKDB_STATEMENT_ERRORS
    if type(orig).__module__ == "sqlite3" and type(orig).__name__ == "OperationalError":
        message = str(orig)
        return message.startswith(_SQLITE_STATEMENT_ERRORS) and (" column" in message or "syntax" in message
                                                                 or "no such table" in message)  # fmt: skip
    return False


def cardinality_error(exc: BaseException) -> bool:
    """Whether an upsert (ON CONFLICT, MERGE) failed because two of its rows have the same key."""
    orig = getattr(exc, "orig", None) or exc
    if getattr(orig, "sqlstate", None) == "21000":  # (PostgreSQL: cannot affect row a second time)
        return True
    message = str(orig)
    return any(m in message for m in ("the same row twice", "ORA-30926", "(8672)", "a second time"))


def refuse_given_ids(
    endpoint: Endpoint, table: str, never: set[str], given: Iterable[str], remedy: str
) -> None:
    """A DataError where an INSERT into ``table`` would give a value to a column the database always
    numbers itself (``never``: ``Dialect.ids_never_written``); ``remedy``: what the user can do."""
    if refused := sorted(never.intersection(given)):
        raise DataError(
            f"table '{table}': {endpoint.backend} numbers column '{refused[0]}' itself (GENERATED ALWAYS)"
            f" and takes no value for it: {remedy}"
        )


def driver_could_not_load(exc: BaseException) -> bool:
    """Whether a query failed on a value the driver could not make into a Python value (psycopg's
    loaders on PostgreSQL's infinity, a year past 9999): a DataError the server did not send, which
    carries no SQLSTATE (the server's own data errors, such as a --where's bad cast, carry one)."""
    return isinstance(exc, sa.exc.DataError) and getattr(exc.orig, "sqlstate", None) is None


def driver_message(exc: BaseException) -> str:
    """The first meaningful line of a driver's error, with secrets masked."""
    orig = getattr(exc, "orig", None) or exc
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    pymysql_style = len(args) >= 2 and isinstance(args[0], int)  # PyMySQL: (code, message)
    text = f"{args[1]} (error {args[0]})" if pymysql_style else str(orig)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[0] if lines else type(orig).__name__
    for prefix in ("connection failed: ", "FATAL:  ", "FATAL: "):
        line = line.replace(prefix, "")
    diag = getattr(orig, "diag", None)  # (psycopg: the key a unique index found twice, the COPY's column)
    if diag is not None:
        detail = (getattr(diag, "message_detail", None) or "").strip()
        if detail and detail not in line:
            line = f"{line}: {detail.splitlines()[0]}"
        column = _COPY_COLUMN.search(getattr(diag, "context", None) or "")
        if column and f"column {column.group(1)}" not in line:
            line = f"{line} (column {column.group(1)})"
    return log.redact(line)


_COPY_COLUMN = re.compile(r"^COPY [^,]+, line \d+, column ([^:]+):", re.MULTILINE)
"""The column of a value PostgreSQL's COPY refused, in the error's context."""


def _run_on_connect(engine: Engine, statements: tuple[str, ...]) -> None:
    @event.listens_for(engine, "connect")
    def _setup(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for statement in statements:
            cursor.execute(statement)
        cursor.close()
        if hasattr(dbapi_connection, "commit"):
            dbapi_connection.commit()


def _log_statements(engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn: Any, *args: Any) -> None:
        conn.info.setdefault("parity_t0", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _end(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started = conn.info["parity_t0"].pop()
        log.logger.debug(
            "sql %s (%.3fs): %s", engine.url.get_backend_name(), time.perf_counter() - started, statement
        )


@contextmanager
def switched(
    conn: Connection, switch: tuple[str, str], if_off_fails: Literal["raise", "ignore", "discard"] = "raise"
) -> Iterator[None]:
    """A session setting on for the block (``switch``: the statements that turn it on and off: FK
    checks, IDENTITY_INSERT), off again after it. Should turning it off fail: raise, ignore it (an
    aborted PostgreSQL transaction rolls the setting back itself), or discard the connection (a setting
    left on would meet the pool's next user)."""
    execute_raw(conn, switch[0])
    try:
        yield
    finally:
        try:
            execute_raw(conn, switch[1])
        except sa.exc.DBAPIError:
            if if_off_fails == "raise":
                raise
            if if_off_fails == "discard":
                conn.invalidate()


def execute_raw(conn: Connection, sql: str) -> None:
    """Run finished SQL text (DDL parity compiled) with no parameter parsing by SQLAlchemy or the driver,
    in the connection's transaction as SQLAlchemy knows it: begun here if none is (else the driver
    would begin one SQLAlchemy does not know of, which its ``commit()`` would not commit, and the
    pool's reset would roll back: a session setting, a DROP of an undo)."""
    if not conn.in_transaction():
        conn.begin()
    cursor = conn.connection.cursor()
    try:
        with log.timed_sql(sql, conn.engine.url.get_backend_name()):
            cursor.execute(sql)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise sa.exc.DBAPIError(sql, None, exc) from exc
    finally:
        cursor.close()


def wrap_db_error(exc: sa.exc.DBAPIError, what: str) -> ParityError:
    """Turn a driver error during an operation into a ParityError saying what parity was doing."""
    return ParityError(f"{what}: {driver_message(exc)}")
