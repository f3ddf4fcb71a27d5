"""parity: move data between SQL databases and prove both sides identical.

The public API is one function per command; the CLI calls exactly these.
"""

from __future__ import annotations

__version__ = "0.1.0"

from parity.errors import ParityError

__all__ = ["ParityError", "__version__"]
