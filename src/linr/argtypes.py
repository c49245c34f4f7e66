"""Argument types of the command lines (argparse ``type=``): checked numbers, each failing with
one line that names what was expected. At the bottom of the package so that the observation
kinds (:mod:`linr.kinds`), whose options the commands add, and :mod:`linr.cli_common` share them."""

from __future__ import annotations

import argparse
import math
import numbers
from typing import Any

__all__ = ["positive_int", "positive_float", "nonneg_float", "fraction", "is_real"]


def is_real(value: object) -> bool:
    """Whether a Python caller's number is a finite real one (an int or float of any kind, numpy's
    too; not a bool, not a string), checked before it is compared: a researcher's lr='1e-3' raised a
    raw TypeError."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _checked(text: str, cast: Any, ok: Any, kind: str, wanted: str) -> Any:
    """``cast(text)`` when ``ok`` of it, else an argparse error naming what was ``wanted``."""
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _checked(text, int, lambda v: v >= 1, "a positive integer", "a positive integer")


def positive_float(text: str) -> float:
    return _checked(text, float, lambda v: v > 0 and math.isfinite(v), "a number", "a positive number")


def nonneg_float(text: str) -> float:
    return _checked(text, float, lambda v: v >= 0 and math.isfinite(v), "a number", "a number >= 0")


def fraction(text: str) -> float:
    return _checked(text, float, lambda v: 0 < v <= 1, "a number", "a fraction in (0, 1]")
