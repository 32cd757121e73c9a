"""The one exception type the CLI turns into a one-line error and a non-zero exit."""

from __future__ import annotations


class AegisError(Exception):
    """A problem with the user's input or environment, explained in one line.

    ``exit_code`` is what the CLI exits with (1 unless a command documents otherwise).
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
