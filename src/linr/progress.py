"""Progress of long work inside a restoration that is not the fit's steps (a refinement's filter
passes, the networks learnt from a photo's own copies), said to whoever listens: nobody by
default; :func:`listening` sets a listener for the work done inside it (``linr restore`` prints a
line now and then, :func:`linr.tasks.restore` with its ``progress``).

Work says the share of its current piece it has done (:func:`report`, 0 to 1); a caller that
runs several pieces gives each its share of its own (:func:`span`), and names a piece whose time
is its own (:func:`phase`: the listener's share restarts at 0 under a new name). A report costs
a context variable's lookup where nobody listens.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Callable, Iterator

__all__ = ["Listener", "listening", "phase", "span", "report"]

Listener = Callable[[str, float], None]
"""``listener(phase, done)``: the share ``done`` (0 to 1) of the work named ``phase`` ('' for
the work as a whole) is finished."""

# the listener, the current phase's name and the share of it the current piece stands for
_state: ContextVar[tuple[Listener, str, float, float] | None] = ContextVar("linr_progress", default=None)


@contextlib.contextmanager
def listening(listener: Listener | None) -> Iterator[None]:
    """Reports inside go to ``listener`` (None: nowhere)."""
    token = _state.set(None if listener is None else (listener, "", 0.0, 1.0))
    try:
        yield
    finally:
        _state.reset(token)


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Work named ``name``, whose reports inside count from 0 to 1 of it alone."""
    state = _state.get()
    token = _state.set(None if state is None else (state[0], name, 0.0, 1.0))
    try:
        report(0.0)  # the listener hears the phase begin (its pace counts from here)
        yield
    finally:
        _state.reset(token)


@contextlib.contextmanager
def span(start: float, end: float) -> Iterator[None]:
    """Reports inside count as the shares ``start`` to ``end`` of the enclosing piece."""
    state = _state.get()
    if state is None:
        yield
        return
    listener, name, low, high = state
    token = _state.set((listener, name, low + (high - low) * start, low + (high - low) * end))
    try:
        yield
    finally:
        _state.reset(token)


def report(done: float) -> None:
    """The share ``done`` (0 to 1) of the current piece is finished."""
    state = _state.get()
    if state is not None:
        listener, name, low, high = state
        listener(name, low + (high - low) * min(max(float(done), 0.0), 1.0))
