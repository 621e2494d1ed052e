"""The replay file formats: each JSON value is one Input with its exact bytes and its own source.

Whatever a file holds, nothing is lost: every byte that is not whitespace or
array punctuation ends up in exactly one input, and a file that cannot be
used whole is reported (ReadReport) while the other files are read.
"""

import gzip
import io
import json
import os
import random
import re
import sqlite3
import stat
import zlib
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.sources import files
from consumer.sources.files import (
    DAMAGED,
    SKIPPED,
    UNREADABLE,
    ReadReport,
    display_name,
    iter_files,
    missing_paths,
    read_inputs,
    read_stream,
)
from tests.factory import course_event, progress_event

EVENTS = [course_event("2019-11-01T00:00:00Z"), progress_event("2019-11-01T00:00:01Z"), progress_event("2019-11-01T00:00:02Z", user_id="9")]


def payloads(path) -> list[bytes]:
    return [item.payload for item in read_inputs([str(path)])]


def decoded(path) -> list[dict]:
    return [json.loads(p) for p in payloads(path)]


def inputs_of(data: bytes, name: str = "f") -> list[tuple[str, bytes]]:
    return [(item.source, item.payload) for item in read_stream(io.BufferedReader(io.BytesIO(data)), name)]


def read_with_report(*paths) -> tuple[list, ReadReport]:
    report = ReadReport()
    return list(read_inputs([str(p) for p in paths], report)), report


# -- the formats --------------------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_ndjson_lf_and_crlf(tmp_path, newline):
    path = tmp_path / "events.ndjson"
    path.write_bytes(newline.join(json.dumps(e) for e in EVENTS).encode() + newline.encode())
    items = list(read_inputs([str(path)]))
    assert [json.loads(i.payload) for i in items] == EVENTS
    assert [i.source for i in items] == [f"{path}:1", f"{path}:2", f"{path}:3"]
    assert all(not i.payload.endswith(b"\r") for i in items)


def test_blank_lines_and_bom_are_skipped(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(EVENTS[0]).encode() + b"\n\n  \n" + json.dumps(EVENTS[1]).encode())
    assert decoded(path) == EVENTS[:2]


def test_json_array_pretty_and_compact(tmp_path):
    pretty, compact = tmp_path / "pretty.json", tmp_path / "compact.json"
    pretty.write_text(json.dumps(EVENTS, indent=2))
    compact.write_text(json.dumps(EVENTS))
    assert decoded(pretty) == EVENTS
    assert decoded(compact) == EVENTS
    assert [i.source for i in read_inputs([str(pretty)])][0] == f"{pretty}:2"


def test_single_pretty_printed_object(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps(EVENTS[1], indent=2))
    assert decoded(path) == [EVENTS[1]]


def test_several_pretty_printed_objects_keep_their_exact_bytes():
    texts = [json.dumps(e, indent=4).encode() for e in EVENTS]
    assert [payload for _, payload in inputs_of(b"\n".join(texts))] == texts


def test_concatenated_values_without_separators():
    texts = [json.dumps(e, separators=(",", ":")).encode() for e in EVENTS]
    assert inputs_of(b"".join(texts)) == [("f:1#1", texts[0]), ("f:1#2", texts[1]), ("f:1#3", texts[2])]


def test_gzip_is_detected_by_content_not_name(tmp_path):
    path = tmp_path / "archive.dat"
    path.write_bytes(gzip.compress("\n".join(json.dumps(e) for e in EVENTS).encode()))
    assert decoded(path) == EVENTS


def test_gzip_json_array(tmp_path):
    path = tmp_path / "events.json.gz"
    path.write_bytes(gzip.compress(json.dumps(EVENTS).encode()))
    assert decoded(path) == EVENTS


def test_concatenated_gzip_members_and_zero_padding(tmp_path):
    path = tmp_path / "members.gz"
    path.write_bytes(gzip.compress(json.dumps(EVENTS[0]).encode() + b"\n") + gzip.compress(json.dumps(EVENTS[1]).encode()) + b"\0" * 8)
    events, report = read_with_report(path)
    assert [json.loads(i.payload) for i in events] == EVENTS[:2] and report.problems == []


def test_malformed_lines_are_kept_as_their_own_inputs(tmp_path):
    path = tmp_path / "mixed.ndjson"
    lines = [json.dumps(EVENTS[0]).encode(), b'{"metadata": {"event_name": "cou', b"\xff\xfe garbage", json.dumps(EVENTS[1]).encode()]
    path.write_bytes(b"\n".join(lines))
    assert payloads(path) == lines


def test_malformed_first_line_does_not_hide_the_rest(tmp_path):
    path = tmp_path / "bad-start.ndjson"
    lines = [b'{"metadata": {', json.dumps(EVENTS[0]).encode(), json.dumps(EVENTS[1]).encode()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert payloads(path) == lines


def test_malformed_element_inside_an_array_keeps_the_others(tmp_path):
    path = tmp_path / "broken-array.json"
    good = [json.dumps(e) for e in EVENTS]
    path.write_text("[\n" + good[0] + ",\n" + '{"metadata": {"event_name": oops}},\n' + good[1] + ",\n" + good[2] + "\n]\n")
    assert payloads(path) == [good[0].encode(), b'{"metadata": {"event_name": oops}}', good[1].encode(), good[2].encode()]


def test_invalid_utf8_inside_an_array_element_is_kept_byte_for_byte(tmp_path):
    path = tmp_path / "latin1.json"
    element = b'{"metadata": {"event_name": "course_progress", "note": "caf\xe9"}}'
    path.write_bytes(b"[" + element + b"]")
    assert payloads(path) == [element]


def test_large_array_streams_across_chunk_boundaries(tmp_path):
    path = tmp_path / "big.json"
    events = [progress_event(f"2019-11-01T00:00:{n % 60:02d}Z", user_id=str(n)) for n in range(5000)]
    path.write_text(json.dumps(events))
    assert len(path.read_bytes()) > 1 << 20  # bigger than one read chunk
    assert decoded(path) == events


def test_directories_are_walked_recursively_in_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.ndjson").write_text(json.dumps(EVENTS[0]))
    (tmp_path / "b" / "c.ndjson").write_text(json.dumps(EVENTS[1]))
    (tmp_path / "c.ndjson").write_text(json.dumps(EVENTS[2]))
    (tmp_path / ".hidden").write_text("not an event")
    assert list(iter_files([str(tmp_path)])) == [str(tmp_path / n) for n in ("a.ndjson", "b/c.ndjson", "c.ndjson")]
    assert decoded(tmp_path) == EVENTS


def test_missing_paths_are_reported(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert missing_paths(["-", "/definitely/not/here", str(tmp_path / "dangling")]) == ["/definitely/not/here", str(tmp_path / "dangling")]


def test_streams_from_any_binary_reader():
    stream = io.BufferedReader(io.BytesIO(b"\n".join(json.dumps(e).encode() for e in EVENTS)))
    assert [json.loads(i.payload) for i in read_stream(stream, "<stdin>")] == EVENTS


def test_several_top_level_arrays_are_flattened(tmp_path):
    path = tmp_path / "arrays.json"
    path.write_text(json.dumps(EVENTS[:2]) + "\n" + json.dumps(EVENTS[2:]) + "\n")
    assert decoded(path) == EVENTS


def test_empty_and_blank_files_yield_nothing(tmp_path):
    (tmp_path / "empty.ndjson").write_bytes(b"")
    (tmp_path / "blank.ndjson").write_bytes(b"\n \r\n")
    assert payloads(tmp_path) == []


# -- every value its own input (issue 10, Why: "the file reader folds valid events into another input's rejection")


def test_one_line_array_with_a_broken_element_keeps_every_other_element():
    elements = [json.dumps(progress_event(f"2019-11-01T00:00:0{n}Z", user_id=str(n))).encode() for n in range(6)]
    elements[2] = b'{"metadata": {"event_name": oops}}'
    got = inputs_of(b"[" + b", ".join(elements) + b"]")
    assert got == [(f"f:1#{n + 1}", element) for n, element in enumerate(elements)]


def test_a_broken_value_then_a_valid_one_on_the_same_line():
    valid = json.dumps(EVENTS[0]).encode()
    assert inputs_of(b"{bad}" + valid) == [("f:1#1", b"{bad}"), ("f:1#2", valid)]


def test_junk_outside_values_is_an_input_of_its_own():
    valid = json.dumps(EVENTS[0]).encode()
    assert inputs_of(b"] junk " + valid + b"\n") == [("f:1#1", b"] junk"), ("f:1#2", valid)]


@pytest.mark.parametrize("cut", [b'{"metadata": {"event_name": "course_updated", "event_time": ', b'{"metadata": {"event_name": "x", "body": [1, '])
def test_ndjson_whose_first_line_is_cut_stays_line_by_line(cut):
    lines = [json.dumps(e).encode() for e in EVENTS]
    got = inputs_of(cut + b"\n" + b"\n".join(lines) + b"\n")
    assert got == [("f:1", cut.rstrip())] + [(f"f:{n}", line) for n, line in enumerate(lines, 2)]


def test_a_truncated_pretty_printed_value_rejects_only_itself():
    texts = [json.dumps(e, indent=2).encode() for e in EVENTS]
    broken = texts[1][: len(texts[1]) // 2]
    got = [payload for _, payload in inputs_of(b"\n".join([texts[0], broken, texts[2]]))]
    assert got == [texts[0], broken.rstrip(), texts[2]]


def test_a_broken_element_of_a_pretty_printed_array_rejects_only_itself():
    data = b'[\n  {"a": {"b": 1},\n  {"valid": 1}\n]\n'
    assert inputs_of(data) == [("f:2", b'{"a": {"b": 1},'), ("f:3", b'{"valid": 1}')]


def test_a_valid_value_in_an_unusual_layout_stays_whole():
    assert inputs_of(b'[{"a": 1}, {"b":\n2}]') == [("f:1#1", b'{"a": 1}'), ("f:1#2", b'{"b":\n2}')]


def test_values_nested_deeper_than_any_recursion_limit_are_read():
    deep = b'{"metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    after = json.dumps(EVENTS[0]).encode()
    assert [payload for _, payload in inputs_of(b"[" + deep + b",\n" + after + b"]")] == [deep, after]
    assert [payload for _, payload in inputs_of(b"[" * 5000)] == [b"[" * 4999]  # never closed: one input


def test_an_unterminated_string_ends_at_its_line():
    valid = json.dumps(EVENTS[0]).encode()
    assert inputs_of(b'{"a": "no end\n' + valid) == [("f:1", b'{"a": "no end'), ("f:2", valid)]


# -- the general rule, by hypothesis ------------------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=12,
)
_OBJECTS = st.dictionaries(_TEXT, _JSON, max_size=5)
_JUNK = st.from_regex(re.compile(r"[a-z\]}:;=!?][a-z\]}:;=!? ]{0,8}[a-z\]}:;=!?]?", re.ASCII), fullmatch=True)


@st.composite
def _item(draw, layout: str, may_truncate: bool, may_junk: bool):
    """(kind, bytes as written) for one value of a file laid out as `layout`."""
    value = draw(_OBJECTS)
    ascii_only = draw(st.booleans())
    if layout == "pretty":
        text = json.dumps(value, indent=draw(st.sampled_from([2, 4])), ensure_ascii=ascii_only)
    else:
        text = json.dumps(value, ensure_ascii=ascii_only, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    kinds = ["valid", "valid", "broken"] + (["truncated"] if may_truncate else []) + (["junk"] if may_junk else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "broken":  # brackets intact, a value that is not JSON
        text = "{" + json.dumps(draw(_TEXT)) + ": " + draw(st.sampled_from(["oops", "NaN", "'x'", "tru"])) + "}"
    elif kind == "truncated" and len(text) > 1:
        text = text[: draw(st.integers(1, len(text) - 1))]
    elif kind == "junk":
        text = draw(_JUNK)
    return kind, text.encode()


def _indented(text: bytes, by: bytes) -> bytes:
    return text.replace(b"\n", b"\n" + by)


# layout -> (may a value be truncated, may junk appear, how items become a file)
_FORMATS = {
    "ndjson": ("compact", True, True, lambda items, nl: nl.join(items) + nl),
    "concatenated": ("compact", False, True, lambda items, nl: b"".join(items)),
    "spaced": ("compact", False, True, lambda items, nl: b" ".join(items)),
    "pretty objects": ("pretty", True, True, lambda items, nl: nl.join(items) + nl),
    "one-line array": ("compact", False, True, lambda items, nl: b"[" + b", ".join(items) + b"]"),
    "array, one per line": ("compact", True, True, lambda items, nl: b"[" + nl + (b"," + nl).join(items) + nl + b"]" + nl),
    "pretty array": ("pretty", True, True, lambda items, nl: b"[" + nl + (b"," + nl).join(b"  " + i for i in items) + nl + b"]"),
}


def _check_covered(data: bytes, got: list[tuple[str, bytes]]) -> None:
    """Inputs appear in file order as exact slices; between them only whitespace and array punctuation;
    each source names the line the input starts on (#N when the line holds several)."""
    punctuation = re.compile(rb"[\s,\[\]]*")
    cursor, starts = (3 if data.startswith(b"\xef\xbb\xbf") else 0), []
    for source, payload in got:
        line = int(source.split(":")[1].split("#")[0])
        found = data.find(payload, cursor)
        # A payload of brackets only (a `[` never closed, a stray `]`) may also match skipped punctuation:
        # take the match on the line its source names.
        while found != -1 and punctuation.fullmatch(data, cursor, found) and data.count(b"\n", 0, found) + 1 < line:
            found = data.find(payload, found + 1)
        assert found != -1 and punctuation.fullmatch(data, cursor, found), (payload, data[cursor:])
        starts.append(data.count(b"\n", 0, found) + 1)
        cursor = found + len(payload)
    assert punctuation.fullmatch(data, cursor), data[cursor:]
    for index, (source, _) in enumerate(got):
        line = starts[index]
        on_line = [n for n, start in enumerate(starts) if start == line]
        expected = f"f:{line}" if len(on_line) == 1 else f"f:{line}#{on_line.index(index) + 1}"
        assert source == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), form=st.sampled_from(sorted(_FORMATS)), crlf=st.booleans(), bom=st.booleans(), chunk=st.sampled_from([1 << 20, 1, 3, 64]))
def test_every_valid_value_is_its_own_input_and_nothing_is_lost(data, form, crlf, bom, chunk):
    layout, may_truncate, may_junk, write = _FORMATS[form]
    items = data.draw(st.lists(_item(layout, may_truncate, may_junk), max_size=6))
    if form == "pretty array":
        items = [(kind, _indented(text, b"  ")) for kind, text in items]
    newline = b"\r\n" if crlf else b"\n"
    body = write([text.replace(b"\n", newline) for _, text in items], newline)
    content = (b"\xef\xbb\xbf" if bom else b"") + body
    with mock.patch.object(files, "_CHUNK", chunk):
        got = inputs_of(content)
    _check_covered(content, got)
    valid = [text.replace(b"\n", newline) for kind, text in items if kind == "valid"]
    payloads_in_order = iter(payload for _, payload in got)
    assert all(any(payload == text for payload in payloads_in_order) for text in valid), (valid, got)


@settings(max_examples=200, deadline=None)
@given(content=st.binary(max_size=300) | st.lists(st.sampled_from([b"{", b"}", b"[", b"]", b'"', b"\\", b",", b"\n", b" ", b"a", b"1", b":"]), max_size=80).map(b"".join))
def test_any_bytes_are_read_without_error_and_nothing_is_lost(content):
    content = b"{" + content  # JSON-looking content is always read, whatever follows
    for chunk in (1 << 20, 2):
        with mock.patch.object(files, "_CHUNK", chunk):
            got = inputs_of(content)
        _check_covered(content, got)


# -- damaged gzip (Why: "truncated gzip (EOFError), corrupt gzip (zlib.error)") -----------------------


def _ndjson(count: int) -> bytes:
    return b"".join(json.dumps(progress_event("2019-11-01T00:00:00Z", user_id=str(n))).encode() + b"\n" for n in range(count))


def test_truncated_gzip_yields_everything_before_the_damage_and_the_run_goes_on(tmp_path):
    whole = gzip.compress(_ndjson(3000))
    (tmp_path / "a.ndjson.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "b.ndjson").write_bytes(json.dumps(EVENTS[0]).encode())
    events, report = read_with_report(tmp_path)
    readable = zlib.decompressobj(31).decompress(whole[: len(whole) // 2])
    complete = readable.count(b"\n")
    assert [i.payload for i in events[:complete]] == readable.split(b"\n")[:complete]
    assert events[complete].payload == readable.split(b"\n")[complete]  # the cut line, kept (it will be rejected)
    assert json.loads(events[-1].payload) == EVENTS[0]
    (problem,) = report.problems
    assert (problem.kind, problem.name) == (DAMAGED, str(tmp_path / "a.ndjson.gz"))
    assert f"stops at byte {len(whole) // 2:,}" in problem.reason and report.failed


def test_corrupt_gzip_names_the_byte_where_the_damage_is(tmp_path):
    data = _ndjson(600)
    deflate = zlib.compressobj(0, zlib.DEFLATED, 31)  # stored blocks: where each block header is, is known
    whole = deflate.compress(data) + deflate.flush()
    first_length = int.from_bytes(whole[11:13], "little")  # 10-byte gzip header, then the block header and LEN
    second = 10 + 5 + first_length
    damaged = bytearray(whole)
    damaged[second + 3] ^= 0xFF  # the second block's NLEN no longer complements its LEN
    (tmp_path / "a.gz").write_bytes(bytes(damaged))
    (tmp_path / "b.ndjson").write_bytes(json.dumps(EVENTS[0]).encode())
    events, report = read_with_report(tmp_path)
    (problem,) = report.problems
    assert problem.kind == DAMAGED and "invalid stored block lengths" in problem.reason
    offset = int(re.search(r"damaged at byte ([\d,]+)", problem.reason).group(1).replace(",", ""))
    assert second <= offset <= second + 4
    assert b"\n".join(i.payload for i in events[:-1]) == data[:first_length].rstrip()  # all of the first block
    assert json.loads(events[-1].payload) == EVENTS[0]  # and the next file


def test_bytes_after_the_gzip_data_are_reported(tmp_path):
    (tmp_path / "a.gz").write_bytes(gzip.compress(_ndjson(2)) + b"trailing junk")
    events, report = read_with_report(tmp_path / "a.gz")
    assert len(events) == 2 and report.problems[0].kind == DAMAGED and "not gzip data" in report.problems[0].reason


# -- files that are not events (Why: "replay . ... reads its own database") ------------------------------


def test_sqlite_databases_and_their_wal_and_shm_files_are_skipped(tmp_path):
    connection = sqlite3.connect(tmp_path / "course_progress.db")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (x TEXT)")
    connection.executemany("INSERT INTO t VALUES (?)", [('{"metadata": {}}',)] * 500)
    connection.commit()  # the WAL and its index now exist, as while replay writes
    (tmp_path / "events.ndjson").write_bytes(json.dumps(EVENTS[0]).encode())
    try:
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == ["course_progress.db", "course_progress.db-shm", "course_progress.db-wal", "events.ndjson"]
        events, report = read_with_report(tmp_path)
    finally:
        connection.close()
    assert [json.loads(i.payload) for i in events] == [EVENTS[0]]
    assert [(p.kind, Path(p.name).name) for p in report.problems] == [
        (SKIPPED, "course_progress.db"),
        (SKIPPED, "course_progress.db-shm"),
        (SKIPPED, "course_progress.db-wal"),
    ]
    assert "SQLite database" in report.problems[0].reason and not report.failed


NOISE = random.Random(0).randbytes  # the same bytes in every process: xdist workers must collect the same tests


@pytest.mark.parametrize(
    ("content", "kind", "said"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", SKIPPED, "binary"),
        (b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + b"\0" * 20, SKIPPED, "SQLite rollback journal"),
        (b"BZh91AY&SY" + NOISE(40), UNREADABLE, "bzip2"),
        (b"\xfd7zXZ\x00" + NOISE(40), UNREADABLE, "xz"),
        (b"\x28\xb5\x2f\xfd" + NOISE(40), UNREADABLE, "zstd"),
        (b"PK\x03\x04" + NOISE(40), UNREADABLE, "zip"),
        (gzip.compress(b"SQLite format 3\x00" + b"\0" * 100, mtime=0), SKIPPED, "gzip-compressed data: an SQLite database"),
    ],
    ids=["png", "sqlite-journal", "bzip2", "xz", "zstd", "zip", "gzip-sqlite"],
)
def test_files_that_are_not_events_are_told_by_content_and_not_read(tmp_path, content, kind, said):
    (tmp_path / "events.ndjson").write_bytes(content)
    events, report = read_with_report(tmp_path / "events.ndjson")
    assert events == [] and [p.kind for p in report.problems] == [kind] and said in report.problems[0].reason


def test_json_looking_content_is_always_read_even_with_nul_bytes(tmp_path):
    (tmp_path / "a.json").write_bytes(b'  {"a": "\x00"}\n{"b": 1}')
    events, report = read_with_report(tmp_path / "a.json")
    assert [i.payload for i in events] == [b'{"a": "\x00"}', b'{"b": 1}'] and report.problems == []


# -- unreadable files and directories, links (Why: "silent skips") ---------------------------------------


def test_dangling_links_and_files_that_fail_to_read_are_reported_and_the_rest_read(tmp_path):
    (tmp_path / "a.ndjson").write_text(json.dumps(EVENTS[0]))
    (tmp_path / "b.ndjson").symlink_to(tmp_path / "nowhere.ndjson")
    (tmp_path / "c.ndjson").symlink_to("/proc/self/mem")  # opens, then every read fails (EIO), even for root
    (tmp_path / "d.ndjson").write_text(json.dumps(EVENTS[1]))
    events, report = read_with_report(tmp_path)
    assert [json.loads(i.payload) for i in events] == EVENTS[:2]
    assert [(p.kind, Path(p.name).name) for p in report.problems] == [(UNREADABLE, "b.ndjson"), (UNREADABLE, "c.ndjson")]
    assert "dangling" in report.problems[0].reason and "Input/output error" in report.problems[1].reason
    assert report.failed and report.as_dict() == {"files_skipped": 0, "files_unreadable": 2, "files_damaged": 0}


def test_files_that_cannot_be_opened_are_reported(tmp_path, monkeypatch):
    (tmp_path / "a.ndjson").write_text(json.dumps(EVENTS[0]))
    (tmp_path / "secret.ndjson").write_text(json.dumps(EVENTS[1]))
    real_open = open

    def refusing_open(path, *args, **kwargs):  # tests run as root, whom chmod does not stop
        if str(path).endswith("secret.ndjson"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(files, "open", refusing_open, raising=False)
    events, report = read_with_report(tmp_path)
    assert [json.loads(i.payload) for i in events] == [EVENTS[0]]
    assert [(p.kind, p.reason) for p in report.problems] == [(UNREADABLE, "Permission denied")]


@pytest.mark.parametrize("given_by_name", [True, False])
def test_directories_that_cannot_be_listed_are_reported(tmp_path, monkeypatch, given_by_name):
    (tmp_path / "open").mkdir()
    (tmp_path / "open" / "a.ndjson").write_text(json.dumps(EVENTS[0]))
    (tmp_path / "closed").mkdir()
    (tmp_path / "closed" / "b.ndjson").write_text(json.dumps(EVENTS[1]))
    real_scandir = os.scandir

    def refusing_scandir(path):
        if str(path).endswith("closed"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refusing_scandir)
    paths = [tmp_path / "open", tmp_path / "closed"] if given_by_name else [tmp_path]
    events, report = read_with_report(*paths)
    assert [json.loads(i.payload) for i in events] == [EVENTS[0]]
    assert [(p.kind, p.name) for p in report.problems] == [(UNREADABLE, str(tmp_path / "closed"))]
    assert "cannot list" in report.problems[0].reason and report.failed


def test_fifos_and_directory_links_met_in_a_walk_are_skipped_with_a_line(tmp_path):
    os.mkfifo(tmp_path / "pipe")  # opening it would wait for a writer forever
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.ndjson").write_text(json.dumps(EVENTS[0]))
    (tmp_path / "link").symlink_to(tmp_path / "sub")
    events, report = read_with_report(tmp_path)
    assert [json.loads(i.payload) for i in events] == [EVENTS[0]]  # once, not again through the link
    assert [(p.kind, Path(p.name).name) for p in report.problems] == [(SKIPPED, "link"), (SKIPPED, "pipe")]
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode) and not report.failed


def test_a_deep_directory_tree_is_walked(tmp_path):
    path = tmp_path
    for _ in range(60):
        path = path / "d"
    path.mkdir(parents=True)
    (path / "a.ndjson").write_text(json.dumps(EVENTS[0]))
    assert decoded(tmp_path) == [EVENTS[0]]


# -- file names (Why: "a file name that is not UTF-8 (UnicodeEncodeError ...)") -----------------------------


def test_a_file_name_that_is_not_utf8_gives_sources_that_are_text(tmp_path):
    name = os.fsdecode(b"caf\xe9.ndjson")
    (tmp_path / name).write_bytes(b'{"broken\n' + json.dumps(EVENTS[0]).encode())
    sources = [i.source for i in read_inputs([str(tmp_path)])]
    assert sources == [f"{tmp_path}/caf\\xe9.ndjson:1", f"{tmp_path}/caf\\xe9.ndjson:2"]
    assert all(source.encode("utf-8") for source in sources)  # no surrogate: encodable for the database and logs


def test_control_characters_in_names_never_reach_a_terminal_raw(tmp_path):
    name = "evil\x1b[2J\x07\u202e\n.bin"
    (tmp_path / name).write_bytes(b"\x00\x01binary")
    report = ReadReport()
    assert list(read_inputs([str(tmp_path)], report)) == []
    shown = str(report.problems[0])
    assert "\x1b" not in shown and "\x07" not in shown and "\n" not in shown and "\u202e" not in shown
    assert "evil\\x1b[2J\\x07\\u202e\\x0a.bin" in shown
    assert display_name(str(tmp_path / "plain é.json")) == str(tmp_path / "plain é.json")
