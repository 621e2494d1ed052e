"""Stream inputs out of replay files, one `Input` per event, in flat memory.

Accepted: NDJSON / JSON Lines (LF or CRLF), a JSON array, one JSON object
(pretty-printed or not) or several concatenated, any of them gzip-compressed
(detected by content, not by name); `-` is standard input. Directories are
walked recursively in name order. A malformed line or value becomes an
input of its own, so it is rejected and stored rather than stopping the run.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import orjson

from consumer.sources import Input

STDIN = "-"
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 20
_WHITESPACE = " \t\r\n"
_DECODER = json.JSONDecoder()


def missing_paths(paths: Iterable[str]) -> list[str]:
    """The given paths that do not exist (checked before any work starts)."""
    return [path for path in paths if path != STDIN and not Path(path).exists()]


def iter_files(paths: Iterable[str]) -> Iterator[str]:
    """Expand directories into their files (recursively, sorted, hidden files skipped)."""
    for path in paths:
        if path == STDIN or not Path(path).is_dir():
            yield path
            continue
        for file in sorted(Path(path).rglob("*")):
            relative = file.relative_to(path).parts
            if file.is_file() and not any(part.startswith(".") for part in relative):
                yield str(file)


def read_inputs(paths: Iterable[str]) -> Iterator[Input]:
    """Every input of every file, in order."""
    for path in iter_files(paths):
        name = "<stdin>" if path == STDIN else path
        raw = sys.stdin.buffer if path == STDIN else open(path, "rb")  # noqa: SIM115 (closed below)
        try:
            yield from read_stream(_decompressed(raw), name)
        finally:
            if path != STDIN:
                raw.close()


def _decompressed(raw: BinaryIO) -> io.BufferedIOBase:
    stream = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type]
    if stream.peek(2)[:2] == _GZIP_MAGIC:
        return io.BufferedReader(gzip.GzipFile(fileobj=stream), _CHUNK)  # type: ignore[arg-type]
    return stream


def read_stream(stream: io.BufferedIOBase, name: str) -> Iterator[Input]:
    """Inputs of one (already decompressed) stream; the format is told by its first line."""
    lines = iter(stream)
    for number, line in enumerate(lines, 1):
        if number == 1:
            line = line.removeprefix(_BOM)
        text = line.strip()
        if not text:
            continue
        if text.startswith(b"[") or (text.startswith(b"{") and not _is_json(text)):
            # A JSON array, or an object spread over lines: scan values.
            yield from _scan_values(line, stream, name, number, inside_array=text.startswith(b"["))
            return
        yield Input(f"{name}:{number}", text)
        for number, line in enumerate(lines, number + 1):  # noqa: B020 (continues the same count)
            text = line.strip()
            if text:
                yield Input(f"{name}:{number}", text)
        return


def _is_json(text: bytes) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def _scan_values(first: bytes, stream: io.BufferedIOBase, name: str, line: int, inside_array: bool) -> Iterator[Input]:
    """Yield each top-level value (or array element) as the exact bytes it was written with.

    Text is decoded with surrogateescape so that encoding it back gives the
    original bytes, invalid UTF-8 included. A value that cannot be decoded
    is yielded up to the end of its line, and scanning resumes after it.
    """
    buffer = first.decode("utf-8", "surrogateescape")
    position = 0
    at_eof = False
    if inside_array:
        position = buffer.index("[") + 1

    def refill() -> bool:
        nonlocal buffer, position, at_eof
        chunk = stream.read(_CHUNK)
        if not chunk:
            at_eof = True
            return False
        buffer = buffer[position:] + chunk.decode("utf-8", "surrogateescape")
        position = 0
        return True

    while True:
        while position < len(buffer) and (buffer[position] in _WHITESPACE or (inside_array and buffer[position] == ",")):
            if buffer[position] == "\n":
                line += 1
            position += 1
        if position >= len(buffer):
            if refill():
                continue
            return
        if inside_array and buffer[position] == "]":
            inside_array = False
            position += 1
            continue
        if not inside_array and buffer[position] == "[":  # another top-level array: its elements are the events
            inside_array = True
            position += 1
            continue
        try:
            _, end = _DECODER.raw_decode(buffer, position)
        except json.JSONDecodeError as error:
            if not at_eof and error.pos >= len(buffer) - 64 and refill():
                continue  # probably cut off by the chunk boundary
            end = _resync_point(buffer, position, error.pos)
        else:
            if end == len(buffer) and not at_eof and refill():
                continue  # a number may go on in the next chunk
        raw = buffer[position:end]
        yield Input(f"{name}:{line}", raw.encode("utf-8", "surrogateescape").strip())
        line += raw.count("\n")
        position = end


def _resync_point(buffer: str, start: int, error_at: int) -> int:
    """Where to resume after a malformed value starting at `start`."""
    last_newline = buffer.rfind("\n", start, error_at)
    if last_newline != -1:
        return last_newline  # the value broke on an earlier line: give up that much
    end_of_line = buffer.find("\n", error_at)
    return len(buffer) if end_of_line == -1 else end_of_line
