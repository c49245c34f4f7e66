"""Loading a scene from files: the one reader that ``linr restore``, ``linr batch`` and Python
callers share.

    >>> observations, infos, inputs = load_scene({"noisy": "shot.png", "lowres": "small.png"},
    ...                                          {"factor": 4})          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

from .errors import InputError
from .images import ImageInfo, read_image
from .kinds import KINDS

__all__ = ["load_scene"]


def load_scene(files: Mapping[str, str | os.PathLike | None], options: Mapping[str, Any] | None = None,
               *, weights: Mapping[str, float] | None = None, notes: list[str] | None = None,
               ) -> tuple[list[Any], list[ImageInfo], list[str]]:
    """The observations of one scene from image files.

    ``files`` maps a registered kind (:data:`linr.kinds.KINDS`) to its image file (None: not
    given); ``options`` maps the kinds' option names (``factor``, ``mask``, ``kernel``, ...) to
    values (None or absent: the option's default). ``weights`` sets data-term weights per kind.
    Each kind builds its observation from the image and its options (e.g. a masked image whose
    alpha marks its holes is its own mask, and its alpha is dropped from its info). ``notes``
    receives lines for the user (how a mask was read).

    Returns the observations (in the registry's order), each one's
    :class:`~linr.images.ImageInfo` (bit depth, alpha to write back) and every input file read
    (never to be overwritten).
    """
    options = dict(options or {})
    weights = dict(weights or {})
    notes = [] if notes is None else notes
    unknown = [name for name in files if name not in KINDS]
    if unknown:
        raise InputError(f"unknown observation kind(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(KINDS)}")
    observations, infos, inputs = [], [], []
    for kind in KINDS.values():
        path = files.get(kind.name)
        if not path:
            continue
        image, info = read_image(path)
        values = {opt.dest: opt.default if options.get(opt.dest) is None else options[opt.dest]
                  for opt in kind.options}
        obs, extra = kind.build(image, info, values, notes)
        if kind.name in weights:
            obs = dataclasses.replace(obs, weight=weights[kind.name])
        observations.append(obs)
        infos.append(info)
        inputs += [str(path), *extra]
    for kind in weights:
        if not any(o.kind == kind for o in observations):
            raise InputError(f"--weight {kind}=... given without a --{kind} observation")
    if not observations:
        raise InputError("give at least one of " + ", ".join(f"--{name}" for name in KINDS))
    if len({o.channels for o in observations}) > 1:
        raise InputError("observations mix greyscale and colour images; convert them to one kind")
    return observations, infos, inputs
