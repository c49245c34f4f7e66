"""Image files: read to float arrays on [0, 1], write back safely, in the input's units.

Formats: PNG, JPEG, TIFF, BMP, FITS (:mod:`linr.fits`); 8- and 16-bit, and float TIFF and FITS;
greyscale, RGB, and either with alpha; TIFF with any number of channels (fluorescence: 1 to 8 or
more; see :mod:`linr.tiff`).
Pixel data is returned as (H, W, C) float32. Alpha is not restored: it is set aside in
:class:`ImageInfo` and written back unchanged (resized with PIL bicubic when the output size
differs, as in super-resolution). Palette and CMYK images are converted to RGB. A JPEG's or
TIFF's EXIF orientation is applied on reading (the pixels come back upright, as viewers show
them), so the output is written upright with no orientation tag.

Values: the fit works on [0, 1]; a :class:`ValueRange` says how stored values map there and
back. By default uint8 / uint16 map by their type's range (/ 255, / 65535) and floats already on
[0, 1] are taken as they are; floats outside [0, 1] (photon counts, say 0..4000) map from 0 to
their maximum (from their minimum when it is negative: :func:`choose_value_ranges`); a range can
be given (``--range LO:HI``). The output is written back in the input's units wherever the
output keeps the input's sample type (TIFF always; PNG for 8- and 16-bit).

A multi-image TIFF (pages, or an ImageJ / OME time or depth stack) is read by :func:`read_frames`
as one image per frame (a burst of observations); :func:`read_image` refuses it.

Arrays handed to the Python API go through :func:`as_float_image`: integer images are scaled by
their dtype's range (uint8 / 255, uint16 / 65535), as scikit-image's ``img_as_float`` does, and
ambiguous shapes (channels first) are refused.

Writes are atomic (a temporary file in the same folder, then a rename), never replace an
existing file unless ``force=True``, and never replace a file listed in ``protect`` (the inputs)
at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ExistingFileError, InputError
from .fits import FitsHeader, is_fits, read_fits, write_fits
from .tiff import TiffLayout, read_tiff, write_tiff

__all__ = ["ImageInfo", "ValueRange", "StoredImage", "read_image", "read_frames", "read_stored",
           "choose_value_ranges", "parse_value_range", "to_unit", "output_info", "seen_alpha", "read_mask", "write_image",
           "write_frames", "write_atomically", "check_output_path", "check_new_file", "check_writable_folder", "written_bit_depth",
           "keeps_units", "as_float_image", "output_notes", "WRITE_FORMATS", "Density", "is_tiff", "is_fits"]

WRITE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp",
                 ".fits": "fits", ".fit": "fits", ".fts": "fits"}


GIVEN_RANGE_SLACK = 0.5
"""How far past a given range (``--range LO:HI``), as a fraction of it, values are kept: noise
spilling past black or white is data (clipping it would bias the means there); values further out
(a range well inside the data) are clipped to that, within what the fit reads as an image."""


PIECE_VALUES = 1 << 22
"""Samples converted at a time between stored values and the fit's scale, reading
(:meth:`ValueRange.to_unit`) and writing (:func:`_quantise`), and checked for non-finite values
before a write: the float temporaries stay a few tens of MB whatever the image (at 8192 x 8192
RGB, converting the whole image at once took about 5 GB more than the refinement before it when
writing, forty-eighth session, and 1.6 GB of float64 when reading an 8-bit photo, forty-ninth).
Every sample is converted alone, so the result is the same for any piece."""


def _in_pieces(values: np.ndarray, dtype: type, convert: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``convert`` (sample by sample) of ``values`` into a new ``dtype`` array of their shape,
    :data:`PIECE_VALUES` samples at a time."""
    flat = np.ascontiguousarray(values).reshape(-1)
    out = np.empty(flat.shape, dtype)
    for start in range(0, flat.size, PIECE_VALUES):
        piece = slice(start, start + PIECE_VALUES)
        out[piece] = convert(flat[piece])
    return out.reshape(np.shape(values))


@dataclass(frozen=True)
class ValueRange:
    """How stored values map to the [0, 1] scale the fit works on: ``low`` -> 0, ``high`` -> 1,
    linearly (values outside the range map outside [0, 1])."""

    low: float
    high: float
    rule: str
    """'dtype' (an integer type's full range), 'unit' (floats taken as they are), 'data' (from 0,
    or the minimum when negative, to the maximum of the data), 'given' (by the user: values
    more than :data:`GIVEN_RANGE_SLACK` of it beyond it are clipped to that, the noise that spills
    just past it kept), 'bits' (integers that fill a few low bits of their type: 0 to the smallest
    ``2**k - 1`` above the data's maximum, :func:`dim_integer_range`)."""

    def to_unit(self, values: np.ndarray) -> np.ndarray:
        """Stored values -> float32 on the fit's scale (a given range's far outside clipped to
        [-GIVEN_RANGE_SLACK, 1 + GIVEN_RANGE_SLACK])."""
        if (self.low, self.high) == (0.0, 1.0) and self.rule != "given":
            return np.asarray(values, dtype=np.float32)
        return _in_pieces(values, np.float32, self._to_unit)

    def _to_unit(self, values: np.ndarray) -> np.ndarray:
        unit = (np.asarray(values, dtype=np.float64) - self.low) / (self.high - self.low)
        if self.rule == "given":
            unit = np.clip(unit, -GIVEN_RANGE_SLACK, 1.0 + GIVEN_RANGE_SLACK)
        return unit

    def from_unit(self, pixels: np.ndarray) -> np.ndarray:
        """The fit's scale -> stored values (float64)."""
        return np.asarray(pixels, dtype=np.float64) * (self.high - self.low) + self.low

    def describe(self) -> str:
        how = {"dtype": "the sample type's full range", "unit": "taken as they are",
               "data": "0 to the data's maximum" if self.low == 0 else "the data's minimum to maximum",
               "given": "given", "bits": f"the {int(self.high).bit_length()} low bits the data fill"}[self.rule]
        return f"{self.low:g}..{self.high:g} -> [0, 1] ({how})"

    def to_dict(self) -> dict[str, object]:
        return {"low": self.low, "high": self.high, "rule": self.rule}


def parse_value_range(text: str) -> "str | tuple[float, float]":
    """``auto`` or ``LO:HI`` (numbers, LO < HI), as ``--range`` takes it. ValueError if bad."""
    text = text.strip()
    if text == "auto":
        return "auto"
    low_text, sep, high_text = text.partition(":")
    try:
        low, high = float(low_text), float(high_text)
    except ValueError:
        raise ValueError(f"expected auto or LO:HI (numbers), got {text!r}") from None
    if not sep or not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"expected auto or LO:HI with finite LO < HI, got {text!r}")
    return (low, high)


@dataclass(frozen=True)
class Density:
    """An image's pixels per inch, ``x`` across and ``y`` down, and the (height, width) they refer
    to: an output of another size over the same field of view (super-resolution, rendering at
    another scale) keeps the print size, so its density scales with it (:meth:`for_size`)."""

    x: float
    y: float
    size: tuple[int, int]

    def for_size(self, height: int, width: int) -> "Density":
        return Density(self.x * width / self.size[1], self.y * height / self.size[0], (height, width))

    def describe(self) -> list[float]:
        """``[x, y, height, width]`` (a model file's record; :meth:`from_record` reads it back)."""
        return [self.x, self.y, float(self.size[0]), float(self.size[1])]

    @classmethod
    def from_record(cls, record: Any) -> "Density | None":
        try:
            x, y, h, w = (float(v) for v in record)
        except (TypeError, ValueError):
            return None
        return cls(x, y, (int(h), int(w))) if min(x, y, h, w) > 0 else None


@dataclass
class ImageInfo:
    """How an image was stored, so that the output can be stored the same way."""

    path: str
    bit_depth: int
    """8, 16, or 32 for a float image (written back as float32 to TIFF, as 16-bit elsewhere)."""
    channels: int
    """Channels, not counting alpha: 1 (grey), 3 (RGB), or any count from a TIFF."""
    alpha: np.ndarray | None = None
    """(H, W) float32 on [0, 1], or None."""
    value_range: ValueRange | None = None
    """How the stored values map to the pixels' [0, 1] (None: the sample type's default)."""
    tiff: TiffLayout | None = None
    """A TIFF's layout and metadata (None for other formats)."""
    icc_profile: bytes | None = None
    """The file's ICC colour profile (what its colour numbers mean: sRGB, Display P3, Adobe RGB...),
    written into an output that holds one (PNG, JPEG, TIFF), or None."""
    density: Density | None = None
    """The file's pixels per inch (a PNG's pHYs, a JPEG's JFIF density, a BMP's, a TIFF's
    resolution in inches or centimetres), written into every output, scaled to its size; or None."""
    fits: FitsHeader | None = None
    """A FITS input's header cards (object, instrument, world coordinates), for a FITS output
    (scaled to its size); None for other formats."""
    exif: bytes | None = None
    """A photo's EXIF (camera, time, place, exposure: :func:`_exif`), its orientation set upright as
    the pixels are read, written into a JPEG or PNG output; None: none, or a TIFF or FITS input
    (their own tags travel with :attr:`tiff` / :attr:`fits`)."""
    text: dict[str, str] | None = None
    """The file's descriptive text (:func:`_file_text`: a PNG's text chunks, an XMP packet, a JPEG's
    comment, a TIFF's Artist, Copyright, DateTime... tags), written into an output that holds it
    (:func:`write_frames`; what one cannot hold: :func:`dropped_text`); None: none."""
    stored_type: str | None = None
    """The file's sample type where it was read as another (int16, int32... read as float32:
    :attr:`StoredImage.stored_type`), for the note that the output holds float32; None: uint8,
    uint16 or float32 as stored."""
    converted: str | None = None
    """How the file's colours were converted on reading, said in a note (a CMYK JPEG's:
    :func:`_cmyk_as_rgb`); None: read as stored."""


@dataclass
class StoredImage:
    """One image of a file as stored: its values in their own type, before any scaling."""

    values: np.ndarray
    """(H, W, C) in the stored type (uint8, uint16 or float), alpha removed."""
    alpha: np.ndarray | None
    """(H, W) float32 on [0, 1], or None."""
    name: str
    """The file, or ``FILE[i]`` (from 1) for the i-th image of a stack."""
    tiff: TiffLayout | None = None
    icc_profile: bytes | None = None
    density: Density | None = None
    fits: FitsHeader | None = None
    exif: bytes | None = None
    stored_type: str | None = None
    """The sample type in the file where :attr:`values` hold another (float64, int16, int32... read
    as float32), for what is said of it; None: ``values.dtype``."""
    text: dict[str, str] | None = None
    """The file's descriptive text (:attr:`ImageInfo.text`)."""
    converted: str | None = None
    """How its colours were converted on reading (:attr:`ImageInfo.converted`)."""

    @property
    def type_name(self) -> str:
        """The file's sample type, as said to the user."""
        return self.stored_type or str(self.values.dtype)


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as fh:
        head = fh.read(26)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 25:
        return head[24]
    return 8


def _read_png16(path: Path) -> np.ndarray:
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    data = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return data.reshape(height, width, planes)


def _from_pil(img: Image.Image, bits: int = 8) -> np.ndarray:
    """A Pillow image's pixels as an array of its stored type (``bits``: a PNG's bit depth, for
    a 2- or 4-bit grey one's transparent value)."""
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB")
    elif img.mode in ("1", "L", "RGB") and isinstance(img.info.get("transparency"), (int, tuple)):
        return _with_keyed_alpha(img, bits)
    elif img.mode == "CMYK" or img.mode == "YCbCr":
        img = img.convert("RGB")
    elif img.mode == "1":
        img = img.convert("L")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img).astype(np.int64)
        if arr.max(initial=0) > 65535 or arr.min(initial=0) < 0:
            raise InputError("unsupported 32-bit integer image")
        return arr.astype(np.uint16)
    if img.mode == "F":
        return np.asarray(img, dtype=np.float32)
    if img.mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGB")
    return np.asarray(img)


def _with_keyed_alpha(img: Image.Image, bits: int) -> np.ndarray:
    """(H, W, C + 1) uint8: a grey or RGB PNG whose tRNS chunk names one colour as transparent,
    with the alpha that marks its pixels (Pillow's own conversion misses a 1-bit image's, and
    Pillow scales 2- and 4-bit grey to 0-255 but not that colour)."""
    key = img.info["transparency"]
    pixels = np.asarray(img.convert("L") if img.mode == "1" else img)  # 1-bit: 0 / 255, as its key
    if img.mode == "L" and bits < 8:
        key = key * (255 // (2 ** bits - 1))
    pixels = pixels.reshape(*pixels.shape[:2], -1)
    opaque = np.any(pixels != np.asarray(key).reshape(-1), axis=-1)
    return np.dstack([pixels, np.where(opaque, 255, 0).astype(np.uint8)])


ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")
"""Formats whose frames (an animated GIF, PNG or WebP) are read as a stack of images, as a TIFF's
pages are; other formats give their first image."""


def _animation_frames(img: Image.Image) -> list[np.ndarray]:
    """Every frame of an animation, as shown (Pillow composes each over the ones before; an APNG's
    default image, when it is not a frame, left out), all in one mode: colour if any frame is,
    with alpha if any frame has it."""
    from PIL import ImageSequence

    frames = [frame.copy() for frame in ImageSequence.Iterator(img)]
    if img.format == "PNG" and img.info.get("default_image"):  # an APNG's still, not one of its frames
        frames = frames[1:]
    arrays = [_from_pil(frame) for frame in frames]
    channels = {a.shape[2] if a.ndim == 3 else 1 for a in arrays}
    if len(channels) > 1:  # a palette first frame read as RGB, later ones as RGBA; grey + alpha beside RGB
        colour, alpha = any(c >= 3 for c in channels), any(c in (2, 4) for c in channels)
        mode = ("RGB" if colour else "L") + ("A" if alpha else "")
        arrays = [np.asarray(frame.convert(mode)) for frame in frames]
    if img.format == "WEBP" and all(a.ndim == 3 and a.shape[2] == 4 and (a[..., 3] == 255).all() for a in arrays):
        arrays = [a[..., :3] for a in arrays]  # Pillow decodes an animated WebP as RGBA, opaque or not
    return arrays


def read_image(path: str | os.PathLike, *, value_range: "str | tuple[float, float] | None" = None
               ) -> tuple[np.ndarray, ImageInfo]:
    """Read an image file. Returns ``(pixels, info)``: pixels (H, W, C) float32, on [0, 1] for
    values inside the range (``value_range``: None for the default rule, 'auto' or (LO, HI); see
    :func:`choose_value_ranges`). A multi-image TIFF (a stack) is refused here; :func:`read_frames`
    reads one. A FITS file's undefined pixels (NaN, BLANK) come as ``info.alpha`` 0, their values
    0: :func:`write_image` given ``alpha=info.alpha`` writes them back as NaN in a float FITS."""
    path = Path(path)
    stored = read_stored(path)
    check_one_image(path, stored)
    (vr,) = choose_value_ranges(stored, value_range)
    return to_unit(stored[0], vr)


def undefined_pixels(image: "ImageInfo | StoredImage") -> np.ndarray | None:
    """Where a FITS image's pixels are undefined (NaN, BLANK: :func:`linr.fits.read_fits` gives
    them as alpha 0; FITS has no alpha of its own), as an (H, W) bool map; None where none is
    (another format, or a frame of a series whose other frames have holes)."""
    if image.fits is None or image.alpha is None:
        return None
    undefined = image.alpha < 0.5
    return undefined if undefined.any() else None


def refuse_undefined(image: "ImageInfo | StoredImage", name: str, why: str) -> None:
    """A one-line error when ``image`` has undefined pixels (:func:`undefined_pixels`): their
    count, and ``why`` they cannot be taken."""
    undefined = undefined_pixels(image)
    if undefined is not None:
        raise InputError(f"{name}: {int(np.count_nonzero(undefined))} of its pixels are undefined (NaN or "
                         f"BLANK); {why}")


def check_one_image(path: str | os.PathLike, stored: Sequence[Any]) -> None:
    """A one-line error when a file read where one image is expected holds several (a multi-image
    TIFF's pages or an animation's frames)."""
    if len(stored) > 1:
        kind = "a TIFF stack" if is_tiff(Path(path)) else "an animation"
        raise InputError(f"{path}: {kind} of {len(stored)} images where one image is expected")


def read_frames(path: str | os.PathLike, *, value_range: "str | tuple[float, float] | None" = None
                ) -> list[tuple[np.ndarray, ImageInfo]]:
    """Every image of a file as :func:`read_image` returns one: one for most files, one per
    image of a multi-image TIFF (its pages, or the planes of a stacked series such as ImageJ's
    time or depth axis); those frames are named ``FILE[i]`` (from 1) in their info and messages.
    One value range serves every frame of the file."""
    stored = read_stored(path)
    return [to_unit(s, vr) for s, vr in zip(stored, choose_value_ranges(stored, value_range))]


def existing_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path, or a one-line error when it is missing or a folder (``what``: the kind
    of file expected, e.g. 'an image file')."""
    path = check_name_length(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not {what}")
    return path


NAME_MAX = 255
"""The longest file or folder name, in bytes, where the file system does not say (Linux's and
macOS's)."""


def name_limit(folder: str | os.PathLike) -> int:
    """The longest file name, in bytes, that the file system of ``folder`` allows (where it
    exists; else that of the current folder; :data:`NAME_MAX` where neither says)."""
    for place in (Path(folder), Path(".")):
        try:
            limit = os.pathconf(place, "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):  # missing, no pathconf (Windows) or no answer
            continue
        if limit > 0:
            return limit
    return NAME_MAX


def check_name_length(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or a one-line error when a name in it is longer than the file system
    allows (:func:`name_limit`), where the system would refuse it only when the file is opened."""
    path = Path(path)
    limit = name_limit(path.parent)
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > limit:
            raise InputError(f"{path}: the name {_shortened(part)} is {size} bytes long; this file system "
                             f"allows {limit}")
    return path


def name_with_room(name: str, room: int) -> str:
    """``name``, or where it is longer than ``room`` bytes (a file named after another, such as a
    temporary file or a tile folder beside an output, adding to its name): its start and a digest
    of the whole name, so that two long names with one start stay apart, in ``room`` bytes."""
    raw = os.fsencode(name)
    if len(raw) <= room:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:8]
    return raw[:max(room - 9, 0)].decode("utf-8", "ignore") + "~" + digest  # a character cut in two: left out


def _shortened(name: str, keep: int = 24) -> str:
    """``name`` quoted, its middle left out when it is long (for a message)."""
    return repr(name) if len(name) <= 2 * keep else repr(name[:keep] + "..." + name[-keep:])


def read_stored(path: str | os.PathLike) -> list[StoredImage]:
    """The images of a file in their stored type (one, or one per image of a TIFF stack)."""
    with warnings.catch_warnings():  # Pillow's on a corrupt EXIF: the pixels are read all the same
        warnings.filterwarnings("ignore", message="Corrupt EXIF", category=UserWarning)
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)  # a large scan: said if refused
        before = Image.MAX_IMAGE_PIXELS  # Pillow's, or a program's that imports linr: left as it was
        limit = pillow_pixel_limit()
        if limit is not None:
            Image.MAX_IMAGE_PIXELS = None if limit == 0 else limit / 2  # Pillow refuses above twice its count
        try:
            return _read_stored(existing_file(path, "an image file"))
        finally:
            Image.MAX_IMAGE_PIXELS = before


MAX_PIXELS_VARIABLE = "LINR_MAX_PIXELS"
"""The environment variable that sets the most pixels an image read through Pillow (PNG, JPEG,
BMP, WebP, GIF...) may have: Pillow's guard against decompression bombs (a small file that
unpacks to gigabytes) refuses twice its 89.5-megapixel warning, 179 megapixels, by default; a
TIFF or FITS is read without it."""


def pillow_pixel_limit() -> int | None:
    """The most pixels an image read through Pillow may have as :data:`MAX_PIXELS_VARIABLE` sets it
    (0: no limit), or None where it is not set (Pillow's own limit: twice its ``MAX_IMAGE_PIXELS``,
    89,478,485 unless the program that imports linr set another)."""
    given = os.environ.get(MAX_PIXELS_VARIABLE, "").strip()
    if not given:
        return None
    try:
        count = int(float(given))
    except (ValueError, OverflowError):
        raise InputError(f"{MAX_PIXELS_VARIABLE}={given!r} is not a pixel count (such as 400000000, or 0 for no "
                         "limit)") from None
    return max(count, 0)


def _too_many_pixels(path: Path, exc: Exception) -> str:
    """The one-line refusal of an image above :func:`pillow_pixel_limit` (its size, the limit, how to raise it)."""
    import re

    found = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", str(exc))
    size = f"{int(found.group(1)) / 1e6:.3g} megapixels" if found else "its size"
    limit = f", {int(found.group(2)) / 1e6:.3g} megapixels" if found else ""
    return (f"{path}: {size} is above the most read from this format{limit} (Pillow's guard against decompression "
            f"bombs); {MAX_PIXELS_VARIABLE}=N sets another (0: no limit; a TIFF is read without it)")


def _read_stored(path: Path) -> list[StoredImage]:
    try:
        layout, turned, header, exif = None, False, None, None  # turned: read through EXIF orientation (its density turns too)
        converted = None
        if is_tiff(path):  # by its content, not its name: a PNG named .tif is read as a PNG
            arrays, alphas, layout = read_tiff(path)
        elif is_fits(path):  # before Pillow, which reads FITS samples byte-swapped
            arrays, alphas, header = read_fits(path)  # undefined pixels as transparent ones
        elif _png_bit_depth(path) == 16 and not is_animation(path):
            arrays, alphas = [_read_png16(path)], [None]
        else:
            from PIL import ImageOps

            with Image.open(path) as img:
                img.load()
                if img.format in ANIMATED_FORMATS and getattr(img, "n_frames", 1) > 1:
                    arrays = _animation_frames(img)
                else:  # one image (an MPO's second picture, a camera's preview, is not read)
                    upright, converted = _cmyk_as_rgb(ImageOps.exif_transpose(img))
                    arrays, turned = [_from_pil(upright, _png_bit_depth(path))], True
                    exif = _exif(img)
                alphas = [None] * len(arrays)
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(_too_many_pixels(path, exc)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:  # EOFError: a cut gzip
        raise InputError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from exc
    except Exception as exc:  # decoders raise many kinds of errors on corrupt files
        raise InputError(f"{path}: not a readable image ({exc.__class__.__name__})") from exc
    names = [str(path)] if len(arrays) == 1 else [f"{path}[{i}]" for i in range(1, len(arrays) + 1)]
    profile, density = _icc_profile(path), _density(path, layout, arrays[0].shape[:2], turned)
    text = _file_text(path)
    return [dataclasses.replace(_stored(arr, alpha, name, layout), icc_profile=profile, density=density,
                                fits=header, exif=exif, text=text, converted=converted)
            for arr, alpha, name in zip(arrays, alphas, names)]


def _cmyk_as_rgb(img: Image.Image) -> tuple[Image.Image, str | None]:
    """A CMYK image (a print file's JPEG) as RGB, and how it was converted (None: not CMYK): through
    its embedded colour profile to sRGB (ImageCms, perceptual intent), or, without one (or one that
    cannot be used), by Pillow's plain formula, whose colours a print profile would have shifted."""
    if img.mode != "CMYK":
        return img, None
    profile = img.info.get("icc_profile")
    if profile:
        try:
            import io

            from PIL import ImageCms

            rgb = ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(profile)),
                                            ImageCms.createProfile("sRGB"), outputMode="RGB")
            if rgb is not None:
                return rgb, "CMYK converted to sRGB through its colour profile"
        except Exception:  # noqa: BLE001 - a profile Little CMS cannot use: the plain formula, said
            pass
    why = "its colour profile could not be used" if profile else "it has no colour profile"
    return img.convert("RGB"), (f"CMYK converted to RGB by the plain formula ({why}: a print file's colours may "
                                "shift; convert it to RGB with its profile first)")


XMP_KEY = "XML:com.adobe.xmp"
"""The key of an XMP packet in :attr:`ImageInfo.text` (a PNG's iTXt keyword for it)."""

TIFF_TEXT_TAGS = {"DocumentName": 269, "Make": 271, "Model": 272, "DateTime": 306, "Artist": 315,
                  "HostComputer": 316, "Copyright": 33432}
"""A TIFF's text tags carried to a TIFF or PNG output (by name; its ImageDescription travels with
its layout, :class:`linr.tiff.TiffLayout`; Software names the writer, not the picture)."""

TIFF_XMP_TAG = 700

TEXT_SYNONYMS = {"Author": "Artist"}
"""PNG keywords written into a TIFF output as the TIFF tag of that name."""


def _file_text(path: Path) -> dict[str, str] | None:
    """A file's descriptive text by key, or None where it has none: a PNG's text chunks (tEXt,
    zTXt, iTXt by their keywords, an XMP packet among them as :data:`XMP_KEY`), a JPEG's, WebP's or
    GIF's XMP packet and comment (``Comment``), a TIFF's :data:`TIFF_TEXT_TAGS` and XMP; never an
    error (the pixels were read)."""
    text: dict[str, str] = {}
    try:
        if is_tiff(path):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                tags = tif.pages.first.tags
                for name, code in TIFF_TEXT_TAGS.items():
                    if code in tags and (value := _as_text(tags[code].value)):
                        text[name] = value
                if TIFF_XMP_TAG in tags and (value := _as_text(tags[TIFF_XMP_TAG].value)):
                    text[XMP_KEY] = value
        elif not is_fits(path):
            with Image.open(path) as img:
                if img.format == "PNG":
                    text.update(_png_text(path))
                for key, name in (("xmp", XMP_KEY), ("XML:com.adobe.xmp", XMP_KEY), ("comment", "Comment")):
                    if name not in text and (value := _as_text(img.info.get(key))):
                        text[name] = value
    except Exception:  # noqa: BLE001 - text is kept where it can be read; the image was read
        return None
    return text or None


def _png_text(path: Path) -> dict[str, str]:
    """A PNG's text chunks (tEXt, zTXt, iTXt) by keyword, read by walking its chunks (Pillow's
    ``text`` decodes the whole image again to find those after the pixels); a compressed value
    larger than 16 MB unpacked, or a chunk that cannot be read, is left out."""
    found: dict[str, str] = {}
    with open(path, "rb") as fh:
        fh.read(8)
        while len(head := fh.read(8)) == 8:
            length, kind = struct.unpack(">I4s", head)
            if kind not in (b"tEXt", b"zTXt", b"iTXt"):
                fh.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
                if kind == b"IEND":
                    break
                continue
            data = fh.read(length)
            fh.seek(4, os.SEEK_CUR)
            keyword, _, rest = data.partition(b"\x00")
            try:
                if kind == b"tEXt":
                    value = rest.decode("latin-1")
                elif kind == b"zTXt":  # compression method, then the deflated Latin-1 text
                    value = _inflated(rest[1:]).decode("latin-1")
                else:  # compression flag and method, language, translated keyword, UTF-8 text
                    flag, body = rest[0], rest[2:]
                    body = body.split(b"\x00", 2)[2]
                    value = (_inflated(body) if flag else body).decode("utf-8")
            except (IndexError, ValueError, zlib.error):  # ValueError: UnicodeDecodeError, or too long unpacked
                continue
            if (text := _as_text(value)) is not None:
                found[keyword.decode("latin-1")] = text
    return found


def _inflated(data: bytes, most: int = 16 << 20) -> bytes:
    """Deflated ``data`` unpacked, or a ValueError where it unpacks to more than ``most`` bytes."""
    unpack = zlib.decompressobj()
    out = unpack.decompress(data, most)
    if not unpack.eof:
        raise ValueError(f"more than {most} bytes unpacked")
    return out


def _as_text(value: Any) -> str | None:
    """A text value (str, or bytes as UTF-8 or else Latin-1) without trailing NULs, or None when empty."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    value = value.rstrip("\x00")
    return value if value.strip() else None


EXIF_OF_THE_FILE = (0x0100, 0x0101, 0x0102, 0x0103, 0x0106, 0x0111, 0x0115, 0x0116, 0x0117, 0x011C, 0x0201, 0x0202,
                    0x011A, 0x011B, 0x0128)
"""IFD0 tags that describe a file's own encoding (size, samples, strips, a JPEG's offsets) or its
resolution (which linr writes from :attr:`ImageInfo.density`, scaled to the output), not the
photo: left out of the EXIF carried to an output (:func:`_exif`)."""

JPEG_EXIF_MOST = 65533 - 256
"""The most bytes of EXIF a JPEG output gets: its APP1 segment holds 65533, less room for the
tags :func:`exif_for` adds; a longer one (a PNG's or WebP's) loses its maker note, or is not
written and said (:func:`dropped_exif`)."""

EXIF_SUB_IFDS = (0x8769, 0x8825)
"""The EXIF and GPS IFDs, read so that they are written again."""


def _load_sub_ifds(exif: Any) -> None:
    """Read an ``Image.Exif``'s :data:`EXIF_SUB_IFDS` where it has them: Pillow writes only the
    sub-IFDs it has read."""
    for ifd in EXIF_SUB_IFDS:
        if ifd in exif:
            exif.get_ifd(ifd)


def _exif(img: Any) -> bytes | None:
    """A photo's EXIF as bytes to write into an output (Pillow's ``exif=``), or None (none, or one
    that cannot be read: only metadata). Its orientation is set upright (the pixels are read
    turned as it says) and its thumbnail, a picture of the input, is not kept."""
    try:
        exif = img.getexif()
        if not len(exif):
            return None
        _load_sub_ifds(exif)
        for tag in EXIF_OF_THE_FILE:
            exif.pop(tag, None)
        if 0x0112 in exif:
            exif[0x0112] = 1
        data = exif.tobytes()
        return data if len(data) > 8 else None
    except Exception:  # noqa: BLE001 - only metadata
        return None


def exif_for(exif: bytes | None, height: int, width: int, *, most: int | None = None) -> Any:
    """``exif`` (:attr:`ImageInfo.exif`) for an output of ``height`` x ``width`` pixels as a Pillow
    ``Image.Exif``: its pixel size tags (0xA002 / 0xA003) set to that size, the software that wrote
    it named; None where there is none or it cannot be read, or where it is longer than ``most``
    bytes even without its maker note (:data:`JPEG_EXIF_MOST`)."""
    if not exif:
        return None
    from . import __version__

    try:
        out = Image.Exif()
        out.load(exif)
        _load_sub_ifds(out)
        if 0x8769 in out and {0xA002, 0xA003} & set(sub := out.get_ifd(0x8769)):
            sub[0xA002], sub[0xA003] = int(width), int(height)
        out[0x0131] = f"linr {__version__}"
        if most is not None and len(out.tobytes()) > most:
            if 0x8769 in out:
                out.get_ifd(0x8769).pop(0x927C, None)  # the maker note: a camera maker's own, often most of it
            if len(out.tobytes()) > most:
                return None
        return out
    except Exception:  # noqa: BLE001 - only metadata
        return None


def profile_for(icc_profile: bytes | None, channels: int) -> bytes | None:
    """``icc_profile`` when its colour space (header bytes 16-20) is that of an output of
    ``channels`` colour channels (RGB for 3, grey for 1), else None: a CMYK photo's profile does
    not describe the RGB it was converted to, nor any profile a 2- or 5-channel TIFF."""
    space = icc_profile[16:20] if icc_profile and len(icc_profile) >= 20 else None
    return icc_profile if (channels, space) in ((3, b"RGB "), (1, b"GRAY")) else None


def is_animation(path: Path) -> bool:
    """Whether the file is read as several frames (:data:`ANIMATED_FORMATS`: an animated GIF, PNG
    or WebP, such as an APNG, whose 16-bit frames pypng does not read); other formats give their
    first image (:func:`read_stored`)."""
    with Image.open(path) as img:
        return img.format in ANIMATED_FORMATS and getattr(img, "n_frames", 1) > 1


def is_tiff(path: Path) -> bool:
    """Whether a file is a TIFF (or BigTIFF) by its first bytes, whatever its name."""
    with open(path, "rb") as fh:
        return fh.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def quarter_turned(path: str | os.PathLike) -> int | None:
    """The EXIF orientation (5 to 8) of a photo read turned a quarter (its stored width its height as
    read: :func:`read_stored` applies it), or None (none, another orientation, not a photo Pillow reads)."""
    try:
        with Image.open(path) as img:
            orientation = img.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - only for what is said
        return None
    return orientation if orientation in (5, 6, 7, 8) else None


def is_jpeg(path: str | os.PathLike) -> bool:
    """Whether a file is a JPEG by its first bytes, whatever its name (a PNG named .jpg is not; a
    JPEG named .png or .jfif is); False where ``path`` names no file (a stack's frame, FILE[k])."""
    try:
        with open(path, "rb") as fh:
            return fh.read(3) == b"\xff\xd8\xff"
    except OSError:
        return False


def _icc_profile(path: Path) -> bytes | None:
    """A file's embedded ICC colour profile (a TIFF's InterColorProfile tag, the others' as Pillow
    reads it), or None; never an error (the pixels were read)."""
    try:
        if is_tiff(path):
            import tifffile

            with tifffile.TiffFile(str(path)) as tif:
                tag = tif.pages[0].tags.get(34675)
                value = None if tag is None else tag.value
        else:
            with Image.open(path) as img:
                value = img.info.get("icc_profile")
    except Exception:  # noqa: BLE001 - only metadata
        return None
    return bytes(value) if isinstance(value, (bytes, bytearray)) and value else None


def _density(path: Path, layout: TiffLayout | None, size: tuple[int, int], turned: bool = False) -> Density | None:
    """A file's pixels per inch for its images of ``size`` (H, W) as shown: a TIFF's resolution
    tags in inches or centimetres, the others' as Pillow reads them (``turned``: the pixels were
    turned by the EXIF orientation, and so is the density); a JPEG's only from its JFIF density
    in inches or cm or its EXIF resolution (Pillow says 72 for an EXIF block without one); None
    when absent, unitless or not positive. Never an error."""
    try:
        if layout is not None:
            per_unit = {2: 1.0, 3: 2.54}.get(layout.resolution_unit or 2)  # the tag's default: inch
            if layout.resolution is None or per_unit is None:
                return None
            x, y = (float(v) * per_unit for v in layout.resolution)
        else:
            with Image.open(path) as img:
                dpi = img.info.get("dpi")
                if dpi is None:
                    return None
                x, y = (float(v) for v in dpi)
                exif = img.getexif()
                if img.format == "JPEG" and img.info.get("jfif_unit") not in (1, 2) and 0x011A not in exif:
                    return None  # no resolution stored: Pillow's default
                if turned and exif.get(0x0112) in (5, 6, 7, 8):  # a quarter turn: across becomes down
                    x, y = y, x
    except Exception:  # noqa: BLE001 - only metadata
        return None
    if not (np.isfinite([x, y]).all() and x > 0 and y > 0):
        return None
    return Density(x, y, (int(size[0]), int(size[1])))


def _stored(arr: np.ndarray, has_alpha: bool | None, name: str, layout: TiffLayout | None) -> StoredImage:
    """Check one image's layout and type; split off alpha (``has_alpha`` None: the last of 2 or 4
    channels, as PNG stores it)."""
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[..., None]
    if has_alpha is None:
        has_alpha = arr.ndim == 3 and arr.shape[2] in (2, 4)
    if arr.ndim != 3 or arr.shape[2] < 1 + int(has_alpha):
        raise InputError(f"{name}: unsupported image layout {arr.shape} (need (H, W) or (H, W, C))")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{name}: image has zero size")
    stored_type = None if arr.dtype in (np.uint8, np.uint16, np.float32) else str(arr.dtype)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32, copy=False)
        if not np.isfinite(arr).all():  # NaN marks undefined pixels (a FITS file's BLANK ones too)
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise InputError(f"{name}: image contains non-finite values ({bad} of {arr.size} samples are "
                             "NaN or infinite: undefined pixels); a FITS file's NaN are taken as missing pixels, "
                             "not this format's: save it as FITS, mark them transparent (an alpha channel), or "
                             "fill them first")
    elif arr.dtype.kind in "iu" and arr.dtype not in (np.uint8, np.uint16):
        # signed or 32-bit integers (a background-subtracted int16 micrograph): read as float32,
        # exactly (up to 2**24 in magnitude), so mapped and written back as a float photo is
        if arr.dtype.itemsize > 2 and arr.size and int(np.abs(arr.astype(np.int64)).max()) > 2**24:
            raise InputError(f"{name}: {arr.dtype} values beyond 2**24 (16777216) in magnitude, which float32 "
                             "cannot hold exactly; scale them first")
        arr = arr.astype(np.float32)
    elif arr.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{name}: unsupported pixel type {arr.dtype} (use uint8, uint16, another integer or float)")
    alpha = None
    if has_alpha:
        top = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(arr.dtype, 1.0)
        alpha = np.clip(arr[..., -1].astype(np.float32) / top, 0.0, 1.0)
        arr = arr[..., :-1]
    return StoredImage(np.ascontiguousarray(arr), alpha, name, layout, stored_type=stored_type)


def choose_value_ranges(images: Sequence[StoredImage],
                        spec: "str | tuple[float, float] | ValueRange | None" = None) -> list[ValueRange]:
    """The value range of each image: one rule for a whole scene, so that every observation is in
    the same units.

    ``spec`` None: integers by their type's range, floats as they are when every float image lies
    on [0, 1], else all float images from 0 (or their minimum, when negative) to their maximum.
    'auto': every image that way. (LO, HI) or a :class:`ValueRange`: that range for all, but a
    given range (LO, HI) not for integers whose type cannot reach HI (:func:`cannot_hold`: an 8-bit
    PNG beside 12-bit counts given ``--range 0:4095`` is in its own units, and mapped 0..4095 it
    came back dark, its PSNR against an 8-bit reference read alike 35 dB for 4.5).
    """
    if isinstance(spec, tuple):
        spec = ValueRange(float(spec[0]), float(spec[1]), "given")
    if isinstance(spec, ValueRange):
        return [_type_range(im) if spec.rule == "given" and cannot_hold(im, spec) else spec for im in images]
    if spec not in (None, "auto"):
        raise InputError(f"value range must be None, 'auto' or (LO, HI), got {spec!r}")
    floats = [im for im in images if im.values.dtype.kind == "f"]
    outside = any(im.values.min() < 0 or im.values.max() > 1 for im in floats)
    by_data = images if spec == "auto" else floats if outside else []
    data = None
    if by_data:
        low = min(0.0, min(float(im.values.min()) for im in by_data))
        high = max(float(im.values.max()) for im in by_data)
        data = ValueRange(low, high if high > low else low + 1.0, "data")
    ranges = []
    for im in images:
        if data is not None and any(im is other for other in by_data):
            ranges.append(data)
        elif im.values.dtype == np.uint8:
            ranges.append(ValueRange(0.0, 255.0, "dtype"))
        elif im.values.dtype == np.uint16:
            ranges.append(ValueRange(0.0, 65535.0, "dtype"))
        else:
            ranges.append(ValueRange(0.0, 1.0, "unit"))
    return ranges


def cannot_hold(image: StoredImage, given: ValueRange) -> bool:
    """Whether ``image``'s values are integers of a type whose largest value is below the
    ``given`` range's high end: not in that range's units (:func:`choose_value_ranges`)."""
    kind = image.values.dtype
    return kind.kind in "ui" and float(np.iinfo(kind).max) < given.high


def own_units_note(named: Sequence[tuple[str, StoredImage]], ranges: Sequence[ValueRange], given: Any,
                   holders: str) -> str | None:
    """The note for the files a given value range (``given``: (LO, HI)) does not map, their integer
    type unable to reach HI (:func:`cannot_hold`: mapped by their type's range in ``ranges``), or None;
    a one-line error where that is every file of ``named`` (path and image; ``holders`` says whose
    type, such as "every input's sample type holds")."""
    if not isinstance(given, tuple):
        return None
    own = list(dict.fromkeys(f"{path} ({image.type_name})" for (path, image), vr in zip(named, ranges)
                             if vr.rule == "dtype"))
    low, high = (float(v) for v in given)
    if own and len(own) == len({path for path, _ in named}):
        raise InputError(f"the value range {low:g}..{high:g} reaches beyond what {holders} ({', '.join(own)}): "
                         "give a range within it, or none")
    return f"{', '.join(own)}: its type cannot reach the value range's {high:g}, so it is in its own units: " \
        "mapped by its type's range" if own else None


def _type_range(image: StoredImage) -> ValueRange:
    """An integer image's own type's range."""
    return ValueRange(0.0, float(np.iinfo(image.values.dtype).max), "dtype")


def opaque_pixels(alpha: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """The pixels (H, W bool) of an output that keeps transparent ones (``alpha`` below one half
    somewhere) that its metrics against a reference of ``shape`` (H, W[, C]) measure: the opaque
    ones, of the alpha resized to the reference's size as the output writes it (PIL bicubic: a
    super-resolved photo's; it was measured on every pixel, 10 dB from ``linr metrics`` on its
    output); None (measure all) for an output with no alpha, none transparent, or none opaque
    (a photo whose every pixel is transparent is fitted as it is)."""
    if alpha is None:
        return None
    alpha = np.asarray(alpha, np.float32)
    if alpha.shape != tuple(shape[:2]):
        alpha = resized_alpha(alpha, tuple(shape[:2]))
    opaque = alpha >= 0.5
    return None if opaque.all() or not opaque.any() else opaque


def output_info(infos: Sequence[ImageInfo], *, joint: bool = True) -> ImageInfo:
    """How the output of a scene is stored: like its input of the highest bit depth (the first
    such: its value range, TIFF layout, colour profile and density, else the first profile and
    density found), with the alpha of what its inputs saw: opaque wherever any input was (a
    transparent block of one noisy frame beside an opaque one came back transparent, though the
    other frame saw it; :func:`seen_alpha`). ``joint`` False (frames restored each on its own, one
    output's): the first alpha found."""
    if not infos:
        raise ValueError("output_info needs at least one input")
    best = max(infos, key=lambda i: i.bit_depth)  # max keeps the first of equals
    alpha = seen_alpha([i.alpha for i in infos]) if joint else next((i.alpha for i in infos if i.alpha is not None), None)
    profile = best.icc_profile or next((i.icc_profile for i in infos if i.icc_profile), None)
    density = best.density or next((i.density for i in infos if i.density), None)
    exif = best.exif or next((i.exif for i in infos if i.exif), None)
    text = best.text or next((i.text for i in infos if i.text), None)
    return ImageInfo(best.path, best.bit_depth, best.channels, alpha, best.value_range, best.tiff, profile,
                     density, best.fits, exif, text, best.stored_type)


def seen_alpha(alphas: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """The alpha of a scene's output from its inputs' (each (h, w) on [0, 1], or None: opaque):
    None where any input is opaque, else each input's resized to the largest one's size
    (:func:`resized_alpha`) and the most opaque taken at each pixel."""
    if not alphas or any(a is None for a in alphas):
        return None
    shape = max((np.shape(a) for a in alphas), key=lambda s: s[0] * s[1])
    return np.max([a if np.shape(a) == shape else resized_alpha(np.asarray(a, np.float32), shape)
                   for a in alphas], axis=0)


def dim_integer_range(images: Sequence[StoredImage], ranges: Sequence[ValueRange],
                      below: float) -> ValueRange | None:
    """The range a fit whose data term needs values on its whole scale (the photon likelihood's)
    takes for integer images of one type mapped by that type's range (``ranges``) whose values all
    reach under ``below`` of it: 0 to the smallest ``2**k - 1`` above their maximum (rule 'bits':
    57 of 65535 -> 0..63; never the maximum itself, which would read as clipped at white). None
    where any image is mapped otherwise, the types differ, or the values reach further (or are all 0)."""
    if not images or any(r.rule != "dtype" for r in ranges) or len({r.high for r in ranges}) != 1:
        return None
    top = max(int(np.max(im.values)) for im in images)
    if not 0 < top < below * ranges[0].high:
        return None
    return ValueRange(0.0, float(2 ** (top + 1).bit_length() - 1), "bits")


def partial_range_note(path: str, images: Sequence[StoredImage]) -> str | None:
    """A note for 16-bit images (one file's) whose values reach only part of the 16-bit range
    (12-bit or fewer bits of data) and are mapped by all of it, naming ``--range``; None else."""
    if not images or any(im.values.dtype.name != "uint16" for im in images):
        return None
    top = max(int(im.values.max()) for im in images)
    if not 0 < top < 4096:
        return None
    return (f"values of {path} (uint16) reach only {top} of 65535 and are mapped by the full 16-bit range; "
            "for 12-bit (or other) data give --range 0:4095 (its units)")


def to_unit(image: StoredImage, value_range: ValueRange) -> tuple[np.ndarray, ImageInfo]:
    """A stored image as ``(pixels, info)``: pixels (H, W, C) float32 on the fit's scale."""
    bit_depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(image.values.dtype, 32)
    pixels = value_range.to_unit(image.values)
    info = ImageInfo(image.name, bit_depth, pixels.shape[2], image.alpha, value_range, image.tiff,
                     image.icc_profile, image.density, image.fits, image.exif, image.text, image.stored_type,
                     image.converted)
    return np.ascontiguousarray(pixels), info


def read_mask(path: str | os.PathLike, shape: tuple[int, int] | None = None, *,
              notes: list[str] | None = None, white: str = "observed") -> np.ndarray:
    """Read a keep-mask: white (>= 0.5) = observed. Returns (H, W) bool.

    A mask with a transparency channel that is not fully opaque is read from its alpha (opaque
    = observed), the way an image editor's eraser marks holes; an 8- or 16-bit mask of the values 0
    and 1 alone (as saved from an array of booleans) keeps its 1s; otherwise a colour mask is reduced
    to its least channel: a pixel is observed where it is white (every channel at least half), so
    that damage painted in a colour on a white mask is missing (its mean, used before, kept yellow
    and cyan strokes as observed). Grey values are thresholded at 0.5: when there are any, a line
    saying so (and how many pixels are kept) is appended to ``notes``, as is the use of alpha and of
    colour. ``shape`` (H, W) is checked if given. ``white``: what white marks, 'observed' (the
    default) or 'missing' (a mask drawn the other way round, as many inpainting tools draw
    theirs: read inverted, its alpha as opaque = missing, its 1s as missing, and a colour pixel
    missing where any channel is at least half: damage painted in any colour on black).
    """
    if white not in ("observed", "missing"):
        raise InputError(f"white must be 'observed' or 'missing', not {white!r}")
    stored = read_stored(path)
    check_one_image(path, stored)
    (raw,) = stored
    pixels, info = to_unit(raw, choose_value_ranges(stored)[0])
    if info.alpha is not None and info.alpha.min() < 0.5:
        marks, source = info.alpha, f"its alpha channel (opaque = {white})"
    elif raw.values.dtype.kind == "u" and int(raw.values.max()) == 1:  # 0 / 1, as numpy and FITS masks are saved
        marks, source = raw.values.mean(axis=2, dtype=np.float32), f"its values 0 and 1 (1 = {white})"
    else:  # white where every channel is (observed), or marked in any colour (missing)
        marks, source = (pixels.min(axis=2) if white == "observed" else pixels.max(axis=2)), None
    values = marks if white == "observed" else 1 - marks
    tinted = np.ptp(pixels, axis=2) > MASK_COLOUR_SPREAD if source is None else np.zeros(values.shape, bool)
    coloured = int(np.count_nonzero(tinted))
    mask = values >= 0.5
    if shape is not None and mask.shape != tuple(shape):
        raise InputError(
            f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
            f"{shape[1]}x{shape[0]} (width x height)"
        )
    convention = f"white = {white}"
    if not mask.any():
        raise InputError(f"{path}: mask keeps no pixels ({convention})")
    if notes is not None:
        if source is not None:
            notes.append(f"{path}: mask read from {source}")
        if coloured:
            where = "only where every channel is at least half" if white == "observed" else \
                "where any channel is at least half"
            notes.append(f"{path}: {coloured} mask pixels are coloured; a pixel counts as {white} {where} "
                         f"({convention}): {mask.mean():.1%} of pixels observed")
        grey = np.count_nonzero((values > 1e-3) & (values < 1 - 1e-3) & ~tinted)
        if grey:
            notes.append(f"{path}: {grey} grey mask pixels thresholded at 50%; {mask.mean():.1%} "
                         "of pixels count as observed")
    return mask


MASK_COLOUR_SPREAD = 0.1
"""A mask pixel whose channels differ by more than this (0-1 scale) is coloured (:func:`read_mask`)."""


def scaled_by_range(array: np.ndarray, dtype: Any) -> np.ndarray | None:
    """Pixels on the [0, 1] scale as ``dtype`` (float32 or float64): uint8 and uint16 divided by
    their range (255, 65535), bool as 0 / 1, floats as they are (no copy when already ``dtype``);
    None for any other type (the caller's one-line error says what is accepted)."""
    if array.dtype in (np.uint8, np.uint16):
        return array.astype(dtype) / np.iinfo(array.dtype).max
    if array.dtype == np.bool_ or array.dtype.kind == "f":
        return array.astype(dtype, copy=False)
    return None


MIN_FLOAT_MEAN = -0.1
"""The lowest mean a float image from the Python API may have: a scene on [0, 1] with zero-mean
noise averages at least about 0, while an image on [-1, 1] or negated averages well below it."""


FLOAT_VALUES = (-1.0, 2.0)
"""The float values :func:`as_float_image` accepts (an image on [0, 1] and its noise, not 0-255
data): internal images made from a photo (SURE's probed photo, :mod:`linr.sure`) stay within it."""


def as_float_image(array: object, name: str = "image", *, any_values: bool = False) -> np.ndarray:
    """An array from the Python API as (H, W, C) float32 on [0, 1].

    Accepts (H, W) and (H, W, C). uint8 and uint16 are scaled by their range (255, 65535), bool
    to 0/1, floats are taken as they are (values must lie roughly in [0, 1]: a few noisy pixels
    beyond it are fine, 0-255 data is not; :func:`check_above_black` refuses data on [-1, 1];
    ``any_values``: any finite floats, as a reference only measured against may hold: a star's
    peak in the inputs' units, far brighter than the blurred photo whose maximum maps to 1).
    Refused with a one-line error: other integer types, channels-first (C, H, W) or
    batched (N, C, H, W) layouts, and non-finite values.
    """
    arr = np.asarray(array)
    scaled = scaled_by_range(arr, np.float32)
    if scaled is None and arr.dtype.kind in "iu":
        raise InputError(f"{name}: integer type {arr.dtype} is ambiguous; pass uint8 (0-255), "
                         "uint16 (0-65535) or floats on [0, 1]")
    if scaled is None:
        raise InputError(f"{name}: unsupported array type {arr.dtype}")
    arr = scaled
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim == 4:
        raise InputError(f"{name}: got a batch of shape {arr.shape}; pass one image as (H, W) or "
                         "(H, W, C)")
    if arr.ndim != 3 or 0 in arr.shape:
        raise InputError(f"{name}: must be a non-empty (H, W) or (H, W, C) array, got shape {arr.shape}")
    if arr.shape[0] <= 4 and arr.shape[2] > 4:
        raise InputError(f"{name}: shape {arr.shape} looks channels-first (C, H, W); pass "
                         "image.transpose(1, 2, 0)")
    if not np.isfinite(arr).all():
        raise InputError(f"{name}: contains non-finite values")
    low, high = float(arr.min()), float(arr.max())
    if not any_values and (high > FLOAT_VALUES[1] or low < FLOAT_VALUES[0]):
        raise InputError(f"{name}: float values must lie in [0, 1], got {low:g} to {high:g}"
                         + (" (0-255 data? divide by 255 or pass uint8)" if high > FLOAT_VALUES[1] else ""))
    return np.ascontiguousarray(arr)


FAR_BELOW_BLACK = (-0.5, 0.02)
"""(value, fraction): a float photo with more than ``fraction`` of its values below ``value`` is
refused by :func:`check_above_black`: data on [-1, 1] of a bright scene averages above
:data:`MIN_FLOAT_MEAN` yet holds its darker parts there (a new user's trial: a photo on [-1, 1],
71% of it negative, restored without a word; twelve of the thirteen set5 and set9 images on
[-1, 1] have 5-61% of their values below -0.5, f16 2.4%). Noise that deep is no photo's: Gaussian
noise of sigma 60 (of 255) on black puts 1.7% there, and stronger noise already reaches below -1,
where :func:`as_float_image` refuses the values. The values alone decide (no noise measured), so
correlated noise, constant areas and masked holes cannot mislead it."""


def check_photo(image: np.ndarray, name: str, observed: np.ndarray | None = None) -> None:
    """The checks of an observed photo (:func:`as_float_image`'s) that the kinds' constructors
    (:mod:`linr.kinds`) make once, not on each tile: more than one pixel (a 1x1 photo holds
    nothing to restore, as ``linr restore`` says of a one-pixel file) and values above black
    (:func:`check_above_black`)."""
    refuse_one_pixel(image, name)
    check_above_black(image, name, observed)


def refuse_one_pixel(image: np.ndarray, name: str) -> None:
    """A one-line error for a photo of one pixel (nothing to restore, no neighbour to restore it
    from): the Python API's arrays and ``linr restore``'s files alike."""
    if image.shape[0] * image.shape[1] == 1:
        raise InputError(f"{name} is one pixel (1x1): there is nothing to restore in it")


def check_above_black(image: np.ndarray, name: str, observed: np.ndarray | None = None) -> None:
    """A one-line error for a photo (:func:`as_float_image`'s) whose values average below
    :data:`MIN_FLOAT_MEAN`, or lie too often far below black (:data:`FAR_BELOW_BLACK`), over its
    ``observed`` (H, W) pixels when given: data on [-1, 1] or negated. Checked once, by the
    kinds' constructors (:mod:`linr.kinds`), not on each tile."""
    values = image if observed is None else image[np.asarray(observed, bool)]
    mean = float(values.mean(dtype=np.float64)) if values.size else 0.0
    hint = "floats are read on [0, 1] (data on [-1, 1]? pass (x + 1) / 2)"
    if mean < MIN_FLOAT_MEAN:  # noise is zero-mean and a scene is never below black
        raise InputError(f"{name}: float values average {mean:.3g}, below black; {hint}")
    value, fraction = FAR_BELOW_BLACK
    below = float(np.count_nonzero(values < value)) / values.size if values.size else 0.0
    if below > fraction:
        raise InputError(f"{name}: {below:.0%} of its float values lie below {value:g}, far below black; {hint}")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(
    path: str | os.PathLike, *, force: bool = False, protect: Iterable[str | os.PathLike] = (),
    channels: int | None = None, frames: int = 1,
) -> Path:
    """Validate an output path before any work is done: known extension, not an input, not an
    existing file unless ``force``, and a format that holds ``channels`` (without alpha; PNG,
    JPEG and BMP hold grey or RGB) and ``frames`` images (more than one: TIFF only)."""
    named = os.fspath(path)
    if named.endswith(("/", os.sep)):  # a folder to be made (an existing one is refused below, by its path)
        raise InputError(f"{named}: names a folder (it ends with {named[-1]}); name the output file in it "
                         f"(such as {Path(named) / 'restored.png'})")
    path = check_name_length(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    _refuse_folder(path, example="restored.png")  # before the extension: a folder has none to name
    if fmt is None and path.suffix.lower() == ".gz":
        raise InputError(f"{path}: outputs are written uncompressed; name it without .gz (and gzip it after)")
    if fmt is None:
        raise InputError(f"{path}: unknown output format (use {', '.join(sorted(WRITE_FORMATS))})")
    if channels is not None and fmt != "tiff" and channels not in (1, 3):
        raise InputError(f"{path}: {fmt.upper()} holds grey or RGB images (1 or 3 channels), this "
                         f"one has {channels}; write a .tif")
    if frames > 1 and fmt == "fits" and (channels not in (1, None) or frames == 3):
        raise InputError(f"{path}: FITS holds a stack of grey images along its third axis, but for 3 "
                         "(read back as one colour image); write a .tif" if channels in (1, None) else
                         f"{path}: FITS holds a stack of grey images only, these have {channels} channels; "
                         "write a .tif")
    if frames > 1 and fmt not in ("tiff", "fits"):
        raise InputError(f"{path}: a stack of {frames} images needs a TIFF or FITS output (.tif, .fits)")
    return check_new_file(path, force=force, protect=protect)


def check_new_file(path: str | os.PathLike, *, force: bool = False,
                   protect: Iterable[str | os.PathLike] = ()) -> Path:
    """Fail before any work when ``path`` is an input (``protect``), a folder, an existing file
    (unless ``force``), a name the file system cannot hold, or in a place that cannot be written."""
    path = check_name_length(path)
    for other in protect:
        other = Path(other)
        if _same_file(path, other) or path.resolve() == other.resolve():
            raise InputError(f"{path}: refusing to overwrite an input file")
    _refuse_folder(path)
    if path.exists() and not force:
        raise ExistingFileError(path)
    check_writable_folder(path)
    return path


def _refuse_folder(path: Path, *, example: str | None = None) -> None:
    """A one-line InputError when the file to write, ``path``, is a folder (``example``: a file name
    to suggest in it)."""
    if path.is_dir():
        raise InputError(f"{path}: is a folder; name the output file in it"
                         + (f" (such as {path / example})" if example else ""))


def write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Run ``write(temporary)`` on a temporary file beside ``path`` (parent folders created),
    give it a plain file's permissions and rename it to ``path``; nothing is left on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        plain_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def check_writable_folder(path: str | os.PathLike) -> None:
    """Fail now, not after a long fit, when ``path`` could not be written: the nearest existing
    folder above it must be a folder in which a file can be created (tried, then removed), and
    ``path``'s names ones the file system can hold (:func:`check_name_length`)."""
    path = check_name_length(path)
    folder = path.parent if str(path.parent) else Path(".")
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{path}: cannot be written, {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"{path}: cannot write in {folder}: the system refused a new file there "
                         f"({exc.strerror or exc})") from None


def dropped_alpha(path: str | os.PathLike, alpha: np.ndarray | None, bit_depth: int | None = None) -> str | None:
    """A note when an image with an ``alpha`` channel is written to ``path`` in a format without
    one (JPEG, BMP, FITS of integers: :func:`write_image` writes the colours alone), else None. A
    float FITS output (``bit_depth`` 32) marks transparent pixels undefined (NaN) instead."""
    fmt = WRITE_FORMATS.get(Path(path).suffix.lower())
    if alpha is None or fmt not in ("jpeg", "bmp", "fits"):
        return None
    if fmt == "fits" and bit_depth is not None and written_bit_depth(path, bit_depth) == 32:
        return None
    return (f"{path}: {fmt.upper()} has no alpha channel, so the input's transparency is not written "
            "(write a .png or .tif to keep it)")


def output_notes(path: str | os.PathLike, info: ImageInfo) -> list[str]:
    """Notes on what of an input (``info``) an output at ``path`` cannot hold: its alpha
    (:func:`dropped_alpha`), its colour profile (:func:`dropped_profile`)."""
    transparent = info.alpha is not None and float(np.min(info.alpha)) < 1.0  # an opaque alpha loses nothing
    return [note for note in (dropped_alpha(path, info.alpha, info.bit_depth) if transparent else None,
                              dropped_profile(path, info.icc_profile),
                              dropped_depth(path, info.bit_depth), dropped_exif(path, info.exif),
                              dropped_text(path, info.text), float_for_integers(path, info)) if note]


def beyond_range_note(path: str | os.PathLike, images: Sequence[np.ndarray], info: ImageInfo) -> str | None:
    """A note where restored values lie above the range an input's values were mapped from (a float
    or 12-bit photo's, or a given one: not an integer type's full range, whose top is white): what
    the output at ``path`` makes of them (:func:`clips_above`: a float one in the input's units keeps
    them, a given range clips them at its end, an output of another scale at its white; a new user's
    deblurred beads came back flat at the blurred photo's maximum). None where there are none."""
    span = info.value_range
    if span is None or span.rule == "dtype" or not images:
        return None
    keeps = keeps_units(path, info.bit_depth) and not clips_above(span, written_bit_depth(path, info.bit_depth))
    if span.rule == "unit" and not keeps:  # a [0, 1] photo's overshoot clipped at white, as an 8-bit photo's
        return None
    largest = max(float(np.max(image)) for image in images)
    if not largest > 1.0 + 0.5 / 65535:
        return None
    above = sum(int(np.count_nonzero(image > 1.0)) for image in images) / sum(image.size for image in images)
    said = (f"{Path(path).name}: {above:.2%} of the restored values lie above the input's range (up to "
            f"{float(span.from_unit(largest)):.6g} where it ends at {span.high:.6g}): ")
    if span.rule == "given":
        return said + f"clipped at {span.high:.6g}, the end of --range (a higher end keeps them)"
    if keeps:
        return said + "kept, in the input's units"
    if keeps_units(path, info.bit_depth):  # integer samples in the input's units
        return said + f"clipped at {span.high:.6g}, the range's end (a float TIFF or FITS output keeps them)"
    return said + ("clipped at the output's white (a float TIFF or FITS output keeps them in the input's units; "
                   "--range LO:HI sets the range)")


def float_for_integers(path: str | os.PathLike, info: ImageInfo) -> str | None:
    """A note where an input of another integer type (int16, int32, uint32: read as float32,
    :attr:`ImageInfo.stored_type`) is written as float32 (a TIFF or FITS output), else None."""
    if info.stored_type is None or np.dtype(info.stored_type).kind not in "iu" or \
            written_bit_depth(path, info.bit_depth) != 32:
        return None
    return (f"{Path(path).name}: the input's {info.stored_type} samples are written as float32, in its units "
            f"({info.stored_type} cannot hold the restored values' fractions)")


def dropped_depth(path: str | os.PathLike, bit_depth: int) -> str | None:
    """A note when an output holds fewer bits than its input had (:func:`written_bit_depth`), else None."""
    written = written_bit_depth(path, bit_depth)
    if written >= bit_depth:
        return None
    had = "float" if bit_depth == 32 else f"{bit_depth}-bit"
    fmt = WRITE_FORMATS.get(Path(path).suffix.lower(), "this format").upper()
    keep = "TIFF" if bit_depth == 32 else "PNG or TIFF"
    return (f"{Path(path).name}: {fmt} holds {written} bits per channel; the {had} input is written with "
            f"{written} (write {keep} to keep them)")


def dropped_profile(path: str | os.PathLike, icc_profile: bytes | None) -> str | None:
    """A note when an input's colour profile cannot go into this output (a BMP), else None."""
    fmt = WRITE_FORMATS.get(Path(path).suffix.lower())
    if icc_profile and fmt in ("bmp", "fits") and icc_profile[16:20] in (b"RGB ", b"GRAY"):
        return (f"{Path(path).name}: {fmt.upper()} holds no colour profile; the input's ICC profile is not written "
                "(the colours may look different where it was not sRGB; write PNG, JPEG or TIFF to keep it)")
    return None


EXIF_FORMATS = ("jpeg", "png")
"""Output formats :func:`write_image` writes a photo's EXIF into."""


def dropped_exif(path: str | os.PathLike, exif: bytes | None) -> str | None:
    """A note when an input's EXIF cannot go into this output (TIFF, BMP, FITS), else None."""
    fmt = WRITE_FORMATS.get(Path(path).suffix.lower())
    if exif and fmt not in EXIF_FORMATS:
        return (f"{Path(path).name}: the input's EXIF (camera, time, place) is not written into a {fmt.upper()} "
                "output (write JPEG or PNG to keep it)")
    if exif and fmt == "jpeg" and len(exif) > JPEG_EXIF_MOST and exif_for(exif, 1, 1, most=JPEG_EXIF_MOST) is None:
        return (f"{Path(path).name}: the input's EXIF ({len(exif)} bytes) is longer than a JPEG holds and is not "
                "written (write PNG to keep it)")
    return None


JPEG_SETTINGS = {"quality": 95, "subsampling": 0}
"""How a JPEG output is written: quality 95 with the colour kept at full resolution (4:4:4; Pillow's
default halves it both ways, 4:2:0, for 1.3-1.7x smaller files): measured against the 8-bit
image, set9's peppers 37.05 dB against 32.07 with 4:2:0, a 64-px crop of house 44.49 against 29.68
(sixty-second session): a restoration's colour edges are not thrown away when it is written."""


def written_bit_depth(path: str | os.PathLike, bit_depth: int) -> int:
    """What :func:`write_image` stores for ``bit_depth`` in ``path``'s format: JPEG and BMP are
    8-bit; 32 (float) stays float32 in TIFF and FITS and becomes 16-bit in PNG."""
    fmt = WRITE_FORMATS.get(Path(path).suffix.lower())
    if fmt in ("jpeg", "bmp"):
        return 8
    if bit_depth == 32 and fmt not in ("tiff", "fits"):
        return 16
    return bit_depth


def keeps_units(path: str | os.PathLike, bit_depth: int) -> bool:
    """Whether an output to ``path`` of an input of ``bit_depth`` keeps the input's sample type,
    and so its values in the input's units (else the [0, 1] of its value range fills the output's
    bit depth, as a picture)."""
    return written_bit_depth(path, bit_depth) == bit_depth


def units_kept(path: str | os.PathLike, bit_depth: int, value_range: ValueRange | None) -> ValueRange | None:
    """``value_range`` where an output to ``path`` of an input of ``bit_depth`` is written in the input's
    units (:func:`keeps_units`), else None (the range's [0, 1] fills the output's bit depth)."""
    return value_range if value_range is not None and keeps_units(path, bit_depth) else None


def written_values(path: str | os.PathLike, image: np.ndarray, *, bit_depth: int,
                   value_range: ValueRange | None = None) -> np.ndarray | None:
    """The pixels (float32 on [0, 1]) of ``image`` as :func:`write_image` stored it in ``path``
    with these settings: its samples rounded to the output's integer type (read back through
    ``value_range`` where the output keeps the input's units), a JPEG's read back from the file
    (its compression too); None where the output holds float32 samples (the image's values,
    clipped). What a user measuring the file against a reference measures, where the restored
    image's own metrics are of its unrounded values (a new user's 54.49 dB printed, 54.39 for the
    8-bit PNG)."""
    depth = written_bit_depth(path, bit_depth)
    if depth == 32:
        return None
    units = units_kept(path, bit_depth, value_range)
    if WRITE_FORMATS.get(Path(path).suffix.lower()) == "jpeg":
        with Image.open(path) as stored:
            samples = np.asarray(stored.convert("L" if np.ndim(image) == 2 or image.shape[2] == 1 else "RGB"),
                                 np.float32).reshape(np.shape(image))
        return samples / 255.0 if units is None else units.to_unit(samples)
    samples = _quantise(np.asarray(image, np.float32), depth, units)
    return samples.astype(np.float32) / (255.0 if depth == 8 else 65535.0) if units is None else units.to_unit(samples)


def _all_finite(x: np.ndarray) -> bool:
    """Whether every sample of ``x`` is finite, :data:`PIECE_VALUES` samples at a time (a
    flag per sample of a whole 8192 x 8192 RGB image would take 200 MB)."""
    if not x.flags.c_contiguous:
        return bool(np.isfinite(x).all())
    flat = x.reshape(-1)
    return all(np.isfinite(flat[start:start + PIECE_VALUES]).all() for start in range(0, flat.size, PIECE_VALUES))


def _quantise(x: np.ndarray, bit_depth: int, value_range: ValueRange | None = None) -> np.ndarray:
    """[0, 1] pixels -> stored samples: in ``value_range``'s units when given (clipped at its low end,
    and at its high end but for a range read from float data: :func:`clips_above`), else clipped to
    [0, 1], filling the type's range (float32: [0, 1]); :data:`PIECE_VALUES` samples at a time."""
    dtype = np.float32 if bit_depth == 32 else np.uint8 if bit_depth == 8 else np.uint16
    return _in_pieces(x, dtype, lambda piece: _quantised(piece, bit_depth, value_range))


def _quantised(x: np.ndarray, bit_depth: int, value_range: ValueRange | None) -> np.ndarray:
    top = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    if value_range is None:  # the [0, 1] of the value range fills the output's range
        unit = np.clip(x, 0.0, 1.0)
        return unit.astype(np.float32) if bit_depth == 32 else np.round(unit * top).astype(dtype)
    # in the input's units: below its low end clipped there; above a range read from float data
    # kept (a deconvolution brightens what the blur spread: a new user's deblurred beads came
    # back flat at the blurred photo's maximum), above a given range or an integer type's clipped
    unit = np.clip(x, 0.0, 1.0) if clips_above(value_range, bit_depth) else np.maximum(x, 0.0)
    values = value_range.from_unit(unit)
    return values.astype(np.float32) if bit_depth == 32 else np.clip(np.round(values), 0, top).astype(dtype)


def clips_above(value_range: ValueRange, bit_depth: int) -> bool:
    """Whether an output of ``bit_depth`` in the input's units clips values above its range: only a
    float output (32) of a float photo whose range was read from it (its maximum, or [0, 1] taken as
    it is) keeps them, what the restoration made brighter than the photo; a given range (``--range``:
    values past it are what the user leaves out), an integer type's range and integer outputs clip,
    but at the type's top only for the few low bits of dim integers (rule 'bits')."""
    if value_range.rule == "bits":
        return False
    return bit_depth != 32 or value_range.rule not in ("data", "unit")


def _alpha_plane(alpha: Any) -> np.ndarray:
    """An alpha to write as (H, W) float32 on [0, 1] ((H, W, 1) taken as (H, W)); a one-line
    error for another shape, type or range."""
    a = np.asarray(alpha)
    a = a[..., 0] if a.ndim == 3 and a.shape[2] == 1 else a
    scaled = scaled_by_range(a, np.float32)
    if scaled is None or scaled.ndim != 2 or scaled.size == 0:
        raise InputError(f"alpha must be an (H, W) array of floats on [0, 1], uint8 or uint16, got "
                         f"shape {a.shape} of {a.dtype}")
    if not np.isfinite(scaled).all() or scaled.min() < 0 or scaled.max() > 1:
        raise InputError("alpha values must lie in [0, 1] (1 opaque)")
    return scaled


def resized_alpha(alpha: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An (H, W) alpha on [0, 1] resized to ``shape`` over the same extent (bicubic, clipped), as an
    output of another size than its input gets it (and a saved model keeps it, :mod:`linr.fitted`)."""
    img = Image.fromarray(alpha.astype(np.float32))
    out = img.resize((shape[1], shape[0]), Image.BICUBIC)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def write_image(
    path: str | os.PathLike,
    image: np.ndarray,
    *,
    bit_depth: int = 8,
    alpha: np.ndarray | None = None,
    value_range: ValueRange | None = None,
    tiff: TiffLayout | None = None,
    icc_profile: bytes | None = None,
    density: Density | None = None,
    fits: FitsHeader | None = None,
    force: bool = False,
    protect: Iterable[str | os.PathLike] = (),
    exif: bytes | None = None,
    text: dict[str, str] | None = None,
) -> Path:
    """Write ``image`` ((H, W) or (H, W, C), values clipped to [0, 1], but written in the units of a
    float input whose range was read from its data, where values above it are kept:
    :func:`clips_above`) atomically.

    ``bit_depth`` 8, 16 or 32 (float32, TIFF only; 16-bit in PNG); JPEG and BMP are always
    8-bit (see :func:`written_bit_depth`). ``value_range``: the input's, to write the values back
    in its units where the output keeps its sample type (:func:`keeps_units`). ``tiff``: a TIFF
    input's layout and metadata, for a TIFF output (scaled to the output's size). ``icc_profile``:
    the input's colour profile (:attr:`ImageInfo.icc_profile`), embedded in a PNG, JPEG or TIFF
    (a BMP holds none: :func:`dropped_profile`). ``density``: the input's pixels per inch
    (:attr:`ImageInfo.density`), scaled to the output's size, in every format (a TIFF with
    resolution tags of its own keeps those). ``fits``: a FITS input's header, for a FITS output
    (its world coordinates scaled to the output's size). ``exif``: a photo's EXIF
    (:attr:`ImageInfo.exif`), written into a JPEG or PNG (:func:`exif_for`: its pixel size the
    output's; other formats: :func:`dropped_exif`). ``text``: the input's descriptive text
    (:attr:`ImageInfo.text`): all of it into a PNG, its XMP and comment into a JPEG, its TIFF tags
    and XMP into a TIFF (what is left out: :func:`dropped_text`). PNG, JPEG, BMP and FITS hold 1 or 3
    channels (plus alpha, but for JPEG, BMP and FITS). ``alpha``: an (H', W') array on [0, 1] (1 opaque), the input's transparency; at
    another size than the image (a super-resolved or rendered output) it is resized over the
    same extent (bicubic), as a render of another size is. Parent folders are created.
    """
    return write_frames(path, [image], bit_depth=bit_depth, alpha=alpha, value_range=value_range,
                        tiff=tiff, icc_profile=icc_profile, density=density, fits=fits, force=force,
                        protect=protect, exif=exif, text=text)


def _unit_frame(frame: Any) -> np.ndarray:
    """One image to write as float32 on [0, 1]: uint8 and uint16 scaled by their range (as they
    are read), bool as 0 / 1, floats as they are; a one-line error for other types and shapes."""
    raw = np.asarray(frame)
    a = scaled_by_range(raw, np.float32)
    if a is None:
        raise InputError(f"cannot write pixels of type {raw.dtype} (use float on [0, 1], uint8 or uint16)")
    if a.ndim not in (2, 3) or a.size == 0:
        raise InputError(f"cannot write an array of shape {a.shape} as an image ((H, W) or (H, W, C))")
    return a


def write_frames(
    path: str | os.PathLike,
    frames: Sequence[np.ndarray],
    *,
    bit_depth: int = 8,
    alpha: np.ndarray | None = None,
    value_range: ValueRange | None = None,
    tiff: TiffLayout | None = None,
    icc_profile: bytes | None = None,
    density: Density | None = None,
    fits: FitsHeader | None = None,
    force: bool = False,
    protect: Iterable[str | os.PathLike] = (),
    exif: bytes | None = None,
    text: dict[str, str] | None = None,
) -> Path:
    """:func:`write_image` for a stack: several images of one size, one per page of a TIFF (or
    along the ImageJ / OME stack axis of ``tiff``), in one atomic write."""
    if bit_depth not in (8, 16, 32):
        raise InputError(f"bit_depth must be 8, 16 or 32, got {bit_depth}")
    images = [_unit_frame(f) for f in frames]
    images = [im[..., None] if im.ndim == 2 else im for im in images]
    if not images or len({im.shape for im in images}) > 1:
        raise ValueError("write_frames needs one or more images of one shape")
    path = check_output_path(path, force=force, protect=protect, channels=images[0].shape[2],
                             frames=len(images))
    data = images[0][None] if len(images) == 1 else np.stack(images)  # one image: a view, no copy
    if not _all_finite(data):
        raise InputError(f"{path}: refusing to write an image with non-finite values")
    fmt = WRITE_FORMATS[path.suffix.lower()]
    if alpha is not None:
        alpha = _alpha_plane(alpha)
    holes = None  # a float FITS output's undefined pixels: NaN where the alpha is transparent
    if alpha is not None and fmt == "fits" and written_bit_depth(path, bit_depth) == 32:
        holes = (alpha if alpha.shape == data.shape[1:3] else resized_alpha(alpha, data.shape[1:3])) < 0.5
        alpha = None
    elif alpha is not None and dropped_alpha(path, alpha) is None:  # JPEG and BMP have none
        if alpha.shape != data.shape[1:3]:
            alpha = resized_alpha(alpha, data.shape[1:3])
        data = np.concatenate([data, np.broadcast_to(alpha[None, ..., None], (*data.shape[:3], 1))], axis=3)
    else:
        alpha = None
    units = units_kept(path, bit_depth, value_range)
    icc_profile = profile_for(icc_profile, data.shape[3] - int(alpha is not None))
    bit_depth = written_bit_depth(path, bit_depth)
    data = _quantise(data, bit_depth, units)
    if alpha is not None:  # alpha fills its type's range, whatever the colour values' units
        data[..., -1] = _quantise(alpha, bit_depth)
    if holes is not None and holes.any():
        data[:, holes, :] = np.nan
    dpi = None if density is None else density.for_size(*data.shape[1:3])
    text = text_for(text, *data.shape[1:3])
    tags = exif_for(exif, *data.shape[1:3], most=JPEG_EXIF_MOST if fmt == "jpeg" else None) \
        if fmt in EXIF_FORMATS and len(data) == 1 else None

    def write(tmp: str) -> None:
        if fmt == "fits":
            from . import __version__

            write_fits(tmp, data[0] if len(data) == 1 else data,
                       None if fits is None else fits.for_size(*data.shape[1:3]), history=f"written by linr {__version__}")
        elif fmt == "tiff":
            layout = None if tiff is None else tiff.for_size(*data.shape[1:3])
            write_tiff(tmp, data, alpha=alpha is not None, layout=layout, icc_profile=icc_profile,
                       dpi=None if dpi is None else (dpi.x, dpi.y), text_tags=tiff_text_tags(text))
        elif fmt == "png" and bit_depth == 16:
            import png

            _, h, w, c = data.shape
            writer = png.Writer(w, h, greyscale=c < 3, alpha=c in (2, 4), bitdepth=16)
            with open(tmp, "wb") as fh:
                chunks = list(png.Reader(bytes=_png16_bytes(writer, data[0].reshape(h, w * c))).chunks())
                at = next(i for i, (kind, _) in enumerate(chunks) if kind in (b"PLTE", b"IDAT"))
                if icc_profile:  # iCCP and pHYs go before the image data
                    chunks.insert(at, (b"iCCP", b"icc\x00\x00" + zlib.compress(icc_profile)))
                per_metre = None if dpi is None else (round(dpi.x / 0.0254), round(dpi.y / 0.0254))
                if per_metre is not None and 1 <= min(per_metre) and max(per_metre) < 2**31:  # pixels per metre, unit 1
                    chunks.insert(at, (b"pHYs", struct.pack(">IIB", *per_metre, 1)))
                if tags is not None:  # eXIf holds the TIFF structure, without JPEG's "Exif\0\0"
                    chunks.insert(at, (b"eXIf", tags.tobytes()[6:]))
                chunks[at:at] = png_text_chunks(text)
                png.write_chunks(fh, chunks)
        else:
            arr = data[0, ..., 0] if data.shape[3] == 1 else data[0]
            extra: dict[str, Any] = dict(JPEG_SETTINGS) if fmt == "jpeg" else {}
            if icc_profile and fmt in ("png", "jpeg"):
                extra["icc_profile"] = icc_profile
            if tags is not None:
                extra["exif"] = tags
            if text and fmt == "png":
                from PIL.PngImagePlugin import PngInfo

                extra["pnginfo"] = PngInfo()
                for kind, chunk in png_text_chunks(text):
                    extra["pnginfo"].add(kind, chunk)
            elif text and fmt == "jpeg":
                kept = text_kept(path, text)
                if XMP_KEY in kept:
                    extra["xmp"] = text[XMP_KEY].encode("utf-8")
                if "Comment" in kept:
                    extra["comment"] = text["Comment"].encode("utf-8")
            if dpi is not None and fmt != "jpeg":
                extra["dpi"] = (dpi.x, dpi.y)
            elif dpi is not None and 1 <= round(dpi.x) <= 65535 and 1 <= round(dpi.y) <= 65535:
                extra["dpi"] = (round(dpi.x), round(dpi.y))  # JPEG's JFIF density: whole dots per inch, 16 bits
            Image.fromarray(arr).save(tmp, format=fmt.upper(), **extra)

    return write_atomically(path, write)


XMP_SIZED = {"tiff:ImageWidth": 1, "tiff:ImageLength": 0, "exif:PixelXDimension": 1, "exif:PixelYDimension": 0}
"""XMP properties of the pixel size (by the axis of (height, width) they give), set to the output's."""

RAW_PROFILES_LEFT_OUT = ("Raw profile type exif", "Raw profile type APP1", "Raw profile type xmp")
"""ImageMagick's copies of the EXIF and XMP as PNG text (their orientation and size the input's):
left out of an output, which gets the EXIF and XMP themselves, brought up to date."""


def text_for(text: dict[str, str] | None, height: int, width: int) -> dict[str, str] | None:
    """``text`` (:attr:`ImageInfo.text`) as an output of (``height``, ``width``) gets it: its XMP's
    orientation upright (``tiff:Orientation`` 1: the pixels were read upright, and Pillow turns a
    PNG by its XMP where it has no EXIF) and its pixel size the output's; ImageMagick's raw copies of
    the EXIF and XMP (:data:`RAW_PROFILES_LEFT_OUT`) left out."""
    if not text:
        return text
    import re

    out = {k: v for k, v in text.items() if k not in RAW_PROFILES_LEFT_OUT}
    if xmp := out.get(XMP_KEY):
        size = (height, width)
        for name, axis in (("tiff:Orientation", None), *XMP_SIZED.items()):
            value = "1" if axis is None else str(size[axis])
            xmp = re.sub(rf'({re.escape(name)}\s*=\s*["\'])[^"\']*(["\'])', rf"\g<1>{value}\g<2>", xmp)
            xmp = re.sub(rf"(<{re.escape(name)}>)[^<]*(</{re.escape(name)}>)", rf"\g<1>{value}\g<2>", xmp)
        out[XMP_KEY] = xmp
    return out or None


def _latin1(text: str) -> bytes | None:
    """``text`` in Latin-1, or None where it has other characters."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return None


def _png_keyword(key: str) -> bytes | None:
    """``key`` as a PNG text chunk's keyword (1 to 79 Latin-1 characters), or None where it cannot be one."""
    keyword = _latin1(key)
    return keyword if keyword is not None and 1 <= len(keyword) <= 79 else None


PNG_TEXT_DEFLATED_ABOVE = 1024
"""Text values longer than this many bytes go into a PNG deflated (zTXt, or iTXt compressed)."""


def png_text_chunks(text: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    """PNG chunks of ``text`` (:attr:`ImageInfo.text`): tEXt where the value is Latin-1 (zTXt above
    :data:`PNG_TEXT_DEFLATED_ABOVE` bytes), else iTXt (UTF-8, compressed above it), an XMP packet
    always iTXt (XMP's own rule, uncompressed); a key PNG cannot name (:func:`_png_keyword`) is left out."""
    chunks = []
    for key, value in (text or {}).items():
        if (keyword := _png_keyword(key)) is None:
            continue
        if key != XMP_KEY and (latin := _latin1(value)) is not None:
            chunks.append((b"zTXt", keyword + b"\x00\x00" + zlib.compress(latin))
                          if len(latin) > PNG_TEXT_DEFLATED_ABOVE else (b"tEXt", keyword + b"\x00" + latin))
            continue
        data = value.encode("utf-8")  # iTXt: keyword, compression flag and method, no language or translated keyword
        deflate = len(data) > PNG_TEXT_DEFLATED_ABOVE and key != XMP_KEY  # XMP's own rule: iTXt, uncompressed
        chunks.append((b"iTXt", keyword + (b"\x00\x01\x00\x00\x00" + zlib.compress(data) if deflate
                                           else b"\x00\x00\x00\x00\x00" + data)))
    return chunks


def tiff_text_tags(text: dict[str, str] | None) -> dict[int, bytes]:
    """The TIFF tags of ``text`` (:attr:`ImageInfo.text`): :data:`TIFF_TEXT_TAGS` by name (or
    :data:`TEXT_SYNONYMS`), as UTF-8 bytes, and an XMP packet; by tag number."""
    tags: dict[int, bytes] = {}
    for key, value in (text or {}).items():
        if (code := _tiff_tag(key)) is not None and code not in tags:
            tags[code] = value.encode("utf-8")
    return tags


def _tiff_tag(key: str) -> int | None:
    """The TIFF tag an :attr:`ImageInfo.text` key is written as (:func:`tiff_text_tags`), or None."""
    return TIFF_XMP_TAG if key == XMP_KEY else TIFF_TEXT_TAGS.get(TEXT_SYNONYMS.get(key, key))


def text_kept(path: str | os.PathLike, text: dict[str, str] | None) -> list[str]:
    """The keys of ``text`` an output at ``path`` holds (:func:`write_frames`)."""
    fmt = WRITE_FORMATS.get(Path(path).suffix.lower())
    if not text:
        return []
    if fmt == "png":
        return [k for k in text if _png_keyword(k) is not None]
    if fmt == "jpeg":  # each in one segment: at most JPEG_TEXT_MOST bytes
        return [k for k in text if k in JPEG_TEXT_MOST and len(text[k].encode("utf-8")) <= JPEG_TEXT_MOST[k]]
    if fmt == "tiff":
        tags = tiff_text_tags(text)
        return [k for k in text if tags.get(_tiff_tag(k)) == text[k].encode("utf-8")]  # Author beside Artist: the first
    return []


JPEG_TEXT_MOST = {XMP_KEY: 65504, "Comment": 65533}
"""The most bytes of an XMP packet and of a comment a JPEG holds, each in one segment (APP1 with
its namespace, COM): Pillow refuses a longer XMP, and a longer comment breaks the file."""


def dropped_text(path: str | os.PathLike, text: dict[str, str] | None) -> str | None:
    """A note naming the input's text (:attr:`ImageInfo.text`) an output at ``path`` cannot hold, else None."""
    if not text:
        return None
    kept = text_kept(path, text)
    left = [("XMP" if k == XMP_KEY else k) for k in text if k not in kept and k not in RAW_PROFILES_LEFT_OUT]
    if not left:
        return None
    fmt = WRITE_FORMATS.get(Path(path).suffix.lower(), "this format").upper()
    return (f"{Path(path).name}: the input's text ({', '.join(left)}) is not written into a {fmt} output "
            "(write PNG to keep it all)")


def _png16_bytes(writer: Any, rows: np.ndarray) -> bytes:
    """A 16-bit PNG of ``rows`` (H, W * C) by pypng's ``writer``, as bytes."""
    import io

    out = io.BytesIO()
    writer.write(out, rows)
    return out.getvalue()


def plain_mode(path: str | os.PathLike) -> None:
    """Give a file made by ``mkstemp`` (mode 0600) the permissions a plain ``open()`` would."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _temp_prefix(path: Path) -> str:
    """The start of a temporary file's name beside ``path`` (``.NAME.``), its name cut where needed
    (:func:`name_with_room`) so that the whole temporary name (eight random characters and the
    suffix after it) is no longer than the folder's file system allows."""
    room = name_limit(path.parent) - 2 - 8 - len(os.fsencode(path.suffix))
    return f".{name_with_room(path.name, room)}."


def stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Temporary files that :func:`write_image` left beside ``path`` when its process was killed
    mid-write (``.NAME.XXXXXXXX.SUFFIX``). Only a caller that knows no other process is writing
    ``path`` (e.g. ``linr batch``, which holds its folder's lock) may delete them."""
    import re

    path = Path(path)
    pattern = re.compile(re.escape(_temp_prefix(path)) + r"[A-Za-z0-9_]{8}" + re.escape(path.suffix) + "$")
    try:
        return sorted(p for p in path.parent.iterdir() if pattern.match(p.name) and p.is_file())
    except OSError:
        return []
