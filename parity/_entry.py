"""The ``parity`` command's entry point: it starts what a copy will need in the background before it
loads the command line (SQLAlchemy, Click and Rich take a third of a second)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence


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
    cli_main()


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
