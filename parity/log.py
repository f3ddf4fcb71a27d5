"""Debug logging: levels low/medium/high, a log file, and redaction of every secret parity has seen."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("parity")
logger.addHandler(logging.NullHandler())  # (before ``configure``, or in a library: Python printed errors)

LEVELS = {"low": logging.WARNING, "medium": logging.INFO, "high": logging.DEBUG}
"""``--debug`` levels: low logs warnings and errors, medium every step, high every SQL statement."""

_secrets: set[str] = set()
_lock = threading.Lock()
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-z0-9+]+://[^:/@\s]*:)(?P<pw>\S+?)(?P<tail>@)(?=[^@\s]*(?:$|[\s'\"),]))", re.IGNORECASE
)
"""A URL's password, up to the last '@' of its address (a password may hold a raw '@')."""
PASSWORD_PARAMETERS = frozenset({"password", "passwd", "pwd", "sslpassword"})
_QUERY_PASSWORD = re.compile(
    r"(?P<head>[?&](?:" + "|".join(PASSWORD_PARAMETERS) + r")=)(?P<pw>[^&\s]+)", re.IGNORECASE
)


def add_secret(secret: str | None) -> None:
    """Remember a secret so that it is masked wherever parity prints or logs text."""
    if secret and len(secret) >= 2:
        with _lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    """Mask passwords in URLs and every registered secret."""
    text = _URL_PASSWORD.sub(r"\g<head>***\g<tail>", text)
    text = _QUERY_PASSWORD.sub(r"\g<head>***", text)
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:  # (a whole word only: the password "postgres" left "postgresql" and
            text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(secret)}(?![A-Za-z0-9_])", "***", text)  # "parity"
    return text  # "_parity_discrepancies" as they are, which were "***ql" and "_***_discrepancies")


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def configure(level: str | None, log_file: str | None = None) -> None:
    """Write parity's log to ``log_file`` (default parity-debug.log) at the given level, or not at all."""
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if level is None:
        logger.setLevel(logging.CRITICAL + 1)
        return
    handler = logging.FileHandler(log_file or "parity-debug.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(message)s"))
    handler.addFilter(_RedactingFilter())
    logger.addHandler(handler)
    logger.setLevel(LEVELS[level])
    logger.propagate = False


def sql_enabled() -> bool:
    """True when every SQL statement is to be logged (level high)."""
    return logger.isEnabledFor(logging.DEBUG)


@contextmanager
def timed_sql(statement: str, where: str) -> Iterator[None]:
    """Log a statement parity runs outside SQLAlchemy's events (bulk paths), with its duration."""
    if not sql_enabled():
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        logger.debug("sql %s (%.3fs): %s", where, time.perf_counter() - start, statement)
