"""The one exception type for bad user input.

Library code raises `UserInputError` where the cause is something the user gave (a file, a value, a path); the
command line prints its message as one line and exits with code 2. Anything else is a bug and keeps its traceback.
It is a `ValueError`, so callers that catch ValueError for bad values keep working.
"""

from __future__ import annotations


class UserInputError(ValueError):
    """Bad input from the user; the message says what was wrong and what to do."""
