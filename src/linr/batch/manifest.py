"""The batch manifest: one JSON object per image in ``OUTPUT_DIR/manifest.jsonl``.

Why JSON lines rather than SQLite: only the driver process writes it, one short record per
finished image, so an append-only text file is enough; an append plus ``fsync`` is durable the
moment it returns, and a crash can at worst truncate the last line, which reading skips. It is
readable and diffable with standard tools (``jq``, ``grep``), and it stays correct on network
file systems (where cluster outputs usually live) on which SQLite's locking is documented to be
unreliable.

While a batch runs, records are appended (a later record for an image replaces an earlier
one). At the start and end of every run the file is compacted atomically (temporary file, then
rename) to one record per image sorted by name, so an interrupted-then-resumed batch ends with
the same manifest as an uninterrupted one, apart from each record's ``run`` block (timings,
host, backend).

A record: ``image`` (name), ``status`` ("done" or "failed"), ``inputs`` (kind -> path, plus
mask/kernel/reference), ``output``, ``key`` (fingerprint of inputs and settings), ``batch``
(the batch settings), ``settings`` (the fit's resolved settings), ``steps_run``, ``stop_step``,
``stop_reason``, ``input_stamps`` (each input file's size and time as read, so that a resume
restores again an image whose input was replaced; records made before the thirty-fourth session
have none), ``metrics`` (standard and paper conventions, or null), ``metrics_error`` (why
a given reference gave no metrics, e.g. another size: the image is restored all the same; or
null), with metrics ``metrics_as_written`` (the output file's PSNR as written, rounded to its bit
depth, :func:`linr.metrics.as_written`; a stack's frames' mean with ``frames``; none where the file
holds the restored values; since the sixty-ninth session) or ``metrics_as_written_error`` (why it
could not be measured), ``error`` (one line, or null) and ``run`` (``fit_s``, ``time_s``, ``finished`` UTC
time, ``backend``, ``host``, ``threads``, ``device``; ``time_s`` the image's own: reading it, its
worker's time and writing it, no wait in a queue for a worker (since the sixty-eighth session; the
time from reading to writing before, queues included); for an image fitted in a stack of K,
``stacked`` K, ``fit_s`` and ``time_s`` its share and ``stack_time_s`` the stack's whole time).
A stack whose frames are restored each on its own (``--frames separate``, a Z-stack's default)
has lists of each frame's ``steps_run``, ``stop_step`` and ``stop_reason``, its first frame's
``settings`` with ``frames_separate`` (the count), and ``metrics`` whose numbers are the frames'
means, with ``metrics['frames']`` each frame's.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputError

__all__ = ["Manifest", "MANIFEST_NAME", "LOCK_NAME", "read_manifest"]

MANIFEST_NAME = "manifest.jsonl"
LOCK_NAME = ".manifest.lock"


class Manifest:
    """Latest record per image, backed by an append-only JSON-lines file.

    Use as a context manager: it takes an exclusive lock on the output folder (a second batch on
    the same folder fails at once instead of duplicating work) and compacts on entry and exit.
    A run that records nothing (it failed before its first image) leaves no manifest behind, and
    no folder when it made the folder.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST_NAME
        self.records: dict[str, dict[str, Any]] = {}
        self.skipped_lines = 0
        self.existed = False
        """Whether the folder already had a manifest with records (so its outputs are a batch's own)."""
        self._fh: Any = None
        self._lock: Any = None
        self._made: list[Path] = []
        """Folders that entering created (deepest first), removed again if nothing is recorded."""
        self._owner = False
        """Whether this run holds the folder (its lock): only then may it remove anything."""

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "Manifest":
        self._made = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._release()
            raise InputError(f"-o {self.folder}: cannot create the folder ({exc.strerror or exc})") from None
        try:
            self._take_lock()
            self._owner = True
            self.records = dict(self._read())
            self.existed = bool(self.records) or self.skipped_lines > 0
        except BaseException:
            self._release()
            raise
        if self.skipped_lines:
            print(f"linr: warning: {self.path}: skipped {self.skipped_lines} unreadable line(s) "
                  "(a write cut short); those images will be redone", file=sys.stderr)
        try:  # a folder that exists but takes no new file (read-only, immutable): one line, before any work
            self.compact()
            self._fh = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            self._release()
            raise InputError(f"-o {self.folder}: cannot write there ({exc.strerror or exc})") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.compact()
        self._release()

    def _release(self) -> None:
        """Unlock; when nothing was recorded, remove the empty manifest and the folders we made."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._owner and not self.records:
            try:
                if self.path.exists() and self.path.stat().st_size == 0:
                    self.path.unlink()
                if self._made:
                    (self.folder / LOCK_NAME).unlink(missing_ok=True)
            except OSError:
                pass
        if self._lock is not None:
            self._lock.close()  # closing the file releases the lock
            self._lock = None
        if (self._owner or not self.folder.exists()) and not self.records:
            for folder in self._made:  # deepest first; stops at the first that is not empty
                try:
                    folder.rmdir()
                except OSError:
                    break
        self._made = []
        self._owner = False

    def _take_lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; concurrent runs are the user's care
            return
        try:
            fh = open(self.folder / LOCK_NAME, "w")
        except OSError as exc:
            raise InputError(f"-o {self.folder}: cannot write there ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise InputError(f"{self.folder}: another linr batch is running on this folder") from None
        self._lock = fh

    # --- reading and writing -----------------------------------------------------------------

    def _read(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    name = record["image"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.skipped_lines += 1
                    continue
                yield name, record

    def add(self, record: dict[str, Any]) -> None:
        """Record one finished image durably (appended, flushed and fsynced before returning)."""
        assert self._fh is not None, "Manifest.add outside of 'with'"
        self.records[record["image"]] = record
        self._fh.write(json.dumps(record, allow_nan=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def compact(self) -> None:
        """Rewrite the file atomically with one record per image, sorted by name."""
        if not self.records and not self.path.exists():
            return
        fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST_NAME}.", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                for name in sorted(self.records):
                    fh.write(json.dumps(self.records[name], allow_nan=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a manifest is not
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        if self._fh is not None:  # keep appending to the new file, not the replaced one
            self._fh.close()
            self._fh = open(self.path, "a", encoding="utf-8")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_manifest(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Latest record per image of a manifest file (or of ``OUTPUT_DIR/manifest.jsonl``)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    m = Manifest(folder)
    m.path = path / MANIFEST_NAME if path.is_dir() else path
    return dict(m._read())

