"""``linr app``: a local web page to restore images without the command line (extra ``linr[app]``).

This package adds the ``app`` command to the CLI; it imports no web library until the command
runs. :mod:`linr.app.jobs` is the page's logic (uploads, queue, progress, cancel) in plain Python;
:mod:`linr.app.page` is the page, built with Gradio.
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

from ..cli_common import positive_int
from ..errors import InputError

__all__ = ["register", "cmd_app", "MISSING_EXTRA"]

MISSING_EXTRA = "linr app needs Gradio, which is not installed: pip install 'linr[app]'"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "app",
        help="a local web page to restore images (extra linr[app])",
        description="Serve a web page where you upload images, say what each is, restore them and "
        "download the result. It listens on this computer only unless --host says otherwise; "
        "uploads are kept in a private temporary folder, deleted when the page is closed or the "
        "app stops. One fit runs at a time; others wait in a queue.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0 "
                   "lets other machines reach the page)")
    p.add_argument("--port", type=_port, default=7860, help="port (default 7860)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--max-upload-mb", type=positive_int, default=20,
                   help="largest upload accepted, in MB (default 20)")
    p.add_argument("--max-pixels", type=positive_int, default=1024 * 1024,
                   help="largest image, uploaded or restored, in pixels (default 1048576 = 1024x1024)")
    p.set_defaults(func=cmd_app)


def _port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {value}")
    return value


def cmd_app(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("gradio") is None:
        raise InputError(MISSING_EXTRA)
    from .jobs import UploadLimits
    from .page import serve

    limits = UploadLimits(max_bytes=args.max_upload_mb * 1024 * 1024, max_pixels=args.max_pixels)
    serve(args.host, args.port, device=args.device, limits=limits)
    return 0
