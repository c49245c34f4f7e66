"""Benchmarks: ``linr bench`` (the paper's tables, the default), ``linr bench speed``,
``linr bench stopping``, ``linr bench presets``.

Each part is a module of this package with ``register(parser_or_subparsers)``; the tables module
adds its options to ``linr bench`` itself, the others add a sub-command. Modules import nothing
heavy at module level so that ``linr --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from typing import Any

PARTS = ("tables", "speed", "stopping", "presets")


def register(sub: Any) -> None:
    parser = sub.add_parser("bench", help="benchmarks: paper tables (default), speed, stopping",
                            description=__doc__)
    subs = parser.add_subparsers(dest="bench_command", metavar="PART", parser_class=type(parser))
    subs.required = False
    parser.set_defaults(func=_no_part)
    for name in PARTS:
        module_name = f"{__name__}.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        module.register(parser if name == "tables" else subs)


def _no_part(args: argparse.Namespace) -> int:
    from ..errors import InputError

    raise InputError("no benchmark part is installed")
