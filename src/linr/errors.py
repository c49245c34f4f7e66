"""Exceptions that carry a message meant for the user (the CLI prints them as one line)."""

from __future__ import annotations

__all__ = ["LinrError", "InputError", "ExistingFileError", "DivergenceError"]


class LinrError(Exception):
    """Base class: a problem the user can act on, described in one line."""

    def command_line_text(self) -> str:
        """The line as the command line says it (the same, unless it names a Python option)."""
        return str(self)


class InputError(LinrError, ValueError):
    """Bad input: unreadable file, mismatched sizes, malformed option, non-finite values."""


class ExistingFileError(InputError):
    """A file to write exists and overwriting was not asked for: ``force=True`` in Python,
    ``--force`` on the command line (:meth:`command_line_text`)."""

    def __init__(self, path: object) -> None:
        self.path = path
        super().__init__(f"{path}: exists (force=True to overwrite)")

    def __reduce__(self) -> tuple[type, tuple[object]]:  # pickled (a worker's error) as made: from its path
        return (type(self), (self.path,))

    def command_line_text(self) -> str:
        return f"{self.path}: exists (use --force to overwrite)"


class DivergenceError(LinrError, RuntimeError):
    """The fit's loss became NaN or infinite; nothing is saved."""
