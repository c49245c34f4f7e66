"""Output into a closed pipe (``linr batch ... | head``): stop printing, keep working, no traceback.

When the reader of a pipe exits, the next write raises BrokenPipeError. Python's documented
recipe (the ``signal`` module's notes on SIGPIPE) is to point the standard stream's file
descriptor at ``os.devnull``, so that nothing, not even the interpreter's final flush, writes to
the dead pipe again. :func:`quiet_broken_pipe` applies it to stdout and stderr for the length of
a command, at the first write that fails, and lets the command carry on: a batch or a benchmark
writes its results to files, which are worth finishing when only the console has gone away.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator

__all__ = ["quiet_broken_pipe", "PipeGuard"]


class PipeGuard:
    """A text stream that turns into a sink (its descriptor on devnull) at the first broken pipe."""

    def __init__(self, stream: Any):
        self._stream = stream
        self.broken = False

    def _silence(self) -> None:
        self.broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._stream.fileno())
            finally:
                os.close(devnull)
        except (OSError, ValueError, AttributeError):  # no real descriptor (captured in tests)
            pass

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._silence()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...
        return getattr(self._stream, name)


@contextlib.contextmanager
def quiet_broken_pipe() -> Iterator[None]:
    """Guard ``sys.stdout`` and ``sys.stderr`` (:class:`PipeGuard`) while the block runs."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = PipeGuard(streams[0]), PipeGuard(streams[1])
    try:
        yield
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        sys.stdout, sys.stderr = streams
