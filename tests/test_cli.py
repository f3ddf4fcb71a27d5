"""The command line through its real entry point.

Bad input of every kind must end the same way: exactly one line on stderr starting with
``parity: error:``, exit code 2, no traceback, and no password anywhere in the output. Most cases call
``parity.cli.main([...])`` in this process (catching SystemExit); the ones marked *subprocess* run
``python -m parity`` so that the exit code and the streams are exactly what a user sees.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import sqlalchemy as sa

from parity import __version__, log
from parity.cli import cli, main

from .conftest import Database, fresh_name, sa_url, server_url, url_with_password

PASSWORD = "s3cr3t-pw"


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """*subprocess*: ``python -m parity ARGS`` with a clean environment plus ``env``."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("SOURCE_", "TARGET_", "PARITY_T_"))
    }
    environment.update(PARITY_CONNECT_TIMEOUT="5", COLUMNS="200", **(env or {}))
    done = subprocess.run(
        [sys.executable, "-m", "parity", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """The error contract; returns the message after ``parity: error: ``."""
    assert result.code == 2, result
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("parity: error: "), result.err
    assert "Traceback" not in result.err + result.out
    assert PASSWORD not in result.err + result.out
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0][len("parity: error: ") :]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def target(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'target.sqlite'}"


@pytest.fixture
def parity(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[..., Result]]:
    """In process: ``parity(*args)`` runs ``parity.cli.main`` in tmp_path and returns what it did."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PARITY_CONNECT_TIMEOUT", "5")
    for name in ("SOURCE_URL", "TARGET_URL"):
        monkeypatch.delenv(name, raising=False)

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    yield invoke
    log.configure(None)  # a --debug run must not leave SQL logging on for later tests


# ---- version, help, demo ------------------------------------------------------------------------------


def test_entry_point_version(tmp_path: Path) -> None:
    """*subprocess*"""
    result = run("--version", cwd=tmp_path)
    assert (result.code, result.out.strip(), result.err) == (0, f"parity, version {__version__}", "")


def test_entry_point_error(tmp_path: Path, target: str) -> None:
    """*subprocess*"""
    result = run("schema", "plan", f"foo://user:{PASSWORD}@x/db", target, cwd=tmp_path)
    assert_one_line_error(result, "unsupported database URL scheme 'foo://'")
    assert result.out == ""


def test_entry_point_ends_with_everything_closed(tmp_path: Path) -> None:
    """*subprocess*: the command ends the process without Python's teardown (``_entry._exit``): its
    output, its log and its target are still whole. A DuckDB target left unclosed keeps its rows in
    a ``.wal`` file beside it; the log's last lines are written by its exit handler."""
    source = tmp_path / "src.sqlite"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(500)])
    conn.close()
    duck = tmp_path / "dst.duckdb"
    result = run(
        "--debug", "low", "--log-file", "run.log", "copy", f"sqlite:///{source}", f"duckdb:///{duck}",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 0, result
    assert json.loads(result.out)["tables"][0]["rows_written"] == 500
    assert not duck.with_name("dst.duckdb.wal").exists()
    engine = sa.create_engine(f"duckdb:///{duck}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*), max(name) FROM t").one() == (500, "n99")
    engine.dispose()
    assert "rows_written=500" in (tmp_path / "run.log").read_text()


def test_version(parity: Callable[..., Result]) -> None:
    result = parity("--version")
    assert (result.code, result.out.strip()) == (0, f"parity, version {__version__}")


def _commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, group
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = list(_commands(cli))


def test_the_commands_are_there() -> None:
    paths = {" ".join(p) for p, _ in COMMANDS}
    assert {"", "demo", "schema", "schema plan", "schema apply"} <= paths


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) or "parity" for p, _ in COMMANDS])
def test_every_command_has_help(
    parity: Callable[..., Result], path: tuple[str, ...], command: click.Command
) -> None:
    name = " ".join(("parity", *path))
    assert command.help and command.help.strip(), f"'{name}' has no help text"
    result = parity(*path, "--help")
    assert result.code == 0, result.err
    assert result.out.startswith(f"Usage: {name} ")
    first_words = " ".join(command.help.split()[:4])
    assert first_words in " ".join(result.out.split())
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"option {param.opts} of '{name}' has no help text"
    if isinstance(command, click.Group):
        for sub in command.commands:
            assert sub in result.out


def test_demo(parity: Callable[..., Result], tmp_path: Path) -> None:
    result = parity("demo", "--dir", "demo")
    assert result.code == 0, result.err
    assert "load order" in result.out
    target = sa.create_engine(f"sqlite:///{tmp_path / 'demo' / 'target.sqlite'}")
    try:
        inspector = sa.inspect(target)
        names = sorted(n for n in inspector.get_table_names() if not n.startswith("_parity_"))
        assert names == [
            "customers",
            "employees",
            "members",
            "order history",
            "order_items",
            "orders",
            "products",
            "teams",
        ]
        referred = {(name, fk["referred_table"]) for name in names for fk in inspector.get_foreign_keys(name)}
        with target.connect() as conn:
            assert conn.exec_driver_sql('SELECT COUNT(*) FROM "order history"').scalar() == 250
    finally:
        target.dispose()
    assert {
        ("orders", "customers"),
        ("order_items", "orders"),
        ("order_items", "products"),
        ("employees", "employees"),
        ("members", "teams"),
        ("teams", "members"),
        ("order history", "orders"),
    } <= referred


def test_demo_twice_starts_over(parity: Callable[..., Result]) -> None:
    assert parity("demo", "--dir", "demo").code == 0
    again = parity("demo", "--dir", "demo")
    assert again.code == 0, again.err
    assert "create table" in again.out


# ---- bad input: one line, exit 2, no traceback, no password ------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "mariadb"])
def test_unreachable_host(parity: Callable[..., Result], target: str, scheme: str) -> None:
    url = f"{scheme}://parity:{PASSWORD}@127.0.0.1:{closed_port()}/parity"
    message = assert_one_line_error(parity("schema", "plan", url, target), "cannot connect to")
    assert "127.0.0.1" in message and ":***@" in message


def test_an_unknown_database_suggests_the_closest(
    parity: Callable[..., Result], target: str, mariadb_db: Database
) -> None:
    """The server has no database of the URL's name: the one like it is named, as for schemas and
    tables (it was not, the audit)."""
    typo = mariadb_db.url[:-1] + ("x" if not mariadb_db.url.endswith("x") else "y")
    name = mariadb_db.url.rsplit("/", 1)[1]
    assert_one_line_error(
        parity("schema", "plan", typo, target), "Unknown database", f"did you mean '{name}'?"
    )
    pg = server_url("postgresql")
    message = assert_one_line_error(parity("schema", "plan", pg.rsplit("/", 1)[0] + "/postgrez", target))
    assert message.endswith("does not exist; did you mean 'postgres'?"), message


def test_a_view_named_as_a_table_is_said_to_be_one(
    parity: Callable[..., Result], tmp_path: Path, target: str
) -> None:
    """'-t v_repo' of a view said "table 'v_repo' not found" (the audit): it is a view, which parity
    does not copy."""
    source = tmp_path / "views.sqlite"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE repo (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE VIEW v_repo AS SELECT * FROM repo")
    conn.close()
    assert_one_line_error(
        parity("copy", f"sqlite:///{source}", target, "-t", "v_repo"), "'v_repo'", "is a view"
    )


def test_a_target_view_under_the_copied_name_is_said_to_be_one(
    parity: Callable[..., Result], tmp_path: Path, pg_db: Database
) -> None:
    """A copy into the name of a target's view failed late, after reading the source, with the
    database's "relation already exists"; now before any DDL, naming the view, and the target
    unchanged."""
    source = tmp_path / "src.sqlite"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE repo (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TABLE other (id INTEGER PRIMARY KEY)")
    conn.close()
    pg_db.sql("CREATE TABLE base (id INT)", "CREATE VIEW repo_v AS SELECT id FROM base")
    result = parity(
        "copy",
        f"sqlite:///{source}",
        pg_db.url,
        "--target-schema",
        pg_db.schema,
        "-t",
        "other",
        "-t",
        "repo:repo_v",
    )
    assert_one_line_error(result, "target 'repo_v'", "is a view")
    assert pg_db.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1"
    ) == [("base",), ("repo_v",)]


def test_a_password_holding_a_raw_at_sign_is_masked_whole(parity: Callable[..., Result], target: str) -> None:
    """'Zq9@MySecretTail': the URL was cut at its first '@', and the password's tail printed as the
    host, four times (the audit). The last '@' ends the password, as browsers read it."""
    url = f"postgresql://parity:Zq9@MySecretTail@127.0.0.1:{closed_port()}/parity"
    message = assert_one_line_error(parity("schema", "plan", url, target), "cannot connect to")
    assert "MySecretTail" not in message and "Zq9" not in message and "127.0.0.1" in message
    from parity.endpoint import parse_url  # (an '@' after the address is not the password's: the review)

    url_in_query = parse_url("postgresql://u:pw@127.0.0.1:5432?application_name=me@work")
    assert (url_in_query.password, url_in_query.host) == ("pw", "127.0.0.1")


def test_a_mariadb_url_without_a_database_or_with_an_argument_its_driver_lacks_is_one_line(
    parity: Callable[..., Result], target: str
) -> None:
    """Each was an unexpected AttributeError or TypeError, the second after a 57-line traceback of the
    thread that opens connections ahead (the audit)."""
    url = sa_url(server_url("mariadb"))
    bare = url.render_as_string(hide_password=False).rsplit("/", 1)[0]
    assert_one_line_error(parity("schema", "plan", bare, target), "names no database")
    given = parity(
        "schema", "plan", bare, target, "--source-schema", str(url.database)
    )  # (--*-schema names it)
    assert given.code == 0, given
    typo = url.update_query_dict({"connect_timout": "5"}).render_as_string(hide_password=False)
    Path(target.removeprefix("sqlite:///")).touch()  # (an empty SQLite database)
    assert_one_line_error(parity("diff", typo, target, "-t", "x"), "cannot connect to", "connect_timout")


def test_a_password_that_is_a_common_word_masks_it_alone_not_inside_other_words() -> None:
    """The password "postgres" made every message read "***ql://", and "parity" "_***_discrepancies"
    (the audit): a secret is masked where it stands alone."""
    log.add_secret("sesame")  # (a word no other test prints alone: the secrets are the process's)
    log.add_secret("s3cr3t!")
    masked = log.redact('sesameql://sesame:sesame@h/db: user "sesame"; s3cr3t! at _sesame_x')
    assert masked == 'sesameql://***:***@h/db: user "***"; *** at _sesame_x'


def test_a_password_in_the_query_string_is_masked(parity: Callable[..., Result], target: str) -> None:
    url = f"postgresql://parity@127.0.0.1:{closed_port()}/parity?password={PASSWORD}&sslmode=bogus"
    message = assert_one_line_error(parity("schema", "plan", url, target), "cannot connect to")
    assert "password=***&sslmode=bogus" in message


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_wrong_password(parity: Callable[..., Result], target: str, backend: str) -> None:
    url = url_with_password(server_url(backend), PASSWORD)
    message = assert_one_line_error(parity("schema", "plan", url, target), "cannot connect to")
    assert "password authentication failed" in message or "Access denied" in message


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_unknown_database(parity: Callable[..., Result], target: str, backend: str) -> None:
    url = sa_url(server_url(backend)).set(database="no_such_db_x").render_as_string(hide_password=False)
    message = assert_one_line_error(parity("schema", "plan", url, target), "cannot connect to")
    assert "no_such_db_x" in message


def test_missing_table_suggests_the_closest(
    parity: Callable[..., Result], target: str, demo_db: Database
) -> None:
    result = parity("schema", "plan", demo_db.url, target, "-t", "custmers")
    assert_one_line_error(result, "table 'custmers' not found", "did you mean 'customers'?")


def test_tables_may_be_given_as_one_comma_separated_list(
    parity: Callable[..., Result], target: str, demo_db: Database
) -> None:
    """database-migrator's users give ``-t customers,products``: it was one table, not found."""
    result = parity("schema", "plan", demo_db.url, target, "-t", "customers, products", "-t", "orders")
    assert result.code == 0, result.err
    created = [line.split()[2] for line in result.out.splitlines() if line.startswith("CREATE TABLE")]
    assert sorted(created) == ["customers", "orders", "products"]


@pytest.mark.parametrize(
    "args",
    [
        ("sync", "-t", "", "--delete"),
        ("sync", "-t", " ", "--delete"),
        ("copy", "-t", "customers,,orders"),
        ("copy", "-t", "customers:b:c"),
        ("copy", "-t", "customers:"),
        ("copy", "-t", "customers", "-k", ""),
        ("sync", "-t", "customers", "--soft-delete", ""),
        ("sync", "-t", "customers", "--soft-delete", "gone", "--delete"),
    ],
)
def test_an_empty_table_key_or_column_name_is_refused(
    parity: Callable[..., Result], target: str, demo_db: Database, args: tuple[str, ...]
) -> None:
    """``-t ''`` (a variable left unset) selected every table: ``sync --delete`` deleted extra rows in
    all of them (the audit); ``-t a:b:c`` made a table named 'b:c'; ``-k ''`` was ignored."""
    command, *rest = args
    result = parity(command, demo_db.url, target, *rest)
    assert_one_line_error(result)
    assert not Path(target.removeprefix("sqlite:///")).exists()  # (refused before it is opened)


@pytest.mark.parametrize(
    "flags",
    [("--delete", "--keep-extra"), ("--keep-extra", "--delete"), ("--soft-delete", "gone", "--keep-extra")],
)
def test_sync_refuses_two_answers_for_extra_rows(
    parity: Callable[..., Result], demo_db: Database, tmp_path: Path, flags: tuple[str, ...]
) -> None:
    """``--delete --keep-extra`` kept the rows and ``--keep-extra --delete`` deleted them: the last
    one won, without a word (the audit)."""
    target = tmp_path / "t.db"
    shutil.copy(demo_db.url.removeprefix("sqlite:///"), target)
    result = parity("sync", demo_db.url, f"sqlite:///{target}", "-t", "customers", *flags)
    named = [flag for flag in flags if flag.startswith("--")]
    assert_one_line_error(result, *named, "give one")


def test_sync_rows_the_target_refuses_are_an_error_not_a_difference(
    parity: Callable[..., Result], tmp_path: Path, pg_db: Database
) -> None:
    """sync exited 1, the code of tables that differ, when the target refused rows (a value too long,
    a privilege): it is an error, 2, as fix says; the other rows are applied."""
    source = tmp_path / "s.db"
    with sa.create_engine(f"sqlite:///{source}").begin() as conn:
        conn.exec_driver_sql("CREATE TABLE sv (id INTEGER PRIMARY KEY, v VARCHAR(10))")
        conn.exec_driver_sql("INSERT INTO sv VALUES (1, 'ok'), (2, 'far too long')")
    pg_db.sql("CREATE TABLE sv (id INTEGER PRIMARY KEY, v VARCHAR(3))")
    result = parity("sync", f"sqlite:///{source}", pg_db.url, "--target-schema", pg_db.schema, "-t", "sv")
    assert result.code == 2, result
    assert pg_db.query("SELECT id, v FROM sv") == [(1, "ok")]


def test_a_dry_run_of_sync_exits_1_while_the_tables_differ(
    parity: Callable[..., Result], tmp_path: Path, pg_db: Database
) -> None:
    """sync exits 0 when the tables are identical after it, 1 when they differ: its dry run, which
    writes nothing, exited 0 with rows to write (the audit)."""
    source = tmp_path / "s.db"
    with sa.create_engine(f"sqlite:///{source}").begin() as conn:
        conn.exec_driver_sql("CREATE TABLE sv (id INTEGER PRIMARY KEY, v VARCHAR(10))")
        conn.exec_driver_sql("INSERT INTO sv VALUES (1, 'ok')")
    pg_db.sql("CREATE TABLE sv (id INTEGER PRIMARY KEY, v VARCHAR(10))")
    args = ("sync", f"sqlite:///{source}", pg_db.url, "--target-schema", pg_db.schema, "-t", "sv")
    planned = parity(*args, "--dry-run")
    assert planned.code == 1 and "INSERT INTO" in planned.out, planned
    assert parity(*args).code == 0
    assert parity(*args, "--dry-run").code == 0


@pytest.mark.parametrize(
    "args",
    [
        ("copy", "--rejects", "/no/such/folder/r.jsonl"),
        ("copy", "--remap-ids", "--export-id-map", "/no/such/folder/m.json"),
        ("--debug", "--log-file", "/no/such/folder/p.log", "copy"),
    ],
)
def test_a_file_parity_cannot_write_is_refused_before_any_work(
    parity: Callable[..., Result], target: str, demo_db: Database, args: tuple[str, ...]
) -> None:
    """A rejects file in a folder that is not there failed the copy at its first reject, other tables
    loaded; the ID map, after every row; the log file, with a traceback (the audit)."""
    *before, command = args if args[0] == "--debug" else ("copy",)
    rest = () if args[0] == "--debug" else args[1:]
    result = parity(*before, command, demo_db.url, target, *rest)
    assert_one_line_error(result, "/no/such/folder")
    assert not Path(target.removeprefix("sqlite:///")).exists()


@pytest.mark.parametrize(
    ("scheme", "args", "says"),
    [
        ("sqlite", ("--mode", "merge", "-k", "status"), "status"),
        ("duckdb", ("--mode", "merge", "-k", "status"), "status"),
        ("sqlite", ("--target-schema", "foo"), "schema 'foo' not found"),
        ("sqlite", ("-k", "nosuch", "--mode", "merge"), "'nosuch' not found"),
    ],
)
def test_a_copy_refused_before_any_row_leaves_no_new_database_file(
    parity: Callable[..., Result],
    tmp_path: Path,
    demo_db: Database,
    scheme: str,
    args: tuple[str, ...],
    says: str,
) -> None:
    """Connecting made the file: a refused copy left an empty SQLite file, or a DuckDB one (the audit)."""
    path = tmp_path / f"new.{scheme}"
    result = parity("copy", demo_db.url, f"{scheme}:///{path}", "-t", "orders", *args)
    assert_one_line_error(result, says)
    assert not path.exists() and not Path(f"{path}.wal").exists()


def test_a_file_that_is_no_database_of_its_url_s_kind_is_named_as_such(
    parity: Callable[..., Result], tmp_path: Path, demo_db: Database
) -> None:
    """A text file said "database error: file is not a database", naming no file; an SQLite file behind
    duckdb:// failed downloading an extension (the audit)."""
    (tmp_path / "notes.txt").write_text("not a database\n")
    lite = demo_db.url.removeprefix("sqlite:///")
    duck = tmp_path / "d.duckdb"
    assert parity("copy", demo_db.url, f"duckdb:///{duck}", "-t", "orders").code == 0
    cases = [
        (("copy", f"sqlite:///{tmp_path}/notes.txt", "sqlite:///out.db"), "is no SQLite database file"),
        (
            ("diff", f"duckdb:///{lite}", demo_db.url, "-t", "orders"),
            "it is an SQLite database: use sqlite:///",
        ),
        (
            ("copy", demo_db.url, f"sqlite:///{duck}", "-t", "orders"),
            "it is a DuckDB database: use duckdb:///",
        ),
    ]
    for args, says in cases:
        assert_one_line_error(parity(*args), says)
    assert not (tmp_path / "out.db").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("copy", "a", "b", "--workers", "-1"), "Invalid value for '--workers'"),
        (("diff", "a", "b", "--format", "xml"), "Invalid value for '--format'"),
        (("nosuch",), "No such command 'nosuch'"),
    ],
)
def test_a_bad_option_is_one_line(parity: Callable[..., Result], args: tuple[str, ...], says: str) -> None:
    """Click printed its usage block, four lines, for a bad option value (the audit)."""
    assert_one_line_error(parity(*args), says, "--help")


def test_an_unknown_command_is_one_line_in_a_new_process() -> None:
    """A fresh process printed the error twice: parity's log, not configured yet (the command was
    not found), fell to Python's last-resort handler on stderr (the audit)."""
    done = subprocess.run(
        [sys.executable, "-m", "parity", "cdc"], check=False, capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stderr.splitlines()) == (
        2,
        ["parity: error: No such command 'cdc'. (see parity --help)"],
    )


def test_debug_may_follow_the_command(
    parity: Callable[..., Result], target: str, demo_db: Database, tmp_path: Path
) -> None:
    """``parity diff ... --debug high`` was "No such option '--debug'"."""
    log_file = tmp_path / "after.log"
    result = parity(
        "schema",
        "plan",
        demo_db.url,
        target,
        "-t",
        "customers",
        "--debug",
        "high",
        "--log-file",
        str(log_file),
    )
    assert result.code == 0, result
    assert "SELECT" in log_file.read_text() or "PRAGMA" in log_file.read_text()


def test_a_table_that_fails_says_why_on_stderr(parity: Callable[..., Result], tmp_path: Path) -> None:
    """A failed table's reason was only in the summary table on stdout, wrapped over lines and cut (the
    audit): it is one line on stderr too."""
    source, target = tmp_path / "s.db", tmp_path / "t.db"
    for path in (source, target):
        with sa.create_engine(f"sqlite:///{path}").begin() as conn:
            conn.exec_driver_sql("CREATE TABLE k (id INTEGER PRIMARY KEY, v TEXT)")
            conn.exec_driver_sql("INSERT INTO k VALUES (1, 'a')")
    with sa.create_engine(f"sqlite:///{target}").begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER keep BEFORE DELETE ON k BEGIN SELECT RAISE(ABORT, 'kept by a trigger'); END"
        )
    result = parity("copy", f"sqlite:///{source}", f"sqlite:///{target}", "--mode", "replace")
    assert result.code == 2
    assert result.err.splitlines()[-1].startswith("parity: error: table 'k' failed: ")
    assert "kept by a trigger" in result.err.splitlines()[-1]


def test_missing_sqlite_source(parity: Callable[..., Result], tmp_path: Path, target: str) -> None:
    missing = tmp_path / "nope.sqlite"
    result = parity("schema", "plan", f"sqlite:///{missing}", target)
    assert_one_line_error(result, f"database file '{missing}' not found")
    assert not missing.exists()


def test_unsupported_scheme(parity: Callable[..., Result], target: str) -> None:
    result = parity("schema", "plan", f"foo://user:{PASSWORD}@x/db", target)
    assert_one_line_error(result, "unsupported database URL scheme 'foo://'")
    result = parity("schema", "plan", "postgresq://x/db", target)
    assert_one_line_error(result, "did you mean 'postgresql'?")


def test_no_source(parity: Callable[..., Result]) -> None:
    assert_one_line_error(parity("schema", "plan"), "no source database")


def test_malformed_yaml(parity: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text("source: sqlite:///a.sqlite\ntarget: [unclosed\n", encoding="utf-8")
    result = parity("schema", "plan", "-c", "job.yaml")
    assert_one_line_error(result, "job.yaml: malformed YAML at line 3, column 1")


def test_unknown_key(parity: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(
        "source: sqlite:///a.sqlite\ntarget: sqlite:///b.sqlite\ntables:\n  - nmae: x\n", encoding="utf-8"
    )
    result = parity("schema", "apply", "-c", "job.yaml")
    assert_one_line_error(result, "unknown key 'tables[0].nmae'; did you mean 'name'?")


def test_a_table_listed_twice_in_a_job_file_is_refused(parity: Callable[..., Result], tmp_path: Path) -> None:
    """One entry won without a word, the other's target never made (the audit); -t refused it already."""
    (tmp_path / "job.yaml").write_text(
        "source: sqlite:///a.sqlite\ntarget: sqlite:///b.sqlite\ntables:\n  - t\n  - {name: t, target: t_copy}\n",
        encoding="utf-8",
    )
    assert_one_line_error(parity("copy", "-c", "job.yaml"), "table 't' is listed twice")


def test_the_command_line_wins_over_a_table_s_settings_in_the_job_file(
    parity: Callable[..., Result], tmp_path: Path
) -> None:
    """``copy -c job.yaml --mode append`` emptied and reloaded a table the file gives ``mode: replace``:
    the target's own rows were gone (the audit). A ``--map`` of one column dropped the file's map of
    another, whose differences diff then did not see; ``--exclude`` let the file's excluded tables in."""
    import sqlite3

    with sqlite3.connect(tmp_path / "a.sqlite") as db:
        db.executescript(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, slug TEXT);"
            "INSERT INTO t VALUES (1, 'one', 'o'), (2, 'two', 't');"
            "CREATE TABLE tmp_x (id INTEGER PRIMARY KEY);"
        )
    with sqlite3.connect(tmp_path / "b.sqlite") as db:
        db.executescript(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, slug TEXT);"
            "INSERT INTO t VALUES (77, 'kept', 'k');"
            "CREATE TABLE u (id INTEGER PRIMARY KEY, label TEXT, slug TEXT);"
            "INSERT INTO u VALUES (1, 'one', 'o'), (2, 'TWO', 't'), (50, 'fifty', 'f');"
        )
    (tmp_path / "job.yaml").write_text(
        "source: sqlite:///a.sqlite\ntarget: sqlite:///b.sqlite\nexclude: ['tmp_*']\n"
        "tables:\n  - {name: t, mode: replace, batch_size: 1}\n", encoding="utf-8"
    )  # fmt: skip
    assert parity("copy", "-c", "job.yaml", "--mode", "append").code == 0
    skipped = parity("copy", "-c", "job.yaml", "--exclude", "t", "--mode", "append")  # (said, not silent)
    assert (
        skipped.code == 0 and "table 't' is named, and the exclude pattern 't' leaves it out" in skipped.err
    )
    with sqlite3.connect(tmp_path / "b.sqlite") as db:
        assert db.execute("SELECT id FROM t ORDER BY id").fetchall() == [(1,), (2,), (77,)]
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'tmp_x'").fetchone() == (0,)
    (tmp_path / "diff.yaml").write_text(
        "source: sqlite:///a.sqlite\ntarget: sqlite:///b.sqlite\n"
        "tables:\n  - {name: t, target: u, map: {name: label}, where: 'id < 3', target_where: 'id < 100'}\n",
        encoding="utf-8",
    )
    result = parity("diff", "-j", "diff.yaml", "--map", "slug=slug", "--where", "id <= 2")
    assert result.code == 1 and "TWO" in result.out  # (the file's map still holds; one --where, both sides)
    assert "extra" not in result.out


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("partition: {column: nosuch, by: month}", "column 'nosuch' not found in table 't'"),
        ("partition: {by: week}", "partition by week needs a column"),
        ("tolerance: {nosuch: 1}", "column 'nosuch' not found in table 't'"),
    ],
)
def test_copy_checks_the_settings_diff_alone_uses(
    parity: Callable[..., Result], tmp_path: Path, setting: str, message: str
) -> None:
    """A job file both copy and diff run: copy took a partition or tolerance naming no column (its
    rows written, exit 0), and diff refused the file after (the audit)."""
    import sqlite3

    with sqlite3.connect(tmp_path / "a.sqlite") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
    (tmp_path / "job.yaml").write_text(
        f"source: sqlite:///a.sqlite\ntarget: sqlite:///b.sqlite\ntables:\n  - name: t\n    {setting}\n",
        encoding="utf-8",
    )
    assert_one_line_error(parity("copy", "-c", "job.yaml"), message)
    assert not (tmp_path / "b.sqlite").exists()


def test_missing_environment_variable(parity: Callable[..., Result], tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(
        "source: ${SOURCE_URL}\ntarget: sqlite:///b.sqlite\n", encoding="utf-8"
    )
    result = parity("schema", "plan", "-c", "job.yaml")
    assert_one_line_error(result, "environment variable SOURCE_URL is not set")


def test_environment_variable_from_dotenv(
    parity: Callable[..., Result], tmp_path: Path, demo_db: Database
) -> None:
    (tmp_path / ".env").write_text(f"SOURCE_URL={demo_db.url}\n", encoding="utf-8")
    (tmp_path / "job.yaml").write_text(
        "source: ${SOURCE_URL}\ntarget: sqlite:///t.sqlite\ntables: [employees]\n", encoding="utf-8"
    )
    result = parity("schema", "plan", "-c", "job.yaml")
    assert result.code == 0, result.err
    assert result.out.startswith("CREATE TABLE employees")


def test_unknown_column_in_map(parity: Callable[..., Result], tmp_path: Path, demo_db: Database) -> None:
    (tmp_path / "job.yaml").write_text(
        f"source: {demo_db.url}\ntarget: sqlite:///t.sqlite\n"
        "tables:\n  - name: order history\n    map: {selct: status}\n",
        encoding="utf-8",
    )
    result = parity("schema", "plan", "-c", "job.yaml")
    assert_one_line_error(result, "column 'selct' not found in table 'order history'; did you mean 'select'?")


@pytest.mark.parametrize(
    "options", [("--debug", "low", "--log-file", "d.log"), ("--log-file", "d.log", "--debug"), ("--debug",)]
)
def test_debug_shows_the_traceback(
    parity: Callable[..., Result], target: str, options: tuple[str, ...]
) -> None:
    """``--debug`` takes a level, or none (then ``medium``) right before the command."""
    result = parity(*options, "schema", "plan", "foo://x/y", target)
    assert result.code == 2
    assert "Traceback" in result.err
    assert result.err.splitlines()[-1].startswith("parity: error: unsupported database URL scheme")


# ---- the debug log ------------------------------------------------------------------------------------


def test_debug_high_logs_sql(
    parity: Callable[..., Result], tmp_path: Path, demo_db: Database, target: str
) -> None:
    result = parity("--debug", "high", "--log-file", "debug.log", "schema", "apply", demo_db.url, target)
    assert result.code == 0, result.err
    log = (tmp_path / "debug.log").read_text(encoding="utf-8")
    assert "sql sqlite" in log
    assert 'CREATE TABLE "order history"' in log
    assert "PRAGMA" in log  # reflection's statements too


def test_debug_low_logs_the_warnings_and_the_error(parity: Callable[..., Result], tmp_path: Path) -> None:
    """``--debug low`` wrote an empty log though the run printed warnings (the audit)."""
    import sqlite3

    with sqlite3.connect(tmp_path / "a.sqlite") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)")
    with sqlite3.connect(tmp_path / "b.sqlite") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")  # (n is not there: a warning)
    result = parity("--debug", "low", "diff", "sqlite:///a.sqlite", "sqlite:///b.sqlite", "-t", "t")
    assert result.code == 0 and "warning:" in result.err
    logged = (tmp_path / "parity-debug.log").read_text(encoding="utf-8")
    assert "WARNING" in logged and "t.n" in logged
    assert parity("--debug", "low", "diff", "sqlite:///a.sqlite", "sqlite:///b.sqlite", "-t", "u").code == 2
    assert "ERROR" in (tmp_path / "parity-debug.log").read_text(encoding="utf-8")


@pytest.fixture
def pg_login(pg_db: Database) -> Iterator[str]:
    """A PostgreSQL URL for a new login role whose password is PASSWORD, allowed into pg_db's schema."""
    role = fresh_name()
    pg_db.sql(
        f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'",
        f'GRANT USAGE ON SCHEMA "{pg_db.schema}" TO {role}',
        f'GRANT SELECT ON ALL TABLES IN SCHEMA "{pg_db.schema}" TO {role}',
    )
    yield sa_url(pg_db.url).set(username=role, password=PASSWORD).render_as_string(hide_password=False)
    pg_db.sql(f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_debug_log_never_holds_the_password(
    tmp_path: Path, pg_db: Database, pg_login: str, target: str
) -> None:
    """*subprocess*"""
    pg_db.sql("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner VARCHAR(40) NOT NULL)")
    result = run(
        "--debug",
        "high",
        "--log-file",
        "debug.log",
        "schema",
        "apply",
        pg_login,
        target,
        "--source-schema",
        str(pg_db.schema),
        cwd=tmp_path,
    )
    assert result.code == 0, result.err
    assert PASSWORD not in result.out + result.err
    log = (tmp_path / "debug.log").read_text(encoding="utf-8")
    assert "sql postgresql" in log and "pg_catalog" in log
    assert "CREATE TABLE accounts" in log
    assert PASSWORD not in log


def test_failed_login_with_debug_never_shows_the_password(tmp_path: Path, target: str) -> None:
    """*subprocess*"""
    url = url_with_password(server_url("postgresql"), PASSWORD)
    result = run("--debug", "high", "--log-file", "debug.log", "schema", "plan", url, target, cwd=tmp_path)
    assert result.code == 2
    assert "Traceback" in result.err
    assert PASSWORD not in result.out + result.err
    assert PASSWORD not in (tmp_path / "debug.log").read_text(encoding="utf-8")


def test_the_copy_summary_ends_with_the_totals(
    parity: Callable[..., Result], demo_db: Database, target: str
) -> None:
    result = parity("copy", demo_db.url, target)
    assert result.code == 0, result.err
    rows = [line for line in result.out.splitlines() if line.startswith("│")]
    counts = [int(line.split("│")[3].strip().replace(",", "")) for line in rows[:-1]]
    assert len(counts) > 1 and "total (" in rows[-1]
    assert int(rows[-1].split("│")[3].strip().replace(",", "")) == sum(counts)


def test_a_copy_on_a_terminal_shows_a_bar_per_table_with_its_rows_rate_and_time_left(
    parity: Callable[..., Result], demo_db: Database, sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal each table gets a bar: its name, rows done of its rows, rows a second and the time
    left; at the end every bar stands at its table's count."""
    import io

    from rich.console import Console

    from parity import cli as cli_module

    screen = io.StringIO()
    monkeypatch.setattr(
        cli_module, "err", Console(file=screen, force_terminal=True, width=160, color_system=None)
    )
    result = parity("copy", demo_db.url, sqlite_db.url)
    assert result.code == 0, result.err
    counts = {t: n for t, n in sqlite_db.query(
        "SELECT 'customers', COUNT(*) FROM customers UNION ALL SELECT 'order history', COUNT(*) FROM \"order history\""
    )}  # fmt: skip
    last = {}  # the last state of each table's bar on the screen
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", screen.getvalue())  # (the terminal's controls)
    for line in shown.replace("\r", "\n").splitlines():
        found = re.search(r"^(\S.*?)\s+\S*\s+(\d[\d,]*)/(\d[\d,]*)\s+([\d,]+|-) rows/s\s+(\S+)", line.strip())
        if found:
            last[found.group(1)] = found.groups()[1:]
    for table, rows in counts.items():
        done, total, rate, _left = last[table]
        assert int(done.replace(",", "")) == int(total.replace(",", "")) == rows
        assert rate == "-" or int(rate.replace(",", "")) > 0


def test_copy_prints_the_schema_plans_warnings(
    parity: Callable[..., Result], make_db: Callable[[str], Database]
) -> None:
    source, target = make_db("postgresql"), make_db("mariadb")
    source.sql("CREATE TABLE n (id INTEGER PRIMARY KEY, d NUMERIC)", "INSERT INTO n VALUES (1, 1.5)")
    result = parity("copy", source.url, target.url, "--source-schema", source.schema or "")
    assert result.code == 0
    assert "warning:" in result.err and "unbounded decimal narrowed to DECIMAL(65,10)" in result.err
    fresh = make_db("mariadb")
    as_json = parity("copy", source.url, fresh.url, "--source-schema", source.schema or "", "--json")
    warnings = json.loads(as_json.out)["warnings"]  # (--json's summary held none of the plan's)
    assert as_json.code == 0 and any("unbounded decimal narrowed to DECIMAL(65,10)" in w for w in warnings)


@pytest.mark.parametrize("target_name", ["postgresql", "mariadb", "duckdb"])
def test_sqlite_integers_keep_64_bits(
    parity: Callable[..., Result], make_db: Callable[[str], Database], target_name: str
) -> None:
    """SQLite's INTEGER and INT hold 64-bit values (milliseconds since 1970, rowids): a new target column
    is a bigint, and every row arrives (a 32-bit column rejected them, yet the copy exited 0)."""
    source, target = make_db("sqlite"), make_db(target_name)
    values = [(1, 1_700_000_000_123, -(2**63)), (2, 3, 2**63 - 1)]
    source.sql("CREATE TABLE ev (id INTEGER PRIMARY KEY, at_ms INTEGER, n INT)")
    source.sql(*(f"INSERT INTO ev VALUES {row}" for row in values))
    result = parity(
        "copy", source.url, target.url, *(["--target-schema", target.schema] if target.schema else [])
    )
    assert result.code == 0, result
    assert target.query("SELECT id, at_ms, n FROM ev ORDER BY id") == values


def test_rows_beyond_an_existing_narrower_column_are_rejected_with_exit_code_1(
    parity: Callable[..., Result], make_db: Callable[[str], Database], tmp_path: Path
) -> None:
    """Into a live database whose id is INT: the copy goes ahead with a warning, the row that column
    cannot hold goes to the rejects file, and the exit code says not every row arrived."""
    source, target = make_db("sqlite"), make_db("mariadb")
    source.sql("CREATE TABLE ev (id INTEGER PRIMARY KEY, at_ms INTEGER)")
    source.sql("INSERT INTO ev VALUES (1, 5)", "INSERT INTO ev VALUES (2, 1700000000123)")
    target.sql("CREATE TABLE ev (id INT PRIMARY KEY, at_ms INT)")
    rejects = tmp_path / "rejects.jsonl"
    result = parity("copy", source.url, target.url, "--mode", "append", "--rejects", str(rejects))
    assert result.code == 1, result
    assert "ev.at_ms is INTEGER in the target" in result.err and "rows beyond" in result.err
    assert target.query("SELECT id, at_ms FROM ev") == [(1, 5)]
    assert [str(json.loads(line)["row"]["id"]) for line in rejects.read_text().splitlines()] == ["2"]


def test_ctrl_c_while_parity_loads_is_one_line() -> None:
    """The audit: a SIGINT while the modules load printed a Python traceback."""

    ready = "import sys; from parity._entry import main; print('ready', file=sys.stderr, flush=True); main()"
    process = subprocess.Popen([sys.executable, "-c", ready, "--help"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stderr is not None
    assert process.stderr.readline() == "ready\n"  # (a signal before Python runs parity is Python's own)
    time.sleep(0.02)  # (the imports main() makes take a third of a second and more)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert (process.returncode, err) == (130, "aborted\n")


def test_a_materialized_view_named_as_a_table_is_said_to_be_a_view(
    parity: Callable[..., Result], target: str, pg_db: Database
) -> None:
    """As a view: it said "table 'mv_acct' not found; did you mean 'acct'" (the audit)."""
    pg_db.sql(
        "CREATE TABLE acct (id INT PRIMARY KEY)", "CREATE MATERIALIZED VIEW mv_acct AS SELECT * FROM acct"
    )
    result = parity("copy", pg_db.url, target, "--source-schema", pg_db.schema, "-t", "mv_acct")
    assert_one_line_error(result, "'mv_acct'", "is a view")


@pytest.mark.serial  # (the binlog position is the server's: another test's writes move it)
def test_sync_full_compares_what_the_binlog_never_saw(
    parity: Callable[..., Result], mariadb_db: Database, sqlite_db: Database
) -> None:
    """A change made with sql_log_bin=0 moves no binlog position: every later sync skipped, though the
    tables differ, and nothing could make it look (the audit). --full compares them."""
    mariadb_db.sql(
        "CREATE TABLE acct (id INT PRIMARY KEY, name VARCHAR(20))",
        "INSERT INTO acct VALUES (1, 'a'), (2, 'b')",
    )
    urls = (mariadb_db.url, sqlite_db.url, "-t", "acct")
    assert parity("copy", *urls).code == 0
    assert parity("sync", *urls).code == 0  # (the position saved)
    with mariadb_db.engine.connect() as conn:  # (one session: sql_log_bin is the session's)
        conn.exec_driver_sql("SET SESSION sql_log_bin = 0")
        conn.exec_driver_sql("UPDATE acct SET name = 'unlogged' WHERE id = 2")
        conn.commit()
    skipped = parity("sync", *urls)
    assert skipped.code == 0 and "has not moved" in skipped.out, skipped
    assert sqlite_db.query("SELECT name FROM acct WHERE id = 2") == [("b",)]
    full = parity("sync", *urls, "--full")
    assert full.code == 0 and "verified" in full.out, full
    assert sqlite_db.query("SELECT name FROM acct WHERE id = 2") == [("unlogged",)]


def test_soft_delete_into_a_table_without_the_column_is_one_line(
    parity: Callable[..., Result], sqlite_db: Database, pg_db: Database
) -> None:
    """--soft-delete COLUMN with a selected target table that lacks the column crashed with
    "unexpected KeyError" (the audit): one line naming the table, before any write."""
    sqlite_db.sql(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)",
        "CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT)",
        "INSERT INTO a VALUES (1, 'x')",
        "INSERT INTO b VALUES (1, 'y')",
    )
    pg_db.sql(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT, gone_at TIMESTAMP)",
        "CREATE TABLE b (id INTEGER PRIMARY KEY, v TEXT)",
        "INSERT INTO a VALUES (2, 'extra', NULL)",
    )
    assert pg_db.schema is not None
    result = parity(
        "sync",
        sqlite_db.url,
        pg_db.url,
        "--target-schema",
        pg_db.schema,
        "-t",
        "a,b",
        "--soft-delete",
        "gone_at",
    )
    assert_one_line_error(result, "--soft-delete gone_at", "target table 'b' has no such column")
    assert pg_db.query("SELECT id, gone_at FROM a") == [(2, None)]
    assert pg_db.query("SELECT COUNT(*) FROM b") == [(0,)]


def _watching(source: Path, target: Path, *options: str) -> subprocess.Popen[str]:
    """A one-row SQLite table copied from ``source`` to ``target``, and `parity sync --watch 0.2` of the
    two running in a process of its own (a signal to it is Ctrl-C)."""
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'a')")
    conn.close()
    urls = [f"sqlite:///{source}", f"sqlite:///{target}"]
    done = subprocess.run(
        [sys.executable, "-m", "parity", "copy", *urls], check=False, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done
    return subprocess.Popen(
        [sys.executable, "-m", "parity", "sync", *urls, "--watch", "0.2", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_sync_watch_syncs_again_until_stopped(tmp_path: Path) -> None:
    """scsc-mysql-sync's users run a continuous one-way sync (auto_sync.py): `sync --watch SECONDS` syncs
    again and again, a line a run, until Ctrl-C; the exit code is the last run's."""
    source, target = tmp_path / "w1.sqlite", tmp_path / "w2.sqlite"
    process = _watching(source, target)
    assert process.stdout is not None
    first = process.stdout.readline()
    assert "sync: 0 inserted, 0 updated, 0 deleted, 0 failed; identical" in first, first
    with sqlite3.connect(source) as conn:
        conn.execute("INSERT INTO t VALUES (2, 'b')")
    conn.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "1 inserted" in line:
            break
    else:
        pytest.fail("the new row was never synced")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert (process.returncode, err.strip().splitlines()[-1]) == (0, "stopped"), err
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT id, v FROM t ORDER BY id").fetchall() == [(1, "a"), (2, "b")]
    conn.close()


def test_sync_summary_names_refused_rows_once_and_counts_the_rest(
    parity: Callable[..., Result], sqlite_db: Database, pg_db: Database
) -> None:
    """The summary printed "r: r {...}" (the table twice) and three refused rows of five, without a
    word of the other two (the audit)."""
    sqlite_db.sql("CREATE TABLE r (id INTEGER PRIMARY KEY, meta JSON)", "INSERT INTO r VALUES (1, '{}')")
    assert pg_db.schema is not None
    urls = (sqlite_db.url, pg_db.url, "--target-schema", pg_db.schema, "-t", "r")
    assert parity("copy", *urls).code == 0
    sqlite_db.sql(*(f"INSERT INTO r VALUES ({n}, 'bad [{n}]')" for n in range(2, 7)))
    result = parity("sync", *urls)
    assert result.code == 2, result
    lines = [line for line in result.out.splitlines() if line.startswith("r: ")]
    assert lines[0].startswith('r: {"id": 2}: meta: ') and "[2]" in lines[0], result.out
    assert lines[3] == "r: and 2 more (--json lists every one)", result.out


def test_sync_watch_json_is_a_json_object_a_run(tmp_path: Path) -> None:
    """`sync --watch --json` printed the text lines, the --json left unsaid (the audit)."""
    process = _watching(tmp_path / "w1.sqlite", tmp_path / "w2.sqlite", "--json")
    assert process.stdout is not None
    first = json.loads(process.stdout.readline())
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert (
        first["ok"] is True and first["verified"] is True and [t["table"] for t in first["tables"]] == ["t"]
    )
