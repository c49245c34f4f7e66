"""FITS as telescopes and astronomy software write it: the image of the primary unit (or, where
that holds none, of the first IMAGE extension), in any of the standard's sample types, with its
scaling (``BSCALE`` / ``BZERO``) and undefined pixels (``BLANK``); its header carried to a FITS
output, with the linear world coordinates (and SIP distortion) scaled to the output's size.

Pillow opens FITS files too, but reads their big-endian samples as little-endian and ignores the
scaling (a 16-bit camera frame comes back byte-swapped, a float one as NaN), so :mod:`linr.images`
reads every FITS file here, by its content.

Rows: FITS stores the bottom row first (the way ds9, astropy's ``origin='lower'`` and Pillow show
it); an image is read top row first, as every other format's, and written back bottom row first,
so a FITS output lies over its input pixel for pixel. A third axis of 3 planes is read as the
colours of one picture (red, green, blue: how Siril and PixInsight store a colour image) unless
its ``CTYPE3`` labels it otherwise; a third axis of another length as that many frames of one
scene (an exposure series, as a TIFF stack). Axes of length 1 beyond those (a radio cube's single
Stokes plane) are not read but kept for the output (:attr:`FitsHeader.more_axes`); more axes are
refused.

This module sits at the bottom beside :mod:`linr.images`, which calls it.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["FitsHeader", "is_fits", "read_fits", "write_fits"]

BLOCK = 2880
"""FITS files are made of blocks of this many bytes (headers of 36 cards of 80 characters)."""
CARD = 80

_SAMPLES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
"""BITPIX -> the stored sample type (big-endian, as the standard says)."""

STRUCTURAL = re.compile(r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|XTENSION|PCOUNT|GCOUNT|BSCALE|BZERO|BLANK|INHERIT|"
                        r"END|CHECKSUM|DATASUM|DATAMIN|DATAMAX|TFIELDS|TFORM\d+|TTYPE\d+|"
                        r"ZIMAGE|ZSIMPLE|ZTENSION|ZBITPIX|ZNAXIS\d*|ZTILE\d+|ZCMPTYPE|ZNAME\d+|ZVAL\d+|"
                        r"ZMASKCMP|ZQUANTIZ|ZDITHER0|ZEXTEND|ZBLOCKED|ZPCOUNT|ZGCOUNT|ZHECKSUM|ZDATASUM|"
                        r"ZSCALE|ZZERO|ZBLANK)$")
"""Header keywords that describe how the samples are stored (written anew for the output), or its
values (stale after a restoration): not carried. (Of the keywords starting with Z, only the
tile-compression convention's: a zero point ``ZP`` or a ``ZENITH`` angle is the scene's.)"""

_SIP = re.compile(r"^(A|B|AP|BP)_(\d+)_(\d+)$")


def history_cards(*lines: str) -> tuple[str, ...]:
    """A HISTORY card of each line; a line longer than a card's 72 characters of text goes on over
    several (never cut)."""
    text = CARD - len("HISTORY ")
    return tuple(f"HISTORY {line[k:k + text]}".ljust(CARD) for line in lines
                 for k in range(0, max(len(line), 1), text))


@dataclass(frozen=True)
class FitsHeader:
    """The header cards of a FITS input that describe what it shows (the object, the instrument,
    the world coordinates...), for a FITS output of the same scene."""

    cards: tuple[str, ...]
    """80-character cards, in the file's order, without the structural ones (:data:`STRUCTURAL`)."""
    size: tuple[int, int]
    """(height, width) of the image the cards describe."""
    more_axes: tuple[int, ...] = ()
    """The input's axes after the two of the image, as an output of one grey image has them (all
    of length 1: a radio map's frequency and Stokes axes, a series' time axis of which one image
    is made), written back so that its world coordinates keep their axes (an output of colours or
    frames fills the first of them)."""

    def with_history(self, *lines: str) -> "FitsHeader":
        """These cards and a HISTORY card of each line (a line longer than a card's 72 characters of
        text goes on over several): what was done to the image (an astronomer's restored file said
        only 'written by linr')."""
        return FitsHeader(self.cards + history_cards(*lines), self.size, self.more_axes)

    def without(self, *keywords: str) -> "FitsHeader":
        """These cards less those of ``keywords`` (e.g. ``BUNIT`` for a map in other units)."""
        kept = tuple(card for key, record in _records(list(self.cards)) if key not in keywords for card in record)
        return FitsHeader(kept, self.size, self.more_axes)

    def number(self, *keywords: str) -> float | None:
        """The value of the first card of one of ``keywords`` (in that order of preference) that
        holds a finite number, or None."""
        for keyword in keywords:
            for card in self.cards:
                if card[:8].strip() == keyword and isinstance(value := _value(card), (int, float)) \
                        and not isinstance(value, bool) and np.isfinite(value):
                    return float(value)
        return None

    def for_size(self, height: int, width: int) -> "FitsHeader":
        """The cards for an output of (height, width) covering the same extent of the sky (pixel
        centres at the same places as a super-resolved or rendered output's): ``CRPIX``,
        ``CDELT``, ``CD`` and ``PC`` and the SIP coefficients scaled so that every world coordinate
        stays where it was; other cards as they are."""
        if (height, width) == self.size:
            return self
        scale = {1: width / self.size[1], 2: height / self.size[0]}  # FITS axis 1 runs along a row
        keys = {card[:8].strip() for card in self.cards}
        cards = tuple(_scaled_card(card, scale, keys) for card in self.cards)
        # an IRAF physical system given in part: the missing half (identity, no offset) scales too
        cards += tuple(_card(f"LTM{i}_{i}", scale[i]) for i in (1, 2) if f"LTV{i}" in keys and f"LTM{i}_{i}" not in keys)
        cards += tuple(_card(f"LTV{i}", 0.5 * (1 - scale[i])) for i in (1, 2)
                       if f"LTV{i}" not in keys and any(re.fullmatch(rf"LTM{i}_\d", k) for k in keys))
        return FitsHeader(cards, (height, width), self.more_axes)


PIXEL_SCALES = ("PIXSCALE", "SECPIX", "SECPIX1", "SECPIX2", "PIXSCAL1", "PIXSCAL2")
"""Keywords of an angle per pixel (common, not in the standard): divided by the scale. (Not
``PLTSCALE``: an angle per millimetre of the focal plane, the optics'.)"""


def _scaled_card(card: str, scale: dict[int, float], keys: set[str]) -> str:
    """``card`` for an image ``scale`` (axis -> factor) times the size over the same extent
    (``keys``: every keyword of the header, to tell a PC matrix with CDELT cards from one without)."""
    key = card[:8].strip()
    value = _value(card)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return card
    value = float(value)
    if (m := re.fullmatch(r"CRPIX(\d)[A-Z]?", key)) and int(m[1]) in scale:
        s = scale[int(m[1])]
        return _card(key, s * (value - 0.5) + 0.5, card)  # the pixel grid's edges stay put
    if (m := re.fullmatch(r"CDELT(\d)[A-Z]?", key)) and int(m[1]) in scale:
        return _card(key, value / scale[int(m[1])], card)
    if (m := re.fullmatch(r"CD(\d)_(\d)[A-Z]?", key)) and int(m[2]) in scale:
        return _card(key, value / scale[int(m[2])], card)
    if (m := re.fullmatch(r"PC(\d)_(\d)([A-Z]?)", key)) and int(m[2]) in scale:
        i, j = int(m[1]), int(m[2])
        if f"CDELT{i}{m[3]}" in keys and i in scale:  # CDELT_i took 1 / s_i
            return _card(key, value * scale[i] / scale[j], card)
        return _card(key, value / scale[j], card)  # CDELT_i stays 1 (absent)
    if m := _SIP.fullmatch(key):
        p, q = int(m[2]), int(m[3])
        axis = 1 if m[1] in ("A", "AP") else 2  # A and AP correct along axis 1, B and BP along axis 2
        return _card(key, value * scale[axis] / (scale[1] ** p * scale[2] ** q), card)
    if (m := re.fullmatch(r"LTM(\d)_(\d)", key)) and int(m[1]) in scale:  # image = LTM physical + LTV
        return _card(key, value * scale[int(m[1])], card)
    if (m := re.fullmatch(r"LTV(\d)", key)) and int(m[1]) in scale:
        s = scale[int(m[1])]
        return _card(key, s * value + 0.5 * (1 - s), card)
    if key in ("A_DMAX", "B_DMAX"):  # the largest SIP correction, in pixels along axis 1 / 2
        return _card(key, value * scale[1 if key == "A_DMAX" else 2], card)
    if key in PIXEL_SCALES:
        axis = 2 if key.endswith("2") else 1
        return _card(key, value / scale[axis], card)
    return card


def _value(card: str) -> "float | int | bool | str | None":
    """A card's value: a number, a logical, a string (quotes removed), or None."""
    if card[8:10] != "= ":
        return None
    text = card[10:].strip()
    if text.startswith("'"):
        m = re.match(r"'((?:[^']|'')*)'", text)
        return None if m is None else m[1].replace("''", "'").rstrip()
    text = text.split("/", 1)[0].strip()
    if text in ("T", "F"):
        return text == "T"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text.replace("D", "E"))
    except ValueError:
        return None


def _card(key: str, value: "float | int | bool | str", old: str | None = None) -> str:
    """One 80-character card (``old``: the card it replaces, whose comment it keeps)."""
    if isinstance(value, bool):
        text = f"{'T' if value else 'F':>20}"
    elif isinstance(value, int):
        text = f"{value:>20d}"
    elif isinstance(value, float):
        text = f"{value:.13G}"
        text = f"{text if any(c in text for c in '.EN') else text + '.':>20}"  # stays a real number
    else:
        text = "'" + value.replace("'", "''").ljust(8) + "'"
    comment = ""
    if old is not None and "/" in old[10:] and not old[10:].lstrip().startswith("'"):
        comment = " /" + old[10:].split("/", 1)[1]
    return f"{key:<8}= {text}{comment}"[:CARD].ljust(CARD)


GZIP = b"\x1f\x8b"


def _records(cards: list[str]) -> list[tuple[str, list[str]]]:
    """Cards as (keyword, cards) records: a card with the CONTINUE cards of its long string after
    it; the keyword of a HIERARCH card is its whole name (``HIERARCH ESO DET CHIP``)."""
    records: list[tuple[str, list[str]]] = []
    for card in cards:
        key = card[:8].strip()
        if key == "CONTINUE" and records:
            records[-1][1].append(card)
            continue
        if key == "HIERARCH":
            key = "HIERARCH " + " ".join(card[8:].split("=", 1)[0].split())
        records.append((key, [card]))
    return records


def _carried(cards: list[str], inherited: list[str]) -> tuple[str, ...]:
    """The cards an output carries: ``inherited`` (the primary header's, for an extension's
    image) without those ``cards`` give again, then ``cards``; structural ones left out."""
    own = [(k, r) for k, r in _records(cards) if not STRUCTURAL.match(k)]
    named = {k for k, _ in own} - COMMENTARY
    above = [(k, r) for k, r in _records(inherited) if not STRUCTURAL.match(k) and k not in named]
    return tuple(card for _, record in above + own for card in record)


def _open(path: Path) -> Any:
    """A FITS file for reading, gzip-compressed (as archives deliver ``.fits.gz``) or not."""
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == GZIP
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def is_fits(path: Path) -> bool:
    """Whether a file is FITS (gzip-compressed or not) by its first card (``SIMPLE  =
    T``), whatever its name."""
    try:
        with _open(path) as fh:
            head = fh.read(CARD)
    except (OSError, EOFError, zlib.error):  # a damaged gzip stream: not read as FITS
        return False
    return head[:9] == b"SIMPLE  =" and head[10:30].strip() == b"T"


def _header(fh: Any, path: Path) -> list[str] | None:
    """The cards of the header unit at the file's position, up to END (the position after it:
    the start of its data); None at the file's end."""
    cards: list[str] = []
    while True:
        block = fh.read(BLOCK)
        if not block and not cards:
            return None
        if len(block) < BLOCK:
            raise InputError(f"{path}: not a readable FITS file (a header ends before its END card)")
        text = block.decode("ascii", "replace")
        for at in range(0, BLOCK, CARD):
            card = text[at:at + CARD]
            if card[:8].strip() == "END":
                return cards
            cards.append(card)


def read_fits(path: Path) -> tuple[list[np.ndarray], list[bool], FitsHeader]:
    """The image of a FITS file: one (H, W, C) array per frame (a third axis of 3 planes is
    colour, of another length frames), top row first: uint8 for unscaled 8-bit data, uint16 for
    16-bit data with ``BZERO`` 32768 (both exact), else float32 (exact for 16-bit and scaled 8-bit
    data and 32-bit floats; 32- and 64-bit integers and 64-bit floats rounded to 24 bits);
    whether each frame has undefined pixels (NaN, or ``BLANK`` in integer data), which then come
    as a last, alpha channel (0 where a sample of the pixel is undefined, whose values are 0:
    transparent, as holes are in other formats); and the header cards it carries."""
    primary: list[str] = []
    with _open(path) as fh:
        while True:
            cards = _header(fh, path)
            if cards is None:
                raise InputError(f"{path}: a FITS file without an image (no unit holds one of two or "
                                 "more axes)")
            keys = {c[:8].strip(): _value(c) for c in cards}
            naxes = [keys.get(f"NAXIS{i}") for i in range(1, int(keys.get("NAXIS") or 0) + 1)]
            if not all(isinstance(n, int) and n >= 0 for n in naxes):
                raise InputError(f"{path}: not a readable FITS file (its NAXISn cards are not counts)")
            size = int(np.prod(naxes)) if naxes else 0
            bitpix = keys.get("BITPIX")
            if bitpix not in _SAMPLES:
                raise InputError(f"{path}: not a readable FITS file (BITPIX {bitpix!r})")
            kind = keys.get("XTENSION")
            if keys.get("ZIMAGE") is True:
                raise InputError(f"{path}: a tile-compressed FITS image is not read here; decompress it "
                                 "first (funpack, or astropy)")
            if (kind in (None, "IMAGE")) and sum(n > 1 for n in naxes) >= 2:
                data = fh.read(size * abs(bitpix) // 8)
                if len(data) < size * abs(bitpix) // 8:
                    raise InputError(f"{path}: not a readable FITS file (its data are cut short)")
                break
            if kind is None:
                primary = cards  # an extension's image is described by the primary header too
            # no image here: skip the data (with a table's heap) to the next unit
            extra = int(keys.get("PCOUNT") or 0) if kind is not None else 0
            nbytes = (size * abs(bitpix) // 8 + extra) * int(keys.get("GCOUNT") or 1) if naxes else 0
            fh.seek(-(-nbytes // BLOCK) * BLOCK, 1)  # forward: a gzip stream decompresses past it
    beyond = [(axis, n) for axis, n in enumerate(naxes[2:], start=3) if n != 1]
    if len(beyond) > 1:
        raise InputError(f"{path}: a FITS image of {len(naxes)} axes {tuple(naxes)}; linr reads two, "
                         "and a third of colours (3) or frames")
    shape = [n for _, n in beyond]
    raw = np.frombuffer(data, dtype=_SAMPLES[bitpix]).reshape(*shape, naxes[1], naxes[0])
    values = _physical(raw, keys, bitpix)  # top row first
    if shape and shape[0] == 3 and _colour_axis(keys.get(f"CTYPE{beyond[0][0]}")):
        frames = [np.moveaxis(values, 0, -1)]
    elif shape:
        frames = [plane[..., None] for plane in values]
    else:
        frames = [values[..., None]]
    frames, holes = zip(*(_with_holes(frame) for frame in frames))
    if any(holes):  # every frame of a file with holes gets an alpha (opaque where it has none)
        frames = tuple(f if h else np.concatenate([f, np.ones_like(f[..., :1])], axis=-1)
                       for f, h in zip(frames, holes))
        holes = (True,) * len(frames)
    inherit = keys.get("XTENSION") is not None and keys.get("INHERIT") is not False
    more = tuple(1 for _ in naxes[2:])  # a single grey output's further axes: of length 1
    return (list(frames), list(holes),
            FitsHeader(_carried(cards, primary if inherit else []), (int(naxes[1]), int(naxes[0])), more))


COMMENTARY = {"COMMENT", "HISTORY", ""}
"""Keywords that may appear many times (an extension's own do not replace the primary's)."""


def _colour_axis(ctype: object) -> bool:
    """Whether a third axis of 3 planes holds colours: unlabelled (as Siril and PixInsight write
    a colour image) or labelled as colour; a labelled time, frequency or Stokes axis holds frames."""
    return ctype is None or (isinstance(ctype, str) and ctype.strip().upper() in ("RGB", "COLOR", "COLOUR"))


def _with_holes(frame: np.ndarray) -> tuple[np.ndarray, bool]:
    """(H, W, C) as it is, or where a sample is NaN (undefined) with those pixels' values 0 and an
    alpha channel after them that is 0 there, 1 elsewhere; and whether it has holes."""
    if frame.dtype.kind != "f":
        return np.ascontiguousarray(frame), False
    undefined = np.isnan(frame).any(axis=-1)
    if not undefined.any():
        return np.ascontiguousarray(frame), False
    values = np.where(undefined[..., None], np.float32(0), frame)
    return np.concatenate([values, (~undefined)[..., None].astype(frame.dtype)], axis=-1), True


PIECE_ROWS_SAMPLES = 1 << 22
"""Samples converted at a time (about 4 million: 32 MB of float64), so that reading a large image
holds its stored bytes and its values, not several full-size temporaries."""


def _physical(raw: np.ndarray, keys: dict[str, object], bitpix: int) -> np.ndarray:
    """The physical values of ``raw`` (..., rows, cols, in the file's order), top row first: a new
    array, converted a few million samples at a time."""
    scale, zero = keys.get("BSCALE", 1.0), keys.get("BZERO", 0.0)
    scale = 1.0 if not isinstance(scale, (int, float)) or isinstance(scale, bool) else float(scale)
    zero = 0.0 if not isinstance(zero, (int, float)) or isinstance(zero, bool) else float(zero)
    blank = keys.get("BLANK") if bitpix > 0 else None
    blank = None if not isinstance(blank, int) or isinstance(blank, bool) else blank
    has_blank = blank is not None and any(bool((piece == blank).any()) for piece in _pieces(raw))
    if not has_blank and scale == 1.0 and (bitpix, zero) in ((8, 0.0), (16, 32768.0)):
        # unscaled bytes, or unsigned 16-bit as cameras write it: exact in their own type
        out = np.empty(raw.shape, np.uint8 if bitpix == 8 else np.uint16)
        convert = (lambda r: r) if bitpix == 8 else (lambda r: (r.astype(np.int32) + 32768))
    else:
        out = np.empty(raw.shape, np.float32)

        def convert(r: np.ndarray) -> np.ndarray:
            values = r.astype(np.float64) * scale + zero
            if has_blank:
                values[r == blank] = np.nan
            return values

    flipped = out[..., ::-1, :]  # bottom row first in the file, top row first here
    rows = max(1, PIECE_ROWS_SAMPLES // max(1, raw.shape[-1]))
    planes = raw.reshape(-1, *raw.shape[-2:])
    targets = flipped.reshape(-1, *raw.shape[-2:])
    for plane, target in zip(planes, targets):
        for top in range(0, plane.shape[0], rows):
            target[top:top + rows] = convert(plane[top:top + rows])
    return out


def _pieces(raw: np.ndarray) -> Any:
    flat = raw.reshape(-1)
    return (flat[at:at + PIECE_ROWS_SAMPLES] for at in range(0, flat.size, PIECE_ROWS_SAMPLES))


def write_fits(path: str | Path, data: np.ndarray, header: FitsHeader | None = None,
               history: str | None = None) -> None:
    """Write one image, ``data`` (H, W, C) with C 1 or 3, or a stack of grey ones (F, H, W, 1),
    uint8, uint16 or float32 (top row first), as a FITS primary unit: BITPIX 8, 16 (with ``BZERO``
    32768) or -32; 3 channels, or F frames, as a third axis; ``header``'s cards after the
    structural ones (scaled to the size by the caller: :meth:`FitsHeader.for_size`), then
    ``history`` as HISTORY cards (:func:`history_cards`)."""
    if data.ndim == 4 and data.shape[3] == 1:  # frames: planes along the third axis, as they are read
        data = np.moveaxis(data[..., 0], 0, -1)
        if data.shape[2] == 3:
            raise ValueError("a stack of 3 grey frames would read back as one colour image")
    elif data.ndim != 3 or data.shape[2] not in (1, 3):
        raise ValueError(f"write_fits needs (H, W, 1), (H, W, 3) or (F, H, W, 1), got {data.shape}")
    h, w, c = data.shape
    if data.dtype == np.uint8:
        bitpix, samples = 8, data
    elif data.dtype == np.uint16:
        bitpix, samples = 16, (data.astype(np.int32) - 32768).astype(np.int16)
    elif data.dtype == np.float32:
        bitpix, samples = -32, data
    else:
        raise ValueError(f"write_fits writes uint8, uint16 or float32, got {data.dtype}")
    planes = np.moveaxis(samples, -1, 0)[:, ::-1, :]  # (C, H, W), bottom row first
    more = header.more_axes if header is not None else ()  # the input's further axes, of length 1 here
    axes = [w, h, *([c, *more[1:]] if c > 1 else more)]
    cards = [_card("SIMPLE", True), _card("BITPIX", bitpix), _card("NAXIS", len(axes))]
    cards += [_card(f"NAXIS{i}", n) for i, n in enumerate(axes, start=1)]
    if bitpix == 16:
        cards += [_card("BZERO", 32768), _card("BSCALE", 1)]
    cards += list(header.cards if header is not None else ())
    if history:
        cards += history_cards(history)
    cards.append("END".ljust(CARD))
    text = "".join(cards)
    body = np.ascontiguousarray(planes).astype(_SAMPLES[bitpix], copy=False).tobytes()
    with open(path, "wb") as fh:
        fh.write(text.ljust(-(-len(text) // BLOCK) * BLOCK).encode("ascii", "replace"))
        fh.write(body)
        fh.write(b"\0" * (-len(body) % BLOCK))
