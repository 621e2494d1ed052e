"""Stream inputs out of replay files, one `Input` per JSON value, in flat memory.

Formats: NDJSON / JSON Lines (LF or CRLF), a JSON array (its elements are the
inputs), one JSON object or several (pretty-printed or not, concatenated with
or without whitespace or commas between them), any of them gzip-compressed
(told by content, not by name), with or without a UTF-8 BOM; `-` is standard
input. Directories are walked recursively in name order; names starting with
"." below a directory given are skipped.

Every input is the exact bytes of one value, and its source is `path:LINE`
(the line the value starts on), or `path:LINE#N` (N from 1) when that line
holds several values. Nothing is dropped but whitespace and the commas and
brackets that separate array elements:

- A line that is one valid JSON value (orjson says so) is one input: the
  fast path, and the whole of NDJSON. Anything else goes to a small
  non-recursive scanner that tracks strings, escapes and brackets (any
  depth) and leaves parsing to `parse_event`; a valid value laid out as
  usual is found at C speed and confirmed by orjson.
- A broken value rejects only itself. It ends at its closing bracket; or
  before a closing bracket that it never opened; or before the next line
  that starts no further right than the value did with `{` or `[`, or with
  anything but a closing bracket unless the whole is valid JSON (so each
  NDJSON line, and each pretty-printed value, stands alone); or at the end
  of the stream. A raw newline inside a string ends that string, so a
  string left open takes the rest of its line with it (later values on
  that line are rejected with it; the next lines are not affected).
- Bytes outside any value (`] junk`, a scalar) are kept as one input per
  run, up to the next `{`, `[`, comma or line end.

Whole files that cannot be used are reported, one line each, into a
`ReadReport` and the run goes on: files that are not events, told by content
(SQLite databases and their journals, other binary data) are skipped;
compressed formats other than gzip, unreadable files and directories and
dangling links are not read; damaged gzip data is read up to the damage,
whose byte offset in the compressed file is reported. File names are shown
as text whatever their bytes: bytes that are not UTF-8 and unprintable
characters are written as escapes.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import stat
import sys
import zlib
from collections import Counter
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson

from consumer.core import Input

log = logging.getLogger(__name__)

STDIN = "-"
SKIPPED, UNREADABLE, DAMAGED = "skipped", "unreadable", "damaged"
_CHUNK = 1 << 20
_SNIFF = 4096
_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_WHITESPACE = b" \t\n\r\x0b\x0c"  # what bytes.strip() removes: never part of an input
_NEWLINE, _QUOTE, _COMMA = 0x0A, 0x22, 0x2C
_NEVER_LAST = b"{[:"  # no JSON value ends with these: such a line starts a value that goes on
_OPEN_BRACE, _CLOSE_BRACE, _OPEN_BRACKET, _CLOSE_BRACKET = 0x7B, 0x7D, 0x5B, 0x5D

# A JSON string body after its opening quote; stops at the closing quote, a raw newline or the buffer end.
_STRING_BODY = re.compile(rb'(?:[^"\\\n]++|\\.)*+')
# Inside a container: everything up to the next bracket, an unclosable string, or a newline after which a
# line starts with `{` or `[` (the only places the scanner has to decide something).
_CONTAINER_RUN = re.compile(rb'(?:[^"{}\[\]\n]++|"(?:[^"\\\n]++|\\.)*+"|\n(?![ \t\r\x0b\x0c]*[{\[]))*+')
# Bytes outside values (junk, scalars): up to the next value, comma or line end; strings are skipped whole.
_BARE_RUN = re.compile(rb'(?:[^"{\[\n,]++|"(?:[^"\\\n]++|\\.)*+")*+')
_BARE_RUN_IN_ARRAY = re.compile(rb'(?:[^"{\[\]\n,]++|"(?:[^"\\\n]++|\\.)*+")*+')
# After a compact value: its last closing bracket, then a comma and the next value, a closing bracket,
# another value or the end of the line (a guess: orjson confirms it).
_COMPACT_END = re.compile(rb"[}\]](?=[ \t\r]*(?:,[ \t\r]*[{\[]|[\]{\[]|\n|$))")
_GUESS_LIMIT = 1 << 16
_BATCH = 1024
_MAX_INDENT = 256
_SEPARATORS = re.compile(rb"[ \t\r\x0b\x0c,]*+")
_INDENT = re.compile(rb"[ \t\r\x0b\x0c]*+")

# Content that is not events: (signature, what it is, kind). SKIPPED: certainly not events. UNREADABLE:
# a compressed or encoded form that replay does not read, and that may well hold events.
_NOT_READ = "not read (replay reads gzip; decompress it first)"
_SIGNATURES = (
    (b"SQLite format 3\x00", "an SQLite database", SKIPPED),
    (b"\x37\x7f\x06\x82", "an SQLite write-ahead log", SKIPPED),
    (b"\x37\x7f\x06\x83", "an SQLite write-ahead log", SKIPPED),
    (b"\x18\xe2\x2d\x00", "an SQLite shared-memory index", SKIPPED),
    (b"\x00\x2d\xe2\x18", "an SQLite shared-memory index", SKIPPED),
    (b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7", "an SQLite rollback journal", SKIPPED),
    (_GZIP_MAGIC, "gzip-compressed twice: not read (decompress it once first)", UNREADABLE),
    (b"\xfd7zXZ\x00", f"xz-compressed: {_NOT_READ}", UNREADABLE),
    (b"\x28\xb5\x2f\xfd", f"zstd-compressed: {_NOT_READ}", UNREADABLE),
    (b"\x04\x22\x4d\x18", f"lz4-compressed: {_NOT_READ}", UNREADABLE),
    (b"PK\x03\x04", "a zip archive: not read (extract it first)", UNREADABLE),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive: not read (extract it first)", UNREADABLE),
    (b"\xff\xfe", "UTF-16 or UTF-32 text: not read (replay reads UTF-8)", UNREADABLE),
    (b"\xfe\xff", "UTF-16 text: not read (replay reads UTF-8)", UNREADABLE),
)
_BZIP2 = re.compile(rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)")


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # SKIPPED, UNREADABLE or DAMAGED
    name: str  # the file's display name
    reason: str

    def __str__(self) -> str:
        verb = {SKIPPED: "skipped", UNREADABLE: "cannot read", DAMAGED: "damaged"}[self.kind]
        return f"{verb} {self.name}: {self.reason}"


@dataclass
class ReadReport:
    """The files the reader could not use, as it meets them; each is also logged as one line.

    `failed` is true when a file that may hold events was not read, or not
    read to its end (unreadable, damaged); skipped files are not events.
    """

    counts: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)  # the first _KEPT, for callers and tests
    _KEPT = 1000

    def add(self, kind: str, name: str, reason: str) -> None:
        problem = Problem(kind, name, reason)
        self.counts[kind] += 1
        if len(self.problems) < self._KEPT:
            self.problems.append(problem)
        log.log(logging.WARNING if kind == SKIPPED else logging.ERROR, "%s", problem, extra={"file": name, "problem": kind})

    @property
    def not_whole(self) -> int:
        """Files that may hold events and were not read, or not to their end (unreadable, damaged)."""
        return self.counts[UNREADABLE] + self.counts[DAMAGED]

    @property
    def failed(self) -> bool:
        return self.not_whole > 0

    def as_dict(self) -> dict[str, int]:
        return {f"files_{kind}": self.counts[kind] for kind in (SKIPPED, UNREADABLE, DAMAGED)}


def display_name(path: str) -> str:
    """`path` as safe text: undecodable bytes as \\xNN, control and other unprintable characters escaped.

    Sources go to the database, logs and terminals: a surrogate cannot be
    encoded, and an escape sequence in a file name must not reach a terminal.
    """
    if path == STDIN:
        return "<stdin>"
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError:  # a str that did not come from the file system
        raw = path.encode("utf-8", "backslashreplace")
    text = raw.decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(character if character.isprintable() else _escape(character) for character in text)


def _escape(character: str) -> str:
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def missing_paths(paths: Iterable[str]) -> list[str]:
    """The given paths that do not exist (checked before any work starts); a dangling link is missing."""
    return [path for path in paths if path != STDIN and not _exists(path)]


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, ValueError):
        return True  # there, but not usable: the reader reports why
    return True


def iter_files(paths: Iterable[str], report: ReadReport | None = None) -> Iterator[str]:
    """Expand directories into their files (recursively, in name order, hidden names skipped)."""
    report = report if report is not None else ReadReport()
    for path in paths:
        if path != STDIN and os.path.isdir(path):
            yield from _walk(path, report)
        else:
            yield path  # any non-directory given by name is read, a FIFO or /dev/stdin included


def _walk(root: str, report: ReadReport) -> Iterator[str]:
    """Regular files under `root`, depth first in name order; an explicit stack, so any depth works."""
    stack = [_listing(root, report)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        path, entry = item
        kind = _entry_kind(entry, path, report)
        if kind == "directory":
            stack.append(_listing(path, report))
        elif kind == "file":
            yield path


def _listing(directory: str, report: ReadReport) -> Iterator[tuple[str, os.DirEntry]]:
    """(path, entry) of the visible names in `directory`, sorted; a directory that cannot be listed is reported."""
    try:
        with os.scandir(directory) as listing:
            entries = sorted((entry for entry in listing if not entry.name.startswith(".")), key=lambda entry: entry.name)
    except OSError as error:
        report.add(UNREADABLE, display_name(directory), f"{error.strerror or error} (cannot list this directory)")
        return iter(())
    return ((str(Path(directory, entry.name)), entry) for entry in entries)


def _entry_kind(entry: os.DirEntry, path: str, report: ReadReport) -> str | None:
    """"file", "directory", or None: reported (or a hidden name, skipped silently)."""
    try:
        if entry.is_symlink():
            return _link_kind(path, report)
        if entry.is_dir(follow_symlinks=False):
            return "directory"
        if entry.is_file(follow_symlinks=False):
            return "file"
    except OSError as error:
        report.add(UNREADABLE, display_name(path), str(error.strerror or error))
        return None
    report.add(SKIPPED, display_name(path), "not a regular file (a FIFO, socket or device)")
    return None


def _link_kind(path: str, report: ReadReport) -> str | None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        report.add(UNREADABLE, display_name(path), "a dangling symbolic link (its target does not exist)")
        return None
    except OSError as error:
        report.add(UNREADABLE, display_name(path), f"a symbolic link that cannot be followed: {error.strerror or error}")
        return None
    if stat.S_ISDIR(mode):
        # Not followed, as before: a link can lead back up the tree, or read the same files twice.
        report.add(SKIPPED, display_name(path), "a symbolic link to a directory (not followed)")
        return None
    if stat.S_ISREG(mode):
        return "file"
    report.add(SKIPPED, display_name(path), "a symbolic link to something that is not a regular file")
    return None


def read_inputs(paths: Iterable[str], report: ReadReport | None = None) -> Iterator[Input]:
    """Every input of every file, in order; problems with whole files go to `report` and the run goes on."""
    report = report if report is not None else ReadReport()
    for path in iter_files(paths, report):
        for batch in _read_file(path, report):
            yield from batch


# Inside, inputs travel in lists (a buffer's worth): a generator layer per input costs more than the parsing.
Batches = Iterator[list[Input]]


def _read_file(path: str, report: ReadReport) -> Batches:
    name = display_name(path)
    if path == STDIN and sys.stdin is None:  # started with standard input closed
        report.add(UNREADABLE, name, "standard input is closed")
        return
    try:
        raw = sys.stdin.buffer if path == STDIN else open(path, "rb")  # (closed below)
    except FileNotFoundError:
        report.add(SKIPPED, name, "it disappeared before it could be read")
        return
    except (OSError, ValueError) as error:
        report.add(UNREADABLE, name, str(getattr(error, "strerror", None) or error))
        return
    try:
        yield from stream_batches(raw, name, report)
    finally:
        if path != STDIN:
            raw.close()


def read_stream(stream: BinaryIO, name: str, report: ReadReport | None = None) -> Iterator[Input]:
    """Inputs of one binary stream (gzip or not), `name` being its display name."""
    for batch in stream_batches(stream, name, report if report is not None else ReadReport()):
        yield from batch


def stream_batches(stream: BinaryIO, name: str, report: ReadReport) -> Batches:
    """The inputs of one binary stream in lists, exactly as a file's: for streams that are not local files
    (S3 objects). `name` is the display name sources start with; problems go to `report` under it.

    The caller opens and closes the stream; an OSError from its `read` is reported as a read error at that
    byte, everything before it kept."""
    try:
        yield from _stream_batches(stream, name, report)
    except MemoryError:  # one value bigger than memory (no line ends, brackets never close): the next file
        report.add(UNREADABLE, name, "a value too large to hold in memory; everything before it was read")


def _stream_batches(stream: BinaryIO, name: str, report: ReadReport) -> Batches:
    file = _File(name, report)
    head, chunks = _head(file.chunks(stream))
    wrapping = ""
    if head.startswith(_GZIP_MAGIC):
        head, chunks = _head(file.gunzip(_prepend(head, chunks)))
        wrapping = "gzip-compressed data: "
    verdict = _not_events(head)
    if verdict is not None:
        file.problem(verdict[0], wrapping + verdict[1])
        return
    yield from _Scanner(_prepend(head, chunks), name).batches()


def _head(chunks: Iterator[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """The first bytes of a stream (enough to tell its kind), and the rest."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= _SNIFF:
            break
    return head, chunks


def _prepend(head: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from chunks


def _not_events(head: bytes) -> tuple[str, str] | None:
    """(kind, reason) when the content is not events (None: read it). Conservative: see the docstring."""
    text = head.removeprefix(_BOM).lstrip(_WHITESPACE)
    if not text or text[0] in (_OPEN_BRACE, _OPEN_BRACKET):
        return None  # JSON-looking content is always read, whatever follows
    for signature, what, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind, f"{what}, not events" if kind == SKIPPED else what
    if _BZIP2.match(head):
        return UNREADABLE, f"bzip2-compressed: {_NOT_READ}"
    if b"\x00" in head:
        return SKIPPED, "binary data (it holds NUL bytes), not events"
    return None


class _File:
    """One file being read: its chunks (raw, then gunzipped) and at most one problem line."""

    def __init__(self, name: str, report: ReadReport) -> None:
        self.name = name
        self.report = report
        self.failed = False

    def problem(self, kind: str, reason: str) -> None:
        if not self.failed:  # the first problem ends the file: one line each
            self.failed = True
            self.report.add(kind, self.name, reason)

    def chunks(self, stream: BinaryIO) -> Iterator[bytes]:
        """Raw chunks as they arrive (read1: a pipe is not waited on until a chunk fills)."""
        read = getattr(stream, "read1", stream.read)
        offset = 0
        while True:
            try:
                chunk = read(_CHUNK)
            except OSError as error:
                where = f"at byte {offset:,}; everything before it was read" if offset else "at its start"
                self.problem(UNREADABLE, f"read error {where}: {error.strerror or error}")
                return
            if not chunk:
                return
            offset += len(chunk)
            yield chunk

    def gunzip(self, compressed: Iterator[bytes]) -> Iterator[bytes]:
        """The data of the gzip members one after another, up to the first damage, which is reported."""
        inflater = _Gunzip(compressed)
        yield from inflater
        if inflater.damage is not None:
            self.problem(DAMAGED, f"{inflater.damage}; everything before it was read")


class _Gunzip:
    """Inflates gzip members one after another and says where the first damage is, if any.

    zlib directly rather than the gzip module: the module's errors lose the
    data decoded just before them and do not say where the damage is.
    """

    def __init__(self, compressed: Iterator[bytes]) -> None:
        self.compressed = compressed
        self.offset = 0  # in the compressed file, of data[0]
        self.data = b""
        self.member: zlib._Decompress | None = None
        self.damage: str | None = None

    def __iter__(self) -> Iterator[bytes]:
        while self.data or self._read():
            if self.member is None and not self._start_member():
                return
            out = yield from self._inflate()
            if out is None:
                return
            if out:
                yield out
        if self.member is not None:
            tail = self.member.flush()
            if tail:
                yield tail
            self.damage = f"the gzip data stops at byte {self.offset:,}, before its end (truncated)"

    def _read(self) -> bool:
        self.data = next(self.compressed, b"")
        return bool(self.data)

    def _start_member(self) -> bool:
        """Begin the next member; False at the end (zero padding after a member is allowed, as gzip does)."""
        padding = len(self.data) - len(self.data.lstrip(b"\x00"))
        self.offset, self.data = self.offset + padding, self.data[padding:]
        if not self.data:
            return True  # read on
        if len(self.data) < 2:
            self.data += next(self.compressed, b"")
        if not self.data.startswith(_GZIP_MAGIC):
            self.damage = f"bytes that are not gzip data at byte {self.offset:,}, after the gzip data before them"
            return False
        self.member = zlib.decompressobj(wbits=31)
        return True

    def _inflate(self) -> Generator[bytes, None, bytes | None]:
        """Inflate some of `data`; None after damage (what came before it has been yielded)."""
        if not self.data:
            return b""
        member = self.member
        assert member is not None
        before = member.copy()
        try:
            out = member.decompress(self.data, _CHUNK)
        except zlib.error as error:
            at, detail = yield from _salvage(before, self.data, str(error))
            self.damage = f"the gzip data is damaged at byte {self.offset + at:,} ({_zlib_detail(detail)})"
            return None
        rest = member.unused_data if member.eof else member.unconsumed_tail
        self.offset, self.data = self.offset + len(self.data) - len(rest), rest
        if member.eof:
            self.member = None
        return out


def _salvage(decompressor: zlib._Decompress, data: bytes, error: str) -> Generator[bytes, None, tuple[int, str]]:
    """Feed `data` byte by byte to find the first bad byte, yielding what decodes before it."""
    out = bytearray()
    for index in range(len(data)):
        try:
            out += decompressor.decompress(data[index : index + 1])
        except zlib.error as exc:
            if out:
                yield bytes(out)
            return index, str(exc)
        if len(out) >= _CHUNK:
            yield bytes(out)
            out.clear()
    if out:
        yield bytes(out)
    return len(data), error


def _zlib_detail(message: str) -> str:
    return message.split(": ", 1)[-1]  # "Error -3 while decompressing data: invalid block type"


@functools.lru_cache(maxsize=64)
def _outdented_line(column: int) -> re.Pattern[bytes]:
    """A newline, then a line whose first byte is at most `column` bytes in and is not a closing bracket."""
    return re.compile(rb"\n[ \t\r\x0b\x0c]{0,%d}[^ \t\r\x0b\x0c\n}\]]" % column)


class _Scanner:
    """Splits one decompressed stream into inputs by the rules of the module docstring.

    Offsets kept across refills are absolute (from the stream's start);
    `buf` holds the bytes from `base` on.
    """

    def __init__(self, chunks: Iterator[bytes], name: str) -> None:
        self.chunks = chunks
        self.name = name
        self.buf = b""
        self.base = 0
        self.pos = 0  # absolute: the next byte to look at
        self.eof = False
        self.line = 1  # the line number at `counted`
        self.counted = 0  # absolute: newlines before it are counted in `line`
        self.line_start = 0  # absolute: where the line holding `counted` starts
        self.in_array = False  # inside a top-level array, whose elements are the inputs
        self.pending: tuple[int, int, bytes] | None = None  # (line, index on that line, payload), name not yet known

    def batches(self) -> Batches:
        self._more(0)
        if self.buf.startswith(_BOM):
            self.pos = self.counted = len(_BOM)
        while self.pos - self.base < len(self.buf) or self._more(self.pos):
            yield from self._whole_lines()
            yield from self._values()
        if self.pending is not None:
            yield [self._named(*self.pending, alone=self.pending[1] == 1)]

    # -- buffer -----------------------------------------------------------------------------------

    def _more(self, keep: int) -> bool:
        """Append the next chunk, dropping the bytes before `keep`; False at the end of the stream."""
        chunk = next(self.chunks, None)
        while chunk == b"":
            chunk = next(self.chunks, None)
        if chunk is None:
            self.eof = True
            return False
        if keep == self.base and len(self.buf) > len(chunk):
            # Nothing can be dropped (one value longer than the buffer): grow it geometrically, so
            # that a value of n bytes costs O(n) copying, not O(n^2 / chunk).
            pieces, size = [chunk], len(chunk)
            while size < len(self.buf) and (extra := next(self.chunks, None)) is not None:
                pieces.append(extra)
                size += len(extra)
            chunk = b"".join(pieces)
        self._line_of(keep)  # count the newlines about to be dropped
        self.buf = self.buf[keep - self.base :] + chunk
        self.base = keep
        return True

    def _line_of(self, offset: int) -> int:
        """The line number at absolute `offset` (not before the last one asked for)."""
        if offset > self.counted:
            start, end = self.counted - self.base, offset - self.base
            newlines = self.buf.count(b"\n", start, end)
            if newlines:
                self.line += newlines
                self.line_start = self.base + self.buf.rfind(b"\n", start, end) + 1
            self.counted = offset
        return self.line

    # -- naming -----------------------------------------------------------------------------------

    def _named(self, line: int, index: int, payload: bytes, alone: bool) -> Input:
        return Input(f"{self.name}:{line}" if alone else f"{self.name}:{line}#{index}", payload)

    def _queue(self, line: int, payload: bytes) -> Input | None:
        """Hold `payload` until the next value says whether its line holds several; return the one released."""
        previous = self.pending
        if previous is None:
            self.pending = (line, 1, payload)
            return None
        if previous[0] == line:
            self.pending = (line, previous[1] + 1, payload)
            return self._named(*previous, alone=False)
        self.pending = (line, 1, payload)
        return self._named(*previous, alone=previous[1] == 1)

    # -- the fast path: whole lines ---------------------------------------------------------------

    def _whole_lines(self) -> Batches:
        """Lines that are each exactly one JSON value (all of NDJSON); stops at the first other line."""
        out: list[Input] = []
        if self.pending is not None:  # values of earlier lines: their names are known now
            out.append(self._named(*self.pending, alone=self.pending[1] == 1))
            self.pending = None
        loads, invalid, name, top, never_last = orjson.loads, orjson.JSONDecodeError, self.name, not self.in_array, _NEVER_LAST
        buf, start, line = self.buf, self.pos - self.base, self.line
        size = len(buf)
        while True:
            end = buf.find(b"\n", start)
            if end == -1:
                self._at_line(start, line)
                if out:
                    yield out
                    out = []
                if size - start < _CHUNK and self._more(self.pos):
                    buf, start = self.buf, self.pos - self.base
                    size = len(buf)
                    continue
                if not self.eof or start >= size:
                    return  # the end, or a line longer than a chunk: the scanner streams it
                end = size  # the last line, without a newline
            value = buf[start:end].strip()
            if value and value[-1] == _COMMA:  # an array element's separator (or a stray one)
                value = value[:-1].rstrip()
            if value:
                if value[-1] in never_last or (top and value[0] == _OPEN_BRACKET):
                    break  # a line that opens a value, or a top-level array (its elements are the inputs)
                try:
                    loads(value)  # one value, whole? (about 2 us a line; the price of never merging inputs)
                except invalid:
                    break
                out.append(Input(f"{name}:{line}", value))
            if end == size:
                start = end
                break
            start, line = end + 1, line + 1
        self._at_line(start, line)
        if out:
            yield out

    def _at_line(self, offset: int, line: int) -> None:
        self.pos = self.counted = self.line_start = self.base + offset
        self.line = line

    # -- the scanner: values anywhere ---------------------------------------------------------------

    def _values(self) -> Batches:
        """Values and separators from `pos` to the end of the line where a value ends (or the stream's)."""
        out: list[Input] = []
        while True:
            if len(out) >= _BATCH:
                yield out
                out = []
            start = self._next_value()
            if start is None:
                if out:
                    yield out
                return
            line = self._line_of(start)
            first = self.buf[start - self.base]
            if first in (_OPEN_BRACE, _OPEN_BRACKET):
                end = self._well_formed_end(start)
                if end is None:
                    column = start - self.line_start
                    end = self._outdent(start, self._container_end(start, column), column)
            else:
                end = self._bare_end(start)
            released = self._queue(line, self.buf[start - self.base : end - self.base].rstrip(_WHITESPACE))
            if released is not None:
                out.append(released)
            self.pos = end

    def _next_value(self) -> int | None:
        """Skip separators and array brackets; the offset of the next value on this line, or None.

        None at the end of the stream, and after a newline (`pos` is then
        the next line's start, where the fast path may take over).
        """
        while True:
            index = _SEPARATORS.match(self.buf, self.pos - self.base).end()
            self.pos = self.base + index
            if index == len(self.buf):
                if not self._more(self.pos):
                    return None
                continue
            byte = self.buf[index]
            if byte == _NEWLINE:
                self.pos += 1
                self._line_of(self.pos)
                return None
            if byte == _OPEN_BRACKET and not self.in_array:
                self.in_array = True
            elif byte == _CLOSE_BRACKET and self.in_array:
                self.in_array = False
            else:
                return self.pos
            self.pos += 1

    def _well_formed_end(self, start: int) -> int | None:
        """Where the object or array at `start` ends if it is valid JSON laid out as usual; else None.

        A guess found at C speed, kept only if orjson accepts the bytes up to
        it: a valid object or array is a prefix of nothing else valid, so the
        guess is then exactly the value. Everything else goes to the scanner.
        """
        buf, base = self.buf, self.base
        at = start - base
        limit = min(len(buf), at + _GUESS_LIMIT)
        newline = buf.find(b"\n", at, limit)
        column = start - self.line_start
        indent = buf[at - column : at] if column <= _MAX_INDENT and self.line_start >= base else b"x"
        if newline != -1 and not indent.strip(_WHITESPACE) and not buf[at + 1 : newline].strip(_WHITESPACE):
            # Pretty-printed: the opener alone on its line, the closer on a line of its own at the same indent.
            closer = buf.find(b"\n" + indent + (b"}" if buf[at] == _OPEN_BRACE else b"]"), newline, limit)
            end = closer + len(indent) + 2 if closer != -1 else -1
        else:
            # Compact: the first closing bracket followed by a separator, a new value or the end of the line.
            match = _COMPACT_END.search(buf, at, limit)
            end = match.start() + 1 if match is not None else -1
        if end == -1:
            return None
        try:
            orjson.loads(memoryview(buf)[at:end])
        except orjson.JSONDecodeError:
            return None
        return base + end

    def _container_end(self, start: int, column: int) -> int:
        """Where the object or array at `start` ends (see the module docstring); any depth, no recursion."""
        stack = bytearray(self.buf[start - self.base : start - self.base + 1])
        at = start + 1
        while True:
            buf, base = self.buf, self.base
            index = _CONTAINER_RUN.match(buf, at - base).end()
            if index == len(buf):
                if not self._more(start):
                    return base + index
                newline = buf.rfind(b"\n", at - base, index)  # a line start cut off by the refill: look again
                at = base + newline if newline != -1 else at
                continue
            byte = buf[index]
            if byte == _NEWLINE:  # the next line starts with { or [
                indent = _INDENT.match(buf, index + 1).end() - index - 1
                if indent <= column:
                    return base + index
                at = base + index + 1
            elif byte == _QUOTE:  # a string the run could not close
                at = self._string_end(base + index, start)
            elif byte in (_OPEN_BRACE, _OPEN_BRACKET):
                stack.append(byte)
                at = base + index + 1
            else:
                opener = stack.rfind(_OPEN_BRACE if byte == _CLOSE_BRACE else _OPEN_BRACKET)
                if opener == -1:
                    return base + index  # a bracket this value never opened belongs to what follows
                del stack[opener:]
                at = base + index + 1
                if not stack:
                    return at

    def _outdent(self, start: int, end: int, column: int) -> int:
        """Cut a broken value spanning lines before its first line that starts no further right than it did
        with anything but a closing bracket (pretty-printed values never do; a truncated NDJSON line does).

        Checked after the scan, and only where it changes something, so that a valid value in an unusual
        layout stays whole.
        """
        buf, base = self.buf, self.base
        newline = buf.find(b"\n", start - base, end - base)
        if newline == -1:
            return end
        outdented = _outdented_line(column).search(buf, newline, end - base)
        if outdented is None:
            return end
        try:
            orjson.loads(memoryview(buf)[start - base : end - base])
        except orjson.JSONDecodeError:
            return base + outdented.start()
        return end

    def _string_end(self, quote: int, keep: int) -> int:
        """The offset after the string opened at `quote`: after its closing quote, or at a raw newline."""
        while True:
            buf, base = self.buf, self.base
            index = _STRING_BODY.match(buf, quote - base + 1).end()
            if index < len(buf):
                if buf[index] == _QUOTE:
                    return base + index + 1
                if buf[index] == _NEWLINE:
                    return base + index
                if index + 1 < len(buf):  # a backslash before a newline
                    return base + index + 1
            if not self._more(keep):
                return self.base + len(self.buf)

    def _bare_end(self, start: int) -> int:
        """Where a run of bytes outside values (a scalar, junk) ends: the next value, comma or line end."""
        run = _BARE_RUN_IN_ARRAY if self.in_array else _BARE_RUN
        at = start if self.buf[start - self.base] == _QUOTE else start + 1
        while True:
            buf, base = self.buf, self.base
            index = run.match(buf, at - base).end()
            if index == len(buf):
                if not self._more(start):
                    return base + index
                at = base + index
            elif buf[index] == _QUOTE:
                at = self._string_end(base + index, start)
            else:
                return base + index
