"""The HTTPS receiver's durable journal: the events accepted while the database cannot take them.

Why it exists: Canvas waits 15 s for a 2xx, retries a failed delivery three
times over about twenty minutes, then drops the event for good. So while the
database cannot take writes, the receiver appends each accepted event here
and answers 2xx only once `Spool.append` has returned, that is once the bytes
(and, for a new file, the directory entry) were fsync'd. A `kill -9` at any
moment then loses no acknowledged event. The drainer
(`consumer.receiver.intake`) applies the spool through the normal pipeline as
soon as the database is back, and a restart drains what is left.

The directory (`--spool-dir`, created with mode 0700) holds:
- `lock`: an exclusive flock, held by the one process that owns the spool
  (a second one gets `SpoolLocked`); `read_stats` reads without it.
- `NNNNNNNNNNNNNNNN.seg`: the segments, numbered with sixteen digits so that
  name order is age order. Records are appended (O_APPEND) to the newest,
  active one. A new segment starts at the next append when the active one
  has passed `segment_bytes`, when the drainer takes the active one
  (`oldest` seals it), after a failed append, and at every start: a segment
  found on disk is never written again, except to cut off a torn tail.
  A segment is deleted once its records were committed (`consumed`).
- `NAME.damaged`: bytes set aside by recovery. The spool never deletes them.
- anything else: left alone, and not counted.

A record, little-endian (RECORD_OVERHEAD = 32 bytes plus the source and the payload):

    header (20 bytes)  magic b"CPSp" | version 1 (1 byte) | 3 zero bytes | body length (u32)
                       | CRC-32 of the body (u32) | CRC-32 of the 16 header bytes before it (u32)
    body               accepted at, ms since the Unix epoch (u64) | source length (u32)
                       | source (utf-8, surrogatepass: any str comes back as it went in)
                       | payload (the rest: the request body exactly as received, any bytes)

`Input.receive_count` and `Input.event_name` are not kept: an HTTPS delivery has neither.

The header has its own CRC so that its length can be trusted, which tells the
two ways a segment can end badly apart:
- a torn tail: the last record is cut short (part of a header, or a sound
  header whose body runs past the end of the file), or zeros follow the last
  record (a filesystem extended the file but the data never landed). The
  append that wrote it never returned, so nobody was told it was kept: it is
  cut off when the spool is opened, with one WARNING giving the byte count.
- damage: a header or a body whose CRC fails, bytes that are not a record,
  or a record version this code does not know. Every good record before it
  is kept; the rest of the file is moved aside to `NAME.damaged` (nothing is
  deleted), with one ERROR line naming the file, the offset and the bytes
  set aside. (Found later, when the drainer reads a segment, it is handled
  the same way.)
Only good records are counted or drained.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from consumer.core import ConfigurationError, Input
from consumer.text import safe_text

log = logging.getLogger(__name__)

MAGIC = b"CPSp"
VERSION = 1
_HEAD = struct.Struct("<4sB3xII")  # magic, version, body length, body CRC: the bytes the header CRC covers
_HEAD_CRC = struct.Struct("<I")
HEADER_SIZE = _HEAD.size + _HEAD_CRC.size  # 20
_BODY = struct.Struct("<QI")  # accepted at (ms), source length
RECORD_OVERHEAD = HEADER_SIZE + _BODY.size  # 32
MAX_BODY = (1 << 31) - 1  # a sanity bound far above any request the receiver accepts (~1 MiB)

LOCK_NAME = "lock"
SEGMENT_SUFFIX = ".seg"
DAMAGED_SUFFIX = ".damaged"
_SEGMENT = re.compile(r"(\d{16})\.seg")
_NUMBERED = re.compile(r"(\d{16})\.seg(?:\.damaged(?:\.\d+)?)?")  # what a new segment's number must pass


class SpoolFull(Exception):
    """The append would take the spool past its bound (SPOOL_MAX_BYTES); nothing was written."""


class SpoolLocked(ConfigurationError):
    """Another Spool (this process or another one) holds the directory's lock."""


# -- the record format: pure functions over bytes -------------------------------------------------------------------


def encode_record(item: Input, accepted_ms: int) -> bytes:
    """One record: header, then body (see the module docstring)."""
    source = item.source.encode("utf-8", "surrogatepass")
    body = b"".join((_BODY.pack(accepted_ms, len(source)), source, item.payload))
    if len(body) > MAX_BODY:
        raise ValueError(f"payload: {len(item.payload)} bytes is more than a spool record holds ({MAX_BODY})")
    head = _HEAD.pack(MAGIC, VERSION, len(body), zlib.crc32(body))
    return b"".join((head, _HEAD_CRC.pack(zlib.crc32(head)), body))


@dataclass(frozen=True)
class Problem:
    """Why a scan stopped before the end: a torn tail (`torn`) or damage; `offset` is where the bad bytes start."""

    torn: bool
    offset: int
    reason: str


@dataclass(frozen=True)
class Scan:
    """The good records at the start of a segment's bytes: how many, their total size, the first one's time."""

    records: int
    good: int  # bytes: the good records end here
    first_ms: int | None
    problem: Problem | None


def scan(data: bytes) -> Scan:
    """Check every record from the start; stop at the first one that is torn or damaged (see the docstring)."""
    view = memoryview(data)
    offset = records = 0
    first_ms: int | None = None
    end = len(data)

    def stop(torn: bool, reason: str) -> Scan:
        if not torn and data.count(0, offset) == end - offset:  # only zeros follow: the file outran its data
            torn, reason = True, "zeros after the last record"
        return Scan(records, offset, first_ms, Problem(torn, offset, reason))

    while offset < end:
        rest = end - offset
        if rest < HEADER_SIZE:
            return stop(_header_prefix(view[offset:]), "a part of a record header")
        magic, version, length, body_crc = _HEAD.unpack_from(data, offset)
        (head_crc,) = _HEAD_CRC.unpack_from(data, offset + _HEAD.size)
        if magic != MAGIC:
            return stop(False, "no record header")
        if zlib.crc32(view[offset:offset + _HEAD.size]) != head_crc:
            return stop(False, "the header's CRC does not match")
        if version != VERSION:
            return stop(False, f"record version {version} is unknown (this version reads {VERSION})")
        start = offset + HEADER_SIZE
        if length > end - start:
            return stop(True, f"a record of {length} bytes cut short")
        body = view[start:start + length]
        if zlib.crc32(body) != body_crc:
            return stop(False, "the body's CRC does not match")
        if length < _BODY.size:
            return stop(False, f"a body of {length} bytes is shorter than its fixed fields")
        accepted_ms, source_length = _BODY.unpack_from(body)
        if source_length > length - _BODY.size:
            return stop(False, f"a source of {source_length} bytes is longer than its body")
        try:
            bytes(body[_BODY.size:_BODY.size + source_length]).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return stop(False, "the source is not utf-8")
        records += 1
        if first_ms is None:
            first_ms = accepted_ms
        offset = start + length
    return Scan(records, offset, first_ms, None)


def _header_prefix(tail: memoryview) -> bool:
    """Whether these few bytes (less than a header) can be the start of a header that was being written."""
    expected = MAGIC + bytes((VERSION, 0, 0, 0))
    shown = bytes(tail[:len(expected)])
    return expected.startswith(shown)


def decode(data: bytes, count: int) -> Iterator[tuple[int, str, bytes]]:
    """(accepted ms, source, payload) of the first `count` records of `data`, which `scan` found good."""
    offset = 0
    for _ in range(count):
        _, _, length, _ = _HEAD.unpack_from(data, offset)
        start = offset + HEADER_SIZE
        accepted_ms, source_length = _BODY.unpack_from(data, start)
        source_end = start + _BODY.size + source_length
        yield (accepted_ms, data[start + _BODY.size:source_end].decode("utf-8", "surrogatepass"),
               data[source_end:start + length])
        offset = start + length


# -- the spool -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpoolStats:
    records: int
    bytes: int
    segments: int
    oldest: float | None  # Unix time at which the oldest held record was accepted; None when empty

    def age(self, now: float) -> float | None:
        """Seconds since the oldest held record was accepted (never negative); None when the spool is empty."""
        return None if self.oldest is None else max(0.0, now - self.oldest)


EMPTY = SpoolStats(0, 0, 0, None)


@dataclass
class Segment:
    """The records of one sealed segment, for the drainer: hand it back to `consumed` once they are committed."""

    path: Path
    inputs: list[Input]
    bytes: int


@dataclass(eq=False)
class _Held:
    """A segment file and what it holds (good records only). `size` is where its good records end."""

    path: Path
    records: int = 0
    size: int = 0
    oldest: float | None = None
    fd: int | None = field(default=None, repr=False)  # open for appending: the active segment


class Spool:
    """The journal: fsync'd appends, oldest segment first to the drainer, a size bound. Thread-safe (one lock).

    `clock` gives the Unix time a record is accepted at (wall time, unlike `consumer.clock`'s monotonic one: the
    age of a record must survive a restart and be readable by `canvas-progress status`).
    """

    def __init__(self, directory: str | os.PathLike, max_bytes: int, segment_bytes: int = 8 << 20,
                 clock: Callable[[], float] = time.time) -> None:
        if max_bytes < 1:
            raise ConfigurationError(f"SPOOL_MAX_BYTES must be at least 1, not {max_bytes}")
        if segment_bytes < 1:
            raise ConfigurationError(f"segment_bytes must be at least 1, not {segment_bytes}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._segments: deque[_Held] = deque()  # oldest first; the active one, if any, is last
        self._active: _Held | None = None
        self._records = self._bytes = 0
        self._stats = EMPTY
        self._closed = False
        try:
            created = _make_directory(self.directory)
            self._lock_fd = _take_lock(self.directory)
        except OSError as error:  # read-only, not a directory, no permission: the setting cannot work
            raise ConfigurationError(f"cannot use the spool directory {self.directory} (SPOOL_DIR / --spool-dir): "
                                     f"{error.strerror or error}") from None
        try:
            self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            if created:
                _fsync_directory(self.directory.parent)
            self._next_number = self._recover()
        except BaseException:
            self._release()
            raise
        self._publish()

    # -- the commit thread --------------------------------------------------------------------------------------

    def append(self, inputs: Sequence[Input]) -> None:
        """Make `inputs` durable: ONE write and fsync (and a directory fsync for a new segment file).

        Raises SpoolFull (nothing written) past `max_bytes`, or the OSError of a failed write or fsync, after
        which the spool is as it was: what the write left is cut off, and the segment is sealed. If even cutting
        off fails, it stays past the end the spool knows the segment to hold (so neither `stats` nor the drainer
        see it) until the next start, which cuts off a torn record and keeps the ones that landed whole: those
        were answered 503, so Canvas delivers them again, and applying an event twice changes nothing.
        """
        if not inputs:
            return
        accepted_ms = round(self._clock() * 1000)
        data = b"".join(encode_record(item, accepted_ms) for item in inputs)
        with self._lock:
            self._check_open()
            if self._bytes + len(data) > self.max_bytes:
                raise SpoolFull(f"{len(inputs)} events ({len(data)} bytes) would take the spool past SPOOL_MAX_BYTES "
                                f"{self.max_bytes}: it holds {self._bytes} bytes in {self._records} events")
            active = self._active
            if active is not None and active.size >= self.segment_bytes:
                self._seal(active)
                active = None
            created = active is None
            if active is None:
                active = self._open_segment()
            assert active.fd is not None
            try:
                _write_all(active.fd, data)
                os.fsync(active.fd)
                if created:
                    os.fsync(self._dir_fd)
            except OSError:
                self._undo(active, created)
                raise
            active.records += len(inputs)
            active.size += len(data)
            if active.oldest is None:
                active.oldest = accepted_ms / 1000
            self._records += len(inputs)
            self._bytes += len(data)
            self._publish()

    def _open_segment(self) -> _Held:
        path = self.directory / f"{self._next_number:016d}{SEGMENT_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._next_number += 1
        held = _Held(path, fd=fd)
        self._segments.append(held)
        self._active = held
        return held

    def _undo(self, held: _Held, created: bool) -> None:
        """After a failed append: cut the file back to its good records (a new file: remove it), and seal it."""
        try:
            if created:
                self._seal(held)
                self._segments.remove(held)
                os.unlink(held.path)
                os.fsync(self._dir_fd)
            else:
                assert held.fd is not None
                os.ftruncate(held.fd, held.size)
                os.fsync(held.fd)
        except OSError as error:
            log.error("cannot cut a failed append off spool segment %s (%s): the segment is sealed, and what the "
                      "append left is cut off at the next start", held.path, safe_text(str(error)))
        finally:
            self._seal(held)

    def _seal(self, held: _Held) -> None:
        if held.fd is not None:
            fd, held.fd = held.fd, None
            try:
                os.close(fd)
            except OSError as error:  # its data were fsync'd already: nothing is lost
                log.warning("closing spool segment %s failed: %s", held.path, safe_text(str(error)))
        if self._active is held:
            self._active = None

    # -- the drainer thread -------------------------------------------------------------------------------------

    def oldest(self) -> Segment | None:
        """The oldest segment holding records, read whole (the active one is sealed first). None when empty."""
        while True:
            with self._lock:
                self._check_open()
                if not self._segments:
                    return None
                held = self._segments[0]
                if held is self._active:
                    self._seal(held)
                expected = (held.records, held.size)
            with open(held.path, "rb") as file:  # sealed: nothing writes it any more
                data = file.read(held.size)
            found = scan(data)
            if found.problem is None and (found.records, found.good) == expected:
                inputs = [Input(source, payload) for _, source, payload in decode(data, found.records)]
                return Segment(held.path, inputs, held.size)
            with self._lock:
                self._damaged_while_held(held, found, expected)
            # read it again (or the next one, if nothing good was left)

    def _damaged_while_held(self, held: _Held, found: Scan, expected: tuple[int, int]) -> None:
        """Records that were good when appended are not any more: keep what is, set the rest aside, say so."""
        self._check_open()
        missing = expected[0] - found.records
        reason = found.problem.reason if found.problem else "the file is shorter than what was written to it"
        aside, count = _set_aside(held.path, found.good, self._dir_fd)
        log.error("spool segment %s is damaged at offset %d (%s): %d bytes set aside in %s; %d of its %d events "
                  "kept", held.path, found.good, reason, count, aside or "nothing (they are gone)", found.records,
                  expected[0])
        self._records -= missing
        self._bytes -= expected[1] - found.good
        held.records, held.size = found.records, found.good
        if not held.records:
            self._segments.remove(held)
        self._publish()

    def consumed(self, segment: Segment) -> None:
        """The segment's records were committed: delete its file and stop counting them."""
        with self._lock:
            self._check_open()
            held = next((held for held in self._segments if held.path == segment.path), None)
            if held is None or held is self._active:
                raise ValueError(f"segment: {segment.path} is not a sealed segment of this spool")
            try:
                os.unlink(held.path)
            except FileNotFoundError:  # removed by hand: its records were committed all the same
                log.warning("spool segment %s was already gone when its events were committed", held.path)
            except OSError as error:
                # Its events are committed: stop holding them, so the drainer goes on to the next segment.
                # The file stays, and is applied again (to no effect) at the next start.
                log.error("cannot delete the applied spool segment %s: %s; it will be applied again at the next "
                          "start (a no-op)", held.path, error.strerror or error)
            self._segments.remove(held)
            self._records -= held.records
            self._bytes -= held.size
            self._publish()
            try:
                os.fsync(self._dir_fd)
            except OSError as error:
                log.error("cannot fsync the spool directory %s: %s", self.directory, error.strerror or error)

    # -- anywhere -----------------------------------------------------------------------------------------------

    def stats(self) -> SpoolStats:
        """The current totals: an immutable snapshot, replaced under the lock, read without it (O(1), never waits
        for an fsync, so the event loop and the metrics can call it)."""
        return self._stats

    def close(self) -> None:
        """Close the active segment and release the lock (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._active is not None:
                self._seal(self._active)
            self._release()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _publish(self) -> None:
        oldest = self._segments[0].oldest if self._segments else None
        self._stats = SpoolStats(self._records, self._bytes, len(self._segments), oldest)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"the spool in {self.directory} is closed")

    def _release(self) -> None:
        for name in ("_dir_fd", "_lock_fd"):
            fd = getattr(self, name, None)
            if fd is not None:
                setattr(self, name, None)
                os.close(fd)  # closing the lock file releases the flock

    # -- start-up -----------------------------------------------------------------------------------------------

    def _recover(self) -> int:
        """Read every segment: cut torn tails off, set damage aside, count the good records. The next number."""
        names = os.listdir(self.directory)
        numbers = [int(match.group(1)) for name in names if (match := _NUMBERED.fullmatch(name))]
        for name in sorted(name for name in names if _SEGMENT.fullmatch(name)):
            held = self._recover_segment(self.directory / name)
            if held is not None:
                self._segments.append(held)
                self._records += held.records
                self._bytes += held.size
        return max(numbers, default=0) + 1

    def _recover_segment(self, path: Path) -> _Held | None:
        data = path.read_bytes()
        found = scan(data)
        problem = found.problem
        if problem is not None and problem.torn:
            log.warning("spool segment %s ends in a torn record (%s; an append cut short by a crash, never "
                        "acknowledged): %d bytes cut off at offset %d", path, problem.reason,
                        len(data) - found.good, found.good)
            _truncate(path, found.good)
        elif problem is not None:
            aside, count = _set_aside(path, found.good, self._dir_fd)
            log.error("spool segment %s is damaged at offset %d (%s): %d bytes set aside in %s; the %d events "
                      "before it are kept", path, found.good, problem.reason, count, aside, found.records)
        if not found.records:
            if path.exists():
                os.unlink(path)
                os.fsync(self._dir_fd)
            return None
        oldest = found.first_ms / 1000 if found.first_ms is not None else None
        return _Held(path, found.records, found.good, oldest)


def read_stats(directory: str | os.PathLike) -> SpoolStats | None:
    """The stats of the spool in `directory`, read without its lock and without changing anything (for
    `canvas-progress status`, while the receiver runs); None when there is no spool there.

    Only good records count; a torn or damaged tail is left for the owner to handle (an append in progress
    looks torn, for a moment).
    """
    path = Path(directory)
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    segments = sorted(name for name in names if _SEGMENT.fullmatch(name))
    if not segments and LOCK_NAME not in names:
        return None
    records = size = count = 0
    oldest: float | None = None
    for name in segments:
        try:
            data = (path / name).read_bytes()
        except FileNotFoundError:  # consumed meanwhile
            continue
        found = scan(data)
        if found.records:
            records, size, count = records + found.records, size + found.good, count + 1
            if oldest is None and found.first_ms is not None:
                oldest = found.first_ms / 1000
    return SpoolStats(records, size, count, oldest)


# -- file operations -------------------------------------------------------------------------------------------------


def _make_directory(directory: Path) -> bool:
    """Create the spool directory (0700) if it is missing; True when it was created."""
    if directory.is_dir():
        return False
    if directory.exists():
        raise ConfigurationError(f"--spool-dir {directory} is not a directory")
    try:
        os.makedirs(directory, mode=0o700)
    except FileExistsError:
        return False
    return True


def _take_lock(directory: Path) -> int:
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise SpoolLocked(f"the spool directory {directory} is in use by another receiver (it holds "
                              f"{directory / LOCK_NAME}); give each receiver its own --spool-dir") from None
        raise
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def _set_aside(path: Path, keep: int, dir_fd: int) -> tuple[Path | None, int]:
    """Move the bytes of `path` from `keep` on to a new NAME.damaged (durably, before cutting them off); the
    file itself when nothing before them is good. Returns where they went and how many bytes (None, 0: none)."""
    aside = path.with_name(path.name + DAMAGED_SUFFIX)
    number = 0
    while aside.exists():
        number += 1
        aside = path.with_name(f"{path.name}{DAMAGED_SUFFIX}.{number}")
    size = path.stat().st_size
    if size <= keep:
        return None, 0
    if keep == 0:
        os.rename(path, aside)
        os.fsync(dir_fd)
        return aside, size
    with open(path, "rb") as source:
        source.seek(keep)
        rest = source.read()
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        _write_all(fd, rest)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.fsync(dir_fd)
    _truncate(path, keep)
    return aside, len(rest)
