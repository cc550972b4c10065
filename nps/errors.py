"""User-facing errors.

An :class:`NPSError` carries one line that says what was wrong and how to fix it.
The CLI prints it and exits with status 2; the app shows it with ``st.error``.
"""

from __future__ import annotations


class NPSError(Exception):
    """A problem with the user's input or environment, not a bug.

    The message is a single line: what was wrong, then how to fix it.
    """


class DataMissingError(NPSError):
    """A corpus or weights file is not on this machine."""
