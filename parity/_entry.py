"""The ``parity`` command's entry point: it starts what a copy will need in the background before it
loads the command line (SQLAlchemy, Click and Rich take a third of a second), and it ends the process
without the interpreter's teardown of its modules."""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
from collections.abc import Sequence
from contextlib import suppress
from typing import NoReturn


def main() -> None:
    gc.disable()  # (while the modules load: 175 collections, 55 ms, that find nothing to free)
    try:
        _warm_readers(sys.argv[1:])
        from parity.cli import main as cli_main
    except KeyboardInterrupt:  # (Ctrl-C while the modules load: one line, as later)
        print("aborted", file=sys.stderr)
        sys.exit(130)
    finally:
        gc.enable()
    try:
        cli_main()
    except SystemExit as exc:
        _exit(exc.code)
    _exit(0)


def _exit(code: object) -> NoReturn:
    """End the process as ``sys.exit(code)`` would, less the interpreter's teardown: every module and
    object of SQLAlchemy, pydantic and the drivers freed one by one, which takes 0.1-0.2 s and frees
    nothing the system does not. What a command leaves is closed before it returns (its connections:
    ``Job.close``); the exit handlers (the log's, the thread pools', temporary files') run here, and the
    output is flushed."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # (as Python prints a non-integer exit code)
        sys.stderr.write(f"{code}\n")
        status = 1
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:  # (as Python's exit: threads still running are waited for, thread pools'
        shutdown()  # last work included; what a command leaves is done by then)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):  # (a closed pipe: what was not read is not ours to report)
            stream.flush()
    os._exit(status)


def _warm_readers(args: Sequence[str]) -> None:
    """Start copy's fork server of reader processes (``textread.warm``) now where the command line says
    that a copy may read in them: its Python then loads parity's modules beside this one, and is ready
    when the first chunk is (``copy()`` starts it otherwise, later)."""
    if may_read_in_processes(args):
        from parity import textread

        textread.warm()


def may_read_in_processes(args: Sequence[str]) -> bool:
    """Whether the arguments are a copy that may read in reader processes, as its two URLs alone tell
    (``copy._may_read_in_processes``): from an SQLite file, or from PostgreSQL or MySQL/MariaDB into
    SQLite. A guess only: the copy still decides, and an unused server is one idle process that exits
    with this one."""
    if "copy" not in args:
        return False
    urls = [a for a in args[list(args).index("copy") + 1 :] if "://" in a and not a.startswith("-")]
    if len(urls) < 2:
        return False
    source, target = (url.split("://", 1)[0].split("+", 1)[0].lower() for url in urls[:2])
    database = urls[0].split("://", 1)[1].lstrip("/")
    if source == "sqlite":
        return database not in ("", ":memory:") and "mode=memory" not in database
    return source in ("postgresql", "postgres", "mysql", "mariadb") and target == "sqlite"
