"""Live databases for parity's tests: a fresh, empty, isolated database per test on every backend.

No database is mocked. SQLite and DuckDB are files in the test's ``tmp_path``; the servers come from
the URL table below. A server whose variable is unset is a *visible* skip (``pytest -ra`` lists the
reason); a server whose variable is set but cannot be reached is a failure, never a skip.

The URL table
-------------
==============  ==========================  =============================================================
backend         variable                    what a test gets
==============  ==========================  =============================================================
``sqlite``      (none)                      a new SQLite file in tmp_path
``duckdb``      (none)                      a new DuckDB file in tmp_path
``postgresql``  ``PARITY_TEST_PG_URL``      a new schema ``t_<random>`` in that database (dropped after)
``mariadb``     ``PARITY_TEST_MYSQL_URL``   a new database ``t_<random>``, the URL points at it
``oracle``      ``PARITY_TEST_ORACLE_URL``  a new user/schema ``t_<random>`` (needs CREATE USER)
``mssql``       ``PARITY_TEST_MSSQL_URL``   a new database ``t_<random>``, the URL points at it
==============  ==========================  =============================================================

``eval "$(scripts/servers env)"`` sets the first two server variables for the local servers.

Fixtures
--------
``sqlite_db``, ``duckdb_db``, ``pg_db``, ``mariadb_db``, ``oracle_db``, ``mssql_db``
    One fresh :class:`Database` on that backend.
``backend``
    Parametrized over :data:`BACKENDS` (sqlite, duckdb, postgresql, mariadb): one fresh Database.
``any_backend``
    The same over :data:`ALL_BACKENDS`, Oracle and SQL Server included (skipped when unset).
``pair``
    Parametrized over every ordered pair of :data:`BACKENDS` (16, same-engine pairs included):
    a ``(source, target)`` tuple of two fresh Databases.
``make_db``
    A factory for more: ``make_db("postgresql")`` returns another fresh Database, cleaned up after
    the test (for example a source and a target on the same server).
``demo_db``
    A SQLite Database holding parity's demo source (:func:`parity.demo.build_source`).

A :class:`Database` has ``.name`` (the backend), ``.url`` (what parity connects with, password
included), ``.schema`` (pass it as ``source_schema=``/``target_schema=``; None where the URL already
points at the fresh database), ``.endpoint(role)`` (a parity Endpoint, disposed after the test),
``.sql(*statements)`` to run native SQL for setup (unqualified names land in the fresh schema),
``.query(sql, **params)``, ``.tables()``, ``.reflect(*names)`` and ``.q(name)`` (quote an identifier).

Use them from other test modules by name only; pytest finds them here::

    def test_copy_keeps_rows(pair):
        source, target = pair
        source.sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v VARCHAR(10))")
        job = parity.job.build(source.url, target.url,
                               source_schema=source.schema, target_schema=target.schema)
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from parity.dialects import SCHEMES
from parity.endpoint import Endpoint, Role
from parity.schema.model import Table
from parity.schema.reflect import reflect, table_names

URL_VARIABLES: dict[str, str] = {
    "postgresql": "PARITY_TEST_PG_URL",
    "mariadb": "PARITY_TEST_MYSQL_URL",
    "oracle": "PARITY_TEST_ORACLE_URL",
    "mssql": "PARITY_TEST_MSSQL_URL",
}
"""Server backends and the environment variable holding an admin URL for each."""

BACKENDS: tuple[str, ...] = ("sqlite", "duckdb", "postgresql", "mariadb")
"""The backends every live test runs on by default (Oracle and SQL Server have their own fixtures)."""

ALL_BACKENDS: tuple[str, ...] = (*BACKENDS, "oracle", "mssql")
"""Every backend parity supports; Oracle and SQL Server are skipped unless their URL is set."""

PAIRS: list[tuple[str, str]] = [(s, t) for s in BACKENDS for t in BACKENDS]
"""Every ordered (source, target) pair of BACKENDS, same-engine pairs included."""


def server_url(name: str) -> str:
    """The admin URL of a server backend, or a visible skip when its variable is not set."""
    variable = URL_VARIABLES[name]
    url = os.environ.get(variable)
    if not url:
        pytest.skip(f"{variable} is not set: no {name} server to test against (see tests/conftest.py)")
    return url


def sa_url(url: str) -> URL:
    """The URL with the driver parity would pick, without registering its password as a secret."""
    parsed = sa.engine.make_url(url)
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=SCHEMES[parsed.drivername])
    if parsed.drivername == "mssql+pyodbc" and importlib.util.find_spec("pyodbc") is None:
        parsed = parsed.set(drivername="mssql+pymssql")  # as parity.endpoint.parse_url does
    return parsed


def fresh_name() -> str:
    """A name for a throwaway schema or database: ``t_`` and 12 random hex digits."""
    return f"t_{uuid.uuid4().hex[:12]}"


@dataclass
class Database:
    """One fresh, empty database (or schema) that belongs to one test."""

    name: str
    url: str
    schema: str | None = None
    _session_sql: tuple[str, ...] = ()
    _endpoints: list[Endpoint] = field(default_factory=list, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    def endpoint(self, role: Role = "source") -> Endpoint:
        """A parity Endpoint on this database (its schema set); disposed when the test ends."""
        ep = Endpoint.from_url(self.url, schema=self.schema, role=role)
        self._endpoints.append(ep)
        return ep

    @property
    def engine(self) -> Engine:
        """A plain SQLAlchemy engine for setup and checks; unqualified names resolve in ``schema``."""
        if self._engine is None:
            engine = sa.create_engine(sa_url(self.url), poolclass=sa.pool.NullPool)
            if self._session_sql:
                statements = self._session_sql

                @sa.event.listens_for(engine, "connect")
                def _session(dbapi_connection: Any, record: Any) -> None:
                    cursor = dbapi_connection.cursor()
                    for statement in statements:
                        cursor.execute(statement)
                    cursor.close()

            self._engine = engine
        return self._engine

    def sql(self, *statements: str) -> None:
        """Run native SQL statements (DDL, inserts), each committed."""
        with self.engine.connect() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
                conn.commit()

    def query(self, sql: str, **params: Any) -> list[Any]:
        """Rows of one query; ``:name`` placeholders are bound from ``params``."""
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())

    def q(self, name: str) -> str:
        """An identifier quoted for this database."""
        return self.engine.dialect.identifier_preparer.quote(name)

    def tables(self) -> list[str]:
        """User tables in this database's schema, sorted (parity's own ``_parity_*`` tables left out)."""
        return table_names(self.endpoint())

    def reflect(self, *names: str) -> list[Table]:
        """parity's reflection of the named tables (all tables when none are named)."""
        ep = self.endpoint()
        return reflect(ep, names or table_names(ep))

    def close(self) -> None:
        for ep in self._endpoints:
            ep.dispose()
        self._endpoints.clear()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


# ---- one creator per backend: (tmp_path) -> (Database, cleanup) ---------------------------------


def _sqlite(tmp: Path) -> tuple[Database, Callable[[], None]]:
    path = tmp / f"{fresh_name()}.sqlite"
    sqlite3.connect(path).close()
    return Database("sqlite", f"sqlite:///{path}"), lambda: None


def _duckdb(tmp: Path) -> tuple[Database, Callable[[], None]]:
    path = tmp / f"{fresh_name()}.duckdb"
    duckdb.connect(str(path)).close()
    return Database("duckdb", f"duckdb:///{path}"), lambda: None


def _admin(url: str) -> Engine:
    return sa.create_engine(sa_url(url), poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")


def _run_admin(url: str, *statements: str) -> None:
    engine = _admin(url)
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _postgresql(tmp: Path) -> tuple[Database, Callable[[], None]]:
    url, name = server_url("postgresql"), fresh_name()
    _run_admin(url, f'CREATE SCHEMA "{name}"')
    db = Database("postgresql", url, schema=name, _session_sql=(f'SET search_path TO "{name}"',))
    return db, lambda: _run_admin(url, f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _mariadb(tmp: Path) -> tuple[Database, Callable[[], None]]:
    admin, name = server_url("mariadb"), fresh_name()
    _run_admin(admin, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = sa_url(admin).set(database=name).render_as_string(hide_password=False)
    return Database("mariadb", url), lambda: _run_admin(admin, f"DROP DATABASE IF EXISTS `{name}`")


def _oracle(tmp: Path) -> tuple[Database, Callable[[], None]]:
    url, name = server_url("oracle"), fresh_name()
    _run_admin(
        url,
        f'CREATE USER {name} IDENTIFIED BY "{uuid.uuid4().hex}" QUOTA UNLIMITED ON USERS',
        f"GRANT CREATE SESSION, CREATE TABLE, CREATE SEQUENCE TO {name}",
    )
    db = Database("oracle", url, schema=name, _session_sql=(f"ALTER SESSION SET CURRENT_SCHEMA = {name}",))
    return db, lambda: _run_admin(url, f"DROP USER {name} CASCADE")


def _mssql(tmp: Path) -> tuple[Database, Callable[[], None]]:
    admin, name = server_url("mssql"), fresh_name()
    _run_admin(admin, f"CREATE DATABASE [{name}]")
    url = sa_url(admin).set(database=name).render_as_string(hide_password=False)
    drop = (
        f"IF DB_ID('{name}') IS NOT NULL ALTER DATABASE [{name}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE",
        f"IF DB_ID('{name}') IS NOT NULL DROP DATABASE [{name}]",
    )
    return Database("mssql", url), lambda: _run_admin(admin, *drop)


CREATORS: dict[str, Callable[[Path], tuple[Database, Callable[[], None]]]] = {
    "sqlite": _sqlite,
    "duckdb": _duckdb,
    "postgresql": _postgresql,
    "mariadb": _mariadb,
    "oracle": _oracle,
    "mssql": _mssql,
}


@pytest.fixture(autouse=True)
def _parity_log_as_it_was() -> Iterator[None]:
    """A test that runs the command line in this process configures parity's logger (a file handler,
    its level, no propagation): put back as it was, so that a later test's ``caplog`` still sees
    parity's records whatever order the tests run in."""
    logger = logging.getLogger("parity")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in logger.handlers:
            logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture(autouse=True)
def _endpoints_disposed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every Endpoint a test makes (its jobs' too) is disposed after it. A test that runs
    ``diff(build(...))`` leaves its job open, and its pools' connections were closed only when Python's
    collector freed the job in a full collection, which parity's runs make rare (``collected_less``):
    test_copy.py left 170 idle connections to PostgreSQL, and the next tests met max_connections."""
    made: list[Endpoint] = []
    make = Endpoint.from_url.__func__  # type: ignore[attr-defined]

    def from_url(cls: type[Endpoint], *args: Any, **kwargs: Any) -> Endpoint:
        endpoint = make(cls, *args, **kwargs)
        made.append(endpoint)
        return endpoint

    monkeypatch.setattr(Endpoint, "from_url", classmethod(from_url))
    yield
    for endpoint in made:
        endpoint.dispose()


@pytest.fixture
def make_db(tmp_path: Path) -> Iterator[Callable[[str], Database]]:
    """A factory of fresh Databases by backend name; every one is closed and dropped after the test."""
    made: list[tuple[Database, Callable[[], None]]] = []

    def make(name: str) -> Database:
        folder = tmp_path / f"db{len(made)}"
        folder.mkdir()
        db, cleanup = CREATORS[name](folder)
        made.append((db, cleanup))
        return db

    yield make
    for db, cleanup in reversed(made):
        db.close()
        cleanup()


@pytest.fixture
def sqlite_db(make_db: Callable[[str], Database]) -> Database:
    return make_db("sqlite")


@pytest.fixture
def duckdb_db(make_db: Callable[[str], Database]) -> Database:
    return make_db("duckdb")


@pytest.fixture
def pg_db(make_db: Callable[[str], Database]) -> Database:
    return make_db("postgresql")


@pytest.fixture
def mariadb_db(make_db: Callable[[str], Database]) -> Database:
    return make_db("mariadb")


@pytest.fixture
def oracle_db(make_db: Callable[[str], Database]) -> Database:
    return make_db("oracle")


@pytest.fixture
def mssql_db(make_db: Callable[[str], Database]) -> Database:
    return make_db("mssql")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, make_db: Callable[[str], Database]) -> Database:
    """A fresh Database on each of BACKENDS in turn."""
    return make_db(request.param)


@pytest.fixture(params=ALL_BACKENDS)
def any_backend(request: pytest.FixtureRequest, make_db: Callable[[str], Database]) -> Database:
    """A fresh Database on each of ALL_BACKENDS in turn (Oracle and SQL Server skip when unset)."""
    return make_db(request.param)


@pytest.fixture(params=PAIRS, ids=[f"{s}-to-{t}" for s, t in PAIRS])
def pair(request: pytest.FixtureRequest, make_db: Callable[[str], Database]) -> tuple[Database, Database]:
    """(source, target): two fresh Databases for each ordered pair of BACKENDS."""
    source_name, target_name = request.param
    return make_db(source_name), make_db(target_name)


@pytest.fixture
def demo_db(tmp_path: Path) -> Iterator[Database]:
    """A SQLite file holding parity's demo source: 8 tables, FKs (a self-reference and a cycle)."""
    from parity.demo import build_source

    path = tmp_path / "demo-source.sqlite"
    build_source(path)
    db = Database("sqlite", f"sqlite:///{path}")
    yield db
    db.close()


FK_CHECKS_ON = {
    "postgresql": ("SHOW session_replication_role", "origin"),
    "mariadb": ("SELECT @@foreign_key_checks", 1),
}
"""Per backend, the query of a session's FK checks and its answer when they are on."""


def fk_checks_on(endpoint: Endpoint) -> bool:
    """Whether a pooled connection of the endpoint has FK checks on."""
    query, on = FK_CHECKS_ON[endpoint.backend]
    with endpoint.connect() as conn:
        return bool(conn.exec_driver_sql(query).scalar() == on)


def url_with_password(url: str, password: str) -> str:
    """The same server URL with another password (for wrong-password and redaction tests)."""
    return sa_url(url).set(password=password).render_as_string(hide_password=False)
