"""The replay file formats: each yields one Input per event with the exact bytes."""

import gzip
import io
import json

import pytest

from consumer.sources.files import iter_files, missing_paths, read_inputs, read_stream
from tests.factory import course_event, progress_event

EVENTS = [course_event("2019-11-01T00:00:00Z"), progress_event("2019-11-01T00:00:01Z"), progress_event("2019-11-01T00:00:02Z", user_id="9")]


def payloads(path) -> list[bytes]:
    return [item.payload for item in read_inputs([str(path)])]


def decoded(path) -> list[dict]:
    return [json.loads(p) for p in payloads(path)]


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


def test_gzip_is_detected_by_content_not_name(tmp_path):
    path = tmp_path / "archive.dat"
    path.write_bytes(gzip.compress("\n".join(json.dumps(e) for e in EVENTS).encode()))
    assert decoded(path) == EVENTS


def test_gzip_json_array(tmp_path):
    path = tmp_path / "events.json.gz"
    path.write_bytes(gzip.compress(json.dumps(EVENTS).encode()))
    assert decoded(path) == EVENTS


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
    got = payloads(path)
    assert got[0] == good[0].encode() and got[-2:] == [good[1].encode(), good[2].encode()]
    assert any(b"oops" in p for p in got[1:-2])


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
    (tmp_path / ".hidden").write_text("not an event")
    assert list(iter_files([str(tmp_path)])) == [str(tmp_path / "a.ndjson"), str(tmp_path / "b" / "c.ndjson")]
    assert decoded(tmp_path) == EVENTS[:2]


def test_missing_paths_are_reported():
    assert missing_paths(["-", "/definitely/not/here"]) == ["/definitely/not/here"]


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
