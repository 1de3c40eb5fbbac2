"""The toolkit's one exception type.

Library code raises :class:`CRNNError` for every expected failure (bad input, missing file,
unloadable model). The CLI turns it into one line on stderr and exit code 1; nothing else in
the package calls ``sys.exit``.
"""

from __future__ import annotations

__all__ = ["CRNNError"]


class CRNNError(Exception):
    """An expected, user-facing failure; ``str(err)`` is the one-line message."""
