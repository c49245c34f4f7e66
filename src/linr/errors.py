"""Exceptions that carry a message meant for the user (the CLI prints them as one line)."""

from __future__ import annotations

__all__ = ["LinrError", "InputError", "DivergenceError"]


class LinrError(Exception):
    """Base class: a problem the user can act on, described in one line."""


class InputError(LinrError, ValueError):
    """Bad input: unreadable file, mismatched sizes, malformed option, non-finite values."""


class DivergenceError(LinrError, RuntimeError):
    """The fit's loss became NaN or infinite; nothing is saved."""
