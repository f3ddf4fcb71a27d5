"""A chunk's rows read as COPY text, in this process or in a reader process of its own.

Where rows travel as text (``bulk.TextBatch``), the Python work per value is on the reader's side:
SQLite's values turned into text (``bulk.sqlite_text``), or a source's text parsed into what SQLite
binds (``bulk.SQLiteWriter.parse_text``). In one process that work and the writer's share one
interpreter lock. A reader process (``ProcessReader``) does it beside the writer, on another core: it
connects to the source with the arguments of parity's engine, runs the chunk's compiled statement, and
sends each batch's parsed form back through a socket, which holds little, so memory stays bounded by
the batch size whatever the table.

Reader processes are forked by a small server of parity's own (a Python child running ``_serve``),
started once per process that copies, with parity's modules loaded: a reader starts in milliseconds,
and it is forked from a process with one thread and no connection (not from the copying process,
whose threads and connections a fork would copy), and without running the caller's ``__main__``
again (as multiprocessing's spawn and fork server do). A reader whose copy stops, or whose copying
process dies, meets a closed socket at its next batch and exits; the server exits with its parent.
"""

from __future__ import annotations

import gc
import importlib.util
import marshal
import os
import pickle
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from parity import bulk, log
from parity.errors import ParityError
from parity.schema.types import INTEGER_KINDS, STRING_KINDS, Kind

READ_PROCESSES = (
    os.environ.get("PARITY_READ_PROCESSES", "1") != "0"
    and hasattr(os, "fork")
    and hasattr(socket, "send_fds")
)
"""Whether chunks that travel as text may be read in processes of their own (POSIX; never with
``PARITY_READ_PROCESSES=0``: then every chunk is read on a thread of the copying process)."""


ARROW = importlib.util.find_spec("adbc_driver_sqlite") is not None
"""Whether ADBC's SQLite driver is installed (``arrowtext``; a wheel of it for every platform parity
runs on is not a given): SQLite's rows are then made text in C."""

ARROW_ISO = {
    Kind.DATE: r"\d{4}-\d{2}-\d{2}",
    Kind.TIME: r"\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?",
    Kind.TIMESTAMP: r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?",
}
"""The ISO text of the kinds whose values ``bulk._all_iso`` takes as text (RE2's and Python's ``\\d``
on text of ASCII)."""

ARROW_TEXT_KINDS = frozenset({*STRING_KINDS, *ARROW_ISO})
"""Kinds whose values come through Arrow as strings, which ``SQLite.not_text`` checks first."""

ARROW_KINDS = frozenset({*INTEGER_KINDS, Kind.DECIMAL, *ARROW_TEXT_KINDS})
"""The kinds of a table whose rows may go through Arrow."""

ARROW_LOAD_KINDS = frozenset({*ARROW_KINDS, Kind.DOUBLE, Kind.BOOLEAN, Kind.UUID})
"""The kinds of a table whose COPY text may be loaded into SQLite through Arrow (``LoadSpec``)."""


ROWS_FROM = 50_000
"""A table is read in reader processes from this many rows on: a reader costs a few milliseconds to
start (60 tables of 200 rows: 2.5 s against 2.1 s on threads), which a large table wins back."""


@dataclass(frozen=True)
class ReadSpec:
    """All a reader process needs to read one chunk: plain data, picklable."""

    driver: str
    """The DB-API module: ``sqlite3``, ``psycopg`` or ``MySQLdb`` (mysqlclient)."""
    connect_args: tuple[Any, ...]
    connect_kwargs: dict[str, Any] = field(repr=False)
    """What parity's engine passes to the driver's ``connect`` (password included: the spec goes to
    the reader through a socket, never to a log)."""
    setup: tuple[str, ...]
    """Statements run first: the session's (time zone) and the COPY's."""
    sql: str
    params: Any
    kinds: tuple[Kind, ...]
    batch_size: int
    writer: str
    """The target's writer (a key of ``bulk.WRITERS``), which parses each batch."""
    secrets: tuple[str, ...] = field(default=())
    """Passwords to mask in an error message."""
    scales: tuple[int | None, ...] = ()
    """SQLite: per column, the decimals the target keeps of a decimal it would round (else None)."""
    arrow: bool = False
    """SQLite: read the rows through Arrow first (``arrowtext``), the ``sqlite3`` module where they
    cannot go that way."""
    guard: tuple[str, Any] | None = None
    """SQLite, with ``arrow``: a query (SQL, parameters) that finds a row Arrow would give otherwise
    (``SQLite.not_text``)."""
    load: LoadSpec | None = None
    """Into an SQLite file: the reader loads the chunk itself through Arrow and ADBC, where its text can
    go that way (``LoadSpec``)."""


@dataclass(frozen=True)
class LoadSpec:
    """How a reader process loads its chunk into an SQLite file itself: each batch parsed by Arrow into
    the values SQLite binds (``arrowtext.load_table``) and inserted by ADBC's driver, then the chunk's
    state row, in one transaction it begins once the copy takes the chunk and commits once the copy
    says so (``Loaded``). The copying process never opens the file through ADBC: its SQLite is not the
    ``sqlite3`` module's, and two SQLite libraries in one process do not see each other's locks."""

    path: str
    """The file (absolute), or the ``file:`` URI the user gave."""
    insert: str
    """The INSERT of a parameter a column, names quoted by the dialect."""
    mark: str
    """The chunk's state row's INSERT (``State.mark_chunk_statement``)..."""
    mark_params: tuple[Any, ...]
    mark_rows: int
    """... its parameters, the chunk's rows at this position."""


# ---- the batches, wherever they are read ---------------------------------------------------------


def sqlite_batches(
    cursor: Any, sql: str, params: Any, kinds: Sequence[Kind], size: int, scales: Sequence[int | None] = ()
) -> Iterator[tuple[bytes, int]]:
    """SQLite's rows of ``sql`` as batches of COPY text: (text, rows); a decimal with more decimals
    than its ``scales`` entry (what the target keeps) sends the chunk as values (``AsValues``)."""
    cursor.execute(sql, params)
    while rows := cursor.fetchmany(size):
        try:
            yield bulk.sqlite_text(rows, kinds, scales), len(rows)
        except bulk.NotText as exc:
            raise AsValues(str(exc)) from None


def sqlite_spec_batches(cursor: Any, spec: ReadSpec) -> Iterator[tuple[bytes, int]]:
    """A reader's batches of SQLite's COPY text: through Arrow where the spec allows it and the chunk's
    rows can go that way, else through the ``sqlite3`` module's ``cursor`` (``sqlite_batches``). Where
    Arrow cannot go on after its first batch, ``NotArrow``: the copy writes the chunk again."""
    if spec.arrow:
        from parity import arrowtext

        uri = arrowtext.database_uri(str(spec.connect_args[0]))
        made = arrowtext.batches(
            uri, spec.sql, spec.params, spec.kinds, spec.batch_size, spec.scales, spec.guard
        )
        started = False
        try:
            with closing(made):
                for batch in made:
                    started = True
                    yield batch
            return
        except NotArrow:
            if started:
                raise
    yield from sqlite_batches(cursor, spec.sql, spec.params, spec.kinds, spec.batch_size, spec.scales)


class NotArrow(Exception):
    """Rows that cannot be made text through Arrow (``arrowtext``); the message says why."""


class NotArrowLoad(Exception):
    """A chunk a reader process cannot load into SQLite through Arrow (``LoadSpec``) once it began:
    a later batch Arrow cannot parse into the same values, or one the target refused. The reader rolls
    its transaction back; the copy writes the chunk again through the ``sqlite3`` module, which
    isolates refused rows."""


class Loaded:
    """Rows a reader process loaded into SQLite itself (``LoadSpec``), a batch's; the last of a chunk
    (no rows) carries ``commit``, which tells the reader to commit: the copy decides, so a chunk it
    stopped is never committed behind its back."""

    __slots__ = ("commit", "lines")

    def __init__(self, lines: int, commit: Callable[[], None] | None = None) -> None:
        self.lines = lines
        self.commit = commit

    def __len__(self) -> int:
        return self.lines


class AsValues(Exception):
    """The chunk cannot go as text and is copied as values instead (its message says why)."""


class LineTooLong(AsValues):
    """MySQL gave NULL for a row's line (longer than max_allowed_packet): the chunk goes as values."""

    def __init__(self, message: str = "a row is too long for one line of text") -> None:
        super().__init__(message)


def mysql_line_batches(cursor: Any, sql: str, params: Any, size: int) -> Iterator[tuple[bytes, int]]:
    """MySQL's lines of COPY text (``Dialect.copy_line``, one a row) as batches: (text, rows)."""
    cursor.execute(sql, params)
    while rows := cursor.fetchmany(size):
        lines = [row[0] for row in rows]
        if None in lines:
            raise LineTooLong
        lines.append(b"")
        yield b"\n".join(lines), len(rows)


def copy_batches(raw: Any, sql: str, params: Any, size: int) -> Iterator[tuple[bytes, int]]:
    """PostgreSQL's ``COPY (...) TO STDOUT`` as batches of ``size`` rows, the last of the rest: (text,
    rows). (However many rows arrived together: a batch's rows are the same whatever the network did.)"""
    from parity.pgcopy import copy_out  # (psycopg is imported where PostgreSQL is used)

    pending: list[bytes] = []
    for rows in copy_out(raw, sql, params):
        pending += rows
        while len(pending) >= size:
            yield b"".join(pending[:size]), size
            del pending[:size]
    if pending:
        yield b"".join(pending), len(pending)


# ---- the reader process ----------------------------------------------------------------------------

_BATCH, _DONE, _FAILED, _AS_VALUES, _NOT_ARROW = "batch", "done", "failed", "as values", "not arrow"
_LOADED, _READY, _NOT_ARROW_LOAD = "loaded", "ready", "not arrow load"
_BEGIN, _COMMIT = b"begin", b"commit"  # (the copy's word to a reader that loads: LoadSpec)


class _Server:
    """The fork server: a child process of this one that forks a reader per chunk."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        # this very parity first on the path (not a parity/ of the working directory, as -m would)
        code = "import sys; sys.path[0] = sys.argv[2]; from parity.textread import _serve; _serve(int(sys.argv[1]))"
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code, str(theirs.fileno()), root],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self.control = ours
        self.lock = threading.Lock()

    def fork(self, spec: ReadSpec) -> Connection:
        """A reader for the spec; its batches come on the returned connection."""
        ours, theirs = socket.socketpair()
        try:
            with self.lock:
                socket.send_fds(self.control, [pickle.dumps(spec)], [theirs.fileno()])
        finally:
            theirs.close()
        return Connection(ours.detach())


_server: _Server | None = None
_server_lock = threading.Lock()


def _the_server() -> _Server:
    global _server
    with _server_lock:
        if _server is None or _server.process.poll() is not None:
            _server = _Server()
        return _server


def warm() -> None:
    """Start the fork server now, so that it loads parity while the copy plans its tables."""
    if READ_PROCESSES:
        try:
            _the_server()
        except OSError as exc:  # each chunk is read on a thread instead
            log.logger.info("no reader processes: %s", exc)


class Unavailable(ParityError):
    """No reader process could be started: the chunk is read on a thread."""


class ProcessReader:
    """One chunk read in a reader process: iterate for (rows, parsed) batches; ``close`` stops it."""

    def __init__(self, spec: ReadSpec) -> None:
        self.sql = spec.sql
        self.loads = spec.load is not None
        try:
            self.connection = _the_server().fork(spec)
        except OSError as exc:
            raise Unavailable(f"cannot start a reader process: {exc}") from exc

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        return self.batches()

    def batches(self, stop: threading.Event | None = None) -> Iterator[tuple[int, Any]]:
        """The (rows, parsed) batches; none more once ``stop`` is set (a reader that loads may wait for
        the copy's word, which a copy that stopped never says: ``close`` then ends it)."""
        if self.loads:  # (the chunk is taken: a reader that loads may begin its transaction)
            with suppress(OSError):
                self.connection.send_bytes(_BEGIN)
        while True:
            try:
                while stop is not None and not self.connection.poll(0.1):
                    if stop.is_set():
                        return
                what, rows, payload = marshal.loads(self.connection.recv_bytes())
            except (EOFError, OSError):  # (a reader that died unread: the connection was reset)
                raise ParityError("the reader process ended before its last batch") from None
            if what == _DONE:
                return
            if what == _FAILED:
                raise ParityError(log.redact(payload))  # (the parent knows more secrets than the reader)
            if what == _AS_VALUES:
                raise AsValues(payload)
            if what == _NOT_ARROW:
                raise NotArrow(payload)
            if what == _NOT_ARROW_LOAD:
                raise NotArrowLoad(payload)
            if what == _LOADED:
                yield rows, Loaded(rows)
            elif what == _READY:
                yield 0, Loaded(0, commit=self._commit)
            else:
                yield rows, payload

    def _commit(self) -> None:
        with suppress(OSError):  # (a reader gone: its end is read next)
            self.connection.send_bytes(_COMMIT)

    def close(self) -> None:
        """Stop reading: the reader exits at its next batch (its socket is closed)."""
        self.connection.close()


def _serve(control_fd: int) -> None:
    """The fork server's loop: a reader forked per request, until the parent's socket closes."""
    import sqlite3  # noqa: F401  (loaded once here, not in every reader)

    with suppress(ImportError):
        import parity.pgcopy  # noqa: F401
    if ARROW:
        with suppress(ImportError):  # (pyarrow and ADBC's driver: 0.15 s, once here)
            importlib.import_module("parity.arrowtext")

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # readers are reaped by the system
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C stops the copy, which closes the sockets
    control = socket.socket(fileno=control_fd)
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1 << 20, 1)
        if not message:
            return
        if os.fork() == 0:
            control.close()
            code = 0
            try:
                _read(pickle.loads(message), Connection(fds[0]))
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)


def _read(spec: ReadSpec, out: Connection) -> None:
    """A reader's work: read the chunk and send each batch parsed by the target's writer. A thread sends
    while the next batches are read and parsed, up to ``AHEAD`` of them: a reader started ahead gets
    that far before its chunk's turn."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # a reader lives for one chunk and makes no cycles worth collecting; the collector's passes cost it
    # a tenth of its time (1M rows: PostgreSQL's text parsed for SQLite in 1.10 s against 1.26 s,
    # SQLite's rows read and made text in 2.20 s against 2.33 s)
    gc.disable()
    for secret in spec.secrets:
        log.add_secret(secret)
    writer = bulk.WRITERS[spec.writer]
    ready: queue.Queue[Any] = queue.Queue(maxsize=AHEAD)
    sender = threading.Thread(target=_send, args=(ready, out), daemon=True)
    sender.start()
    try:
        driver = __import__(spec.driver)
        conn = driver.connect(*spec.connect_args, **spec.connect_kwargs)
        if spec.driver == "sqlite3":  # as SQLAlchemy's connections have it, for a --where
            conn.create_function("regexp", 2, _regexp, deterministic=True)
        cursor = loader = None
        try:
            cursor = conn.cursor()
            for statement in spec.setup:
                cursor.execute(statement)
            if spec.driver == "psycopg":
                batches = copy_batches(conn, spec.sql, spec.params, spec.batch_size)
            elif spec.driver == "MySQLdb":
                from MySQLdb.cursors import SSCursor

                cursor.close()
                cursor = conn.cursor(SSCursor)  # unbuffered
                batches = mysql_line_batches(cursor, spec.sql, spec.params, spec.batch_size)
            else:
                batches = sqlite_spec_batches(cursor, spec)
            loader = _Loader(spec, ready, out) if spec.load is not None else None
            for text, rows in batches:
                if loader is not None:
                    try:
                        loader.load(text, rows)
                        continue
                    except NotArrow as exc:
                        if loader.began:  # (rows of it are in the transaction: the copy writes it again)
                            raise NotArrowLoad(str(exc)) from None
                        loader = None  # (none went yet: the chunk goes as the writer's values)
                try:
                    ready.put((_BATCH, rows, writer.parse_text(text, rows, spec.kinds)))
                except bulk.NotText as exc:
                    raise AsValues(str(exc)) from None
            if loader is not None and loader.began:
                loader.finish()
        finally:
            if loader is not None:
                loader.close()  # (rolled back unless committed)
            if (
                cursor is not None
            ):  # (mysqlclient: a result left unread is freed while its connection is open)
                cursor.close()
            conn.close()
    except AsValues as exc:
        ready.put((_AS_VALUES, 0, str(exc)))
    except NotArrow as exc:
        ready.put((_NOT_ARROW, 0, str(exc)))
    except NotArrowLoad as exc:
        ready.put((_NOT_ARROW_LOAD, 0, str(exc)))
    except _Stopped:
        os._exit(0)
    except Exception as exc:  # one line for the parent, which reports it as a failed read
        if "Could not decode to UTF-8" in str(exc):  # (SQLite's text that is no UTF-8: its rows are
            ready.put((_AS_VALUES, 0, first_line(exc)))  # rejected one by one, read as values)
        else:
            ready.put((_FAILED, 0, f"reading the source failed: {log.redact(first_line(exc))}"))
    else:
        ready.put((_DONE, 0, None))
    sender.join()


class _Loader:
    """A reader's load of its chunk into SQLite (``LoadSpec``). The reader's thread parses each batch;
    a thread of the loader's inserts them (ADBC leaves the interpreter lock while SQLite works), and
    says how many rows each held. It begins once the copy has taken the chunk (SQLite's write lock
    is held from then to the commit); the first batch is parsed before."""

    def __init__(self, spec: ReadSpec, ready: queue.Queue[Any], out: Connection) -> None:
        assert spec.load is not None
        self.arrowtext = importlib.import_module("parity.arrowtext")
        self.spec, self.load_spec, self.ready, self.out = spec, spec.load, ready, out
        self.tables: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.thread: threading.Thread | None = None
        self.target: Any = None
        self.failure: BaseException | None = None
        self.rows = 0

    @property
    def began(self) -> bool:
        """Whether a batch went to be inserted (else the chunk may go as the writer's values)."""
        return self.thread is not None

    def load(self, text: bytes, rows: int) -> None:
        table = self.arrowtext.load_table(text, rows, self.spec.kinds)
        if self.thread is None:
            self.thread = threading.Thread(target=self._insert, daemon=True)
            self.thread.start()
        self._hand((table, rows))
        self.rows += rows

    def finish(self) -> None:
        """Once every batch is in: the chunk's state row, the copy's word awaited, the commit."""
        self._hand(None)
        assert self.thread is not None
        self.thread.join()
        if self.failure is not None:
            raise self.failure
        params = list(self.load_spec.mark_params)
        params[self.load_spec.mark_rows] = self.rows
        self.target.execute(self.load_spec.mark, params)
        self.ready.put((_READY, self.rows, None))
        self._await(_COMMIT)
        self.target.commit()

    def close(self) -> None:
        """The transaction rolled back unless committed (a thread still inserting is let finish, a
        second at most; the process's end rolls back what it leaves)."""
        if self.thread is not None and self.thread.is_alive():
            with suppress(queue.Empty):
                while True:  # (the batches not inserted yet are dropped: room for the end)
                    self.tables.get_nowait()
            with suppress(queue.Full):
                self.tables.put_nowait(None)
            self.thread.join(1.0)
        if self.target is not None and (self.thread is None or not self.thread.is_alive()):
            self.target.close()

    def _hand(self, item: Any) -> None:
        while True:
            if self.failure is not None:
                raise self.failure
            try:
                self.tables.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _insert(self) -> None:
        try:
            self._await(_BEGIN)
            self.target = self.arrowtext.SQLiteLoad(self.load_spec.path)
            while (item := self.tables.get()) is not None:
                table, rows = item
                self.target.insert(self.load_spec.insert, table)
                self.ready.put((_LOADED, rows, None))
        except BaseException as exc:  # (the reader's thread raises it)
            self.failure = exc

    def _await(self, word: bytes) -> None:
        try:
            said = self.out.recv_bytes()
        except (EOFError, OSError):
            said = b""
        if said != word:  # (the copy stopped: nothing is committed; the reader ends)
            raise _Stopped


class _Stopped(Exception):
    """The copy closed a loading reader's socket before its word came."""


AHEAD = 3
"""Batches a reader process may have parsed and not yet sent."""


def _send(ready: queue.Queue[Any], out: Connection) -> None:
    """Send each (what, rows, payload) message, marshalled: the payloads are bytes, or lists of plain
    values (str, int, float, None), which marshal reads back faster than pickle (a fifth, on 6M
    values) and writes three times faster."""
    while True:
        item = ready.get()
        try:
            out.send_bytes(marshal.dumps(item))
        except OSError:  # the copy stopped reading (or is gone): nothing more to do here
            os._exit(0)
        except BaseException:  # (a value marshal cannot carry): the copy sees the reader end early
            os._exit(1)
        if item[0] not in (_BATCH, _LOADED, _READY):
            return


def _regexp(pattern: str | None, value: str | None) -> bool | None:
    return None if pattern is None or value is None else re.search(pattern, value) is not None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
