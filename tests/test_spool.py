"""The receiver's spool (consumer/spool.py): what got a 2xx is never lost, and the numbers it reports are exact.

Real files in tmp_path and real child processes (tests/spool_writer.py) for the lock, kill -9 and read_stats;
the only stubs are of os.write, os.fsync and os.ftruncate, to make the disk fail under the spool.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from consumer.core import ConfigurationError, Input
from consumer.spool import RECORD_OVERHEAD, Segment, Spool, SpoolFull, SpoolLocked, SpoolStats, read_stats
from tests.helpers import budget
from tests.spool_writer import payload_for

WRITER = Path(__file__).with_name("spool_writer.py")
T0 = 1_700_000_000.0  # a clock in quarter seconds: times survive the round trip through milliseconds exactly

sources = st.text(st.characters(exclude_categories=()), max_size=30)  # any code point, lone surrogates too
payloads = st.one_of(st.binary(max_size=200), st.sampled_from([b"", b"\0", b"\xff\xfe\0\x80", b"\0" * 50]))
inputs = st.builds(Input, sources, payloads)
batches = st.lists(st.lists(inputs, min_size=1, max_size=5), min_size=1, max_size=8)


class Clock:
    """Wall time for the spool, moved by the test."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def size_of(item: Input) -> int:
    return RECORD_OVERHEAD + len(item.source.encode("utf-8", "surrogatepass")) + len(item.payload)


def pairs(items) -> list[tuple[str, bytes]]:
    return [(item.source, item.payload) for item in items]


def drain(spool: Spool) -> list[Input]:
    """Everything the spool holds, oldest first, consumed as the drainer would."""
    drained = []
    while (segment := spool.oldest()) is not None:
        drained.extend(segment.inputs)
        spool.consumed(segment)
    return drained


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def make(directory: Path, max_bytes: int = 1 << 30, **options) -> Spool:
    return Spool(directory, max_bytes, **options)


@contextmanager
def logged(level: int = logging.WARNING) -> Iterator[list[logging.LogRecord]]:
    """The spool's log records at `level` and above (a handler of our own: usable inside Hypothesis examples)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level)
    handler.emit = records.append
    logger = logging.getLogger("consumer.spool")
    logger.addHandler(handler)
    saved = logger.level
    logger.setLevel(level)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


def fresh_directory(factory: pytest.TempPathFactory) -> Path:
    return factory.mktemp("spool") / "spool"


# -- round trip, order, segments ----------------------------------------------------------------------------------


@budget(60)
@given(batches=batches, segment_bytes=st.integers(1, 700), reopen=st.booleans())
def test_inputs_come_back_exactly_and_in_order_across_segments(tmp_path_factory, batches, segment_bytes, reopen):
    directory = fresh_directory(tmp_path_factory)
    spool = make(directory, segment_bytes=segment_bytes)
    for batch in batches:
        spool.append(batch)
    appended = [item for batch in batches for item in batch]
    if reopen:
        spool.close()
        spool = make(directory)
    assert pairs(drain(spool)) == pairs(appended)
    assert spool.stats() == SpoolStats(0, 0, 0, None)
    assert [path.name for path in directory.iterdir()] == ["lock"]
    spool.close()


def test_a_segment_rotates_once_it_has_passed_segment_bytes(tmp_path):
    spool = make(tmp_path / "spool", segment_bytes=100)
    small = [Input("https:a", b"x" * 20)]  # 59 bytes a record
    spool.append(small)
    spool.append(small)  # 59 < 100: same segment, now 118
    spool.append(small)  # 118 >= 100: a new one
    assert [path.name for path in segment_files(tmp_path / "spool")] == ["0000000000000001.seg", "0000000000000002.seg"]
    assert [path.stat().st_size for path in segment_files(tmp_path / "spool")] == [118, 59]
    assert spool.stats().segments == 2
    spool.close()


def test_the_directory_is_created_private_and_unknown_files_are_left_alone(tmp_path):
    directory = tmp_path / "a" / "spool"
    with make(directory) as spool:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        spool.append([Input("https:1", b"{}")])
    (directory / "notes.txt").write_bytes(b"not a segment")
    (directory / "0001.seg").write_bytes(b"garbage with a near name")
    with logged() as records, make(directory) as spool:
        assert spool.stats().records == 1 and spool.stats().segments == 1
        assert pairs(drain(spool)) == [("https:1", b"{}")]
    assert records == []
    assert (directory / "notes.txt").read_bytes() == b"not a segment"
    assert (directory / "0001.seg").read_bytes() == b"garbage with a near name"


# -- stats --------------------------------------------------------------------------------------------------------

SEGMENT_BYTES, MAX_BYTES = 300, 1500


class SpoolModel(RuleBasedStateMachine):
    """Appends, takes, consumes and reopens against a model of the segments: the stats (and read_stats) are
    exact after every step, every segment taken holds exactly the model's oldest one, and SpoolFull comes
    exactly when the bound would be passed."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="spool-model-")) / "spool"
        self.clock = Clock()
        self.spool = self.open()
        self.segments: list[list[tuple[Input, float]]] = []  # oldest first
        self.active = False  # the newest model segment is the spool's active one
        self.taken: Segment | None = None

    def open(self) -> Spool:
        return Spool(self.directory, MAX_BYTES, SEGMENT_BYTES, clock=self.clock)

    def held_bytes(self, segment) -> int:
        return sum(size_of(item) for item, _ in segment)

    @rule(batch=st.lists(inputs, min_size=1, max_size=4), later=st.sampled_from([0.0, 0.25, 1.5, 3600.0]))
    def append(self, batch, later):
        self.clock.now += later
        size = sum(size_of(item) for item in batch)
        if sum(map(self.held_bytes, self.segments)) + size > MAX_BYTES:
            files = {path: path.stat().st_size for path in segment_files(self.directory)}
            with pytest.raises(SpoolFull):
                self.spool.append(batch)
            assert {path: path.stat().st_size for path in segment_files(self.directory)} == files
            event("append: spool full")
            return
        self.spool.append(batch)
        if not self.active or self.held_bytes(self.segments[-1]) >= SEGMENT_BYTES:
            event(f"append: a new segment after {'a full one' if self.active else 'none active'}")
            self.segments.append([])
            self.active = True
        self.segments[-1].extend((item, self.clock.now) for item in batch)

    @rule()
    def take_oldest(self):
        segment = self.spool.oldest()
        if not self.segments:
            assert segment is None
            return
        assert segment is not None
        if len(self.segments) == 1 and self.active:
            event("take: the active segment, sealed")
            self.active = False
        assert pairs(segment.inputs) == pairs(item for item, _ in self.segments[0])
        assert segment.bytes == self.held_bytes(self.segments[0])
        self.taken = segment

    @precondition(lambda self: self.taken is not None)
    @rule()
    def consume(self):
        self.spool.consumed(self.taken)
        self.segments.pop(0)
        self.taken = None

    @rule()
    def reopen(self):
        self.spool.close()
        self.spool = self.open()
        self.active = False  # segments found on disk are never appended to

    @invariant()
    def stats_are_exact(self):
        expected = SpoolStats(
            records=sum(map(len, self.segments)),
            bytes=sum(map(self.held_bytes, self.segments)),
            segments=len(self.segments),
            oldest=self.segments[0][0][1] if self.segments else None,
        )
        assert self.spool.stats() == expected
        assert read_stats(self.directory) == expected
        assert len(segment_files(self.directory)) == expected.segments

    def teardown(self) -> None:
        self.spool.close()
        shutil.rmtree(self.directory.parent)


TestSpoolModel = SpoolModel.TestCase
TestSpoolModel.settings = budget(40)


def test_age_is_measured_from_the_oldest_record_held(tmp_path):
    clock = Clock(T0)
    with make(tmp_path / "spool", segment_bytes=1, clock=clock) as spool:
        assert spool.stats().age(T0) is None
        spool.append([Input("https:1", b"a")])
        clock.now = T0 + 30
        spool.append([Input("https:2", b"b")])
        assert spool.stats().oldest == T0
        assert spool.stats().age(T0 + 100) == 100
        assert spool.stats().age(T0 - 5) == 0  # a clock stepped back: never negative
        spool.consumed(spool.oldest())
        assert spool.stats().age(T0 + 100) == 70


def test_append_returns_only_after_one_write_and_the_fsyncs_that_make_it_durable(tmp_path, monkeypatch):
    directory = tmp_path / "spool"
    spool = make(directory)
    calls: list[tuple[str, int]] = []
    real_write, real_fsync = os.write, os.fsync

    def write(fd, data):
        calls.append(("write", os.fstat(fd).st_ino))
        return real_write(fd, data)

    def fsync(fd):
        calls.append(("fsync", os.fstat(fd).st_ino))
        return real_fsync(fd)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)
    spool.append([Input("https:1", b"a"), Input("https:2", b"b")])  # a new segment file: its directory entry too
    segment, folder = segment_files(directory)[0].stat().st_ino, directory.stat().st_ino
    assert calls == [("write", segment), ("fsync", segment), ("fsync", folder)]
    calls.clear()
    spool.append([Input("https:3", b"c")] * 3)
    assert calls == [("write", segment), ("fsync", segment)]
    monkeypatch.undo()
    spool.close()


# -- the bound ----------------------------------------------------------------------------------------------------


def test_the_bound_admits_exactly_max_bytes_and_refuses_one_byte_more_writing_nothing(tmp_path):
    record = Input("https:r", b"p" * 100)
    size = size_of(record)
    directory = tmp_path / "spool"
    with make(directory, max_bytes=3 * size, segment_bytes=2 * size) as spool:
        spool.append([record, record])
        spool.append([record])  # exactly at the bound
        full = spool.stats()
        assert full == SpoolStats(3, 3 * size, 2, full.oldest)
        files = {path.name: path.read_bytes() for path in segment_files(directory)}
        with pytest.raises(SpoolFull, match=str(3 * size)):
            spool.append([Input("https:", b"")])  # the smallest record there is
        assert spool.stats() == full
        assert {path.name: path.read_bytes() for path in segment_files(directory)} == files
        spool.consumed(spool.oldest())  # two records leave
        with pytest.raises(SpoolFull):
            spool.append([record] * 3)  # a batch is all or nothing
        spool.append([record, record])
        assert spool.stats().records == 3 and spool.stats().bytes == 3 * size
        assert len(drain(spool)) == 3


# -- the lock -----------------------------------------------------------------------------------------------------


def run_writer(*args: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(WRITER), *args], capture_output=True, text=True, timeout=60, **options)


def test_a_second_spool_on_the_same_directory_in_this_process_is_refused_until_the_first_closes(tmp_path):
    directory = tmp_path / "spool"
    first = make(directory)
    with pytest.raises(SpoolLocked, match=str(directory)) as refused:
        make(directory)
    assert isinstance(refused.value, ConfigurationError)
    first.close()
    first.close()  # idempotent
    make(directory).close()


def test_a_spool_held_by_this_process_is_refused_to_another_process(tmp_path):
    directory = tmp_path / "spool"
    with make(directory):
        result = run_writer("try", str(directory))
        assert result.stdout.startswith(f"locked: the spool directory {directory} is in use"), result.stderr
    assert run_writer("try", str(directory)).stdout == "opened\n"


# -- read_stats and the lock, from another process ----------------------------------------------------------------


def test_read_stats_of_a_spool_live_in_another_process_equals_its_stats(tmp_path):
    directory = tmp_path / "spool"
    child = subprocess.Popen([sys.executable, str(WRITER), "hold", str(directory)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line, child.stderr.read()
        theirs = SpoolStats(**json.loads(line))
        assert theirs.records > 0 and theirs.oldest is not None
        assert read_stats(directory) == theirs
        with pytest.raises(SpoolLocked):
            make(directory)
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    assert child.returncode == 0, child.stderr.read()
    with make(directory) as spool:
        assert spool.stats() == theirs
        drained = drain(spool)
    assert len(drained) == theirs.records and drained[-1].source == "hold:last"


def test_read_stats_is_none_where_there_is_no_spool(tmp_path):
    assert read_stats(tmp_path / "missing") is None
    (tmp_path / "empty").mkdir()
    assert read_stats(tmp_path / "empty") is None
    make(tmp_path / "spool").close()
    assert read_stats(tmp_path / "spool") == SpoolStats(0, 0, 0, None)


# -- torn tails ---------------------------------------------------------------------------------------------------


def written(directory: Path, batches: list[list[Input]], **options) -> bytes:
    """Append `batches` to a new spool in `directory`, close it, and return its one segment's bytes."""
    with make(directory, **options) as spool:
        for batch in batches:
            spool.append(batch)
    (segment,) = segment_files(directory)
    return segment.read_bytes()


def test_a_torn_last_record_is_cut_off_at_every_possible_cut(tmp_path):
    earlier = [Input("https:1", b"one"), Input("https:2", b"")]
    last = Input("https:torn", b"\0p" * 30)
    data = written(tmp_path / "template", [earlier, [last]])
    start, end = len(data) - size_of(last), len(data)
    for cut in range(start + 1, end):
        directory = tmp_path / f"cut-{cut}"
        directory.mkdir()
        (directory / "0000000000000001.seg").write_bytes(data[:cut])
        with logged() as records, make(directory) as spool:
            assert spool.stats().records == 2 and spool.stats().bytes == start
            assert (directory / "0000000000000001.seg").stat().st_size == start
            assert pairs(drain(spool)) == pairs(earlier)
        assert [(record.levelname, record.getMessage()) for record in records] == [(
            "WARNING", f"spool segment {directory / '0000000000000001.seg'} ends in a torn record "
            f"({'a part of a record header' if cut - start < 20 else f'a record of {size_of(last) - 20} bytes cut short'}; "
            f"an append cut short by a crash, never acknowledged): {cut - start} bytes cut off at offset {start}")]


@budget(60)
@given(batches=batches, last=inputs, segment_bytes=st.integers(1, 700), fraction=st.floats(0, 1, exclude_max=True))
def test_a_torn_tail_keeps_every_earlier_record(tmp_path_factory, batches, last, segment_bytes, fraction):
    directory = fresh_directory(tmp_path_factory)
    with make(directory, segment_bytes=segment_bytes) as spool:
        for batch in batches:
            spool.append(batch)
        spool.append([last])
    newest = segment_files(directory)[-1]
    data = newest.read_bytes()
    start = len(data) - size_of(last)
    torn = 1 + int(fraction * (size_of(last) - 1))  # 1 .. size - 1 bytes of it were written
    newest.write_bytes(data[:start + torn])
    with logged() as records, make(directory) as spool:
        assert pairs(drain(spool)) == pairs(item for batch in batches for item in batch)
    assert [record.levelname for record in records] == ["WARNING"]
    assert f"{torn} bytes cut off at offset {start}" in records[0].getMessage()


def test_zeros_after_the_last_record_are_a_torn_tail(tmp_path):
    directory = tmp_path / "spool"
    data = written(directory, [[Input("https:1", b"kept")]])
    (directory / "0000000000000001.seg").write_bytes(data + b"\0" * 4096)
    with logged() as records, make(directory) as spool:
        assert pairs(drain(spool)) == [("https:1", b"kept")]
    assert [record.levelname for record in records] == ["WARNING"]
    assert "zeros after the last record" in records[0].getMessage() and "4096 bytes cut off" in records[0].getMessage()


# -- damage -------------------------------------------------------------------------------------------------------


@budget(80)
@given(items=st.lists(inputs, min_size=2, max_size=6), data=st.data())
def test_a_damaged_record_keeps_the_good_ones_before_it_and_sets_the_rest_aside(tmp_path_factory, items, data):
    directory = fresh_directory(tmp_path_factory)
    original = written(directory, [[item] for item in items])
    damaged = data.draw(st.integers(0, len(items) - 2), label="damaged record")
    offset = sum(map(size_of, items[:damaged]))
    at = data.draw(st.integers(offset, offset + size_of(items[damaged]) - 1), label="byte flipped")
    changed = bytearray(original)
    changed[at] ^= data.draw(st.integers(1, 255), label="xor")
    segment = directory / "0000000000000001.seg"
    segment.write_bytes(changed)
    aside = directory / "0000000000000001.seg.damaged"
    with logged() as records, make(directory) as spool:
        assert spool.stats().records == damaged and spool.stats().bytes == offset
        assert aside.read_bytes() == bytes(changed[offset:])
        assert segment.read_bytes() == original[:offset] if damaged else not segment.exists()
        assert pairs(drain(spool)) == pairs(items[:damaged])
    assert [record.levelname for record in records] == ["ERROR"]
    message = records[0].getMessage()
    assert f"spool segment {segment} is damaged at offset {offset}" in message
    assert f"{len(original) - offset} bytes set aside in {aside}" in message


def test_damage_in_an_old_segment_leaves_the_later_segments_whole(tmp_path):
    directory = tmp_path / "spool"
    items = [Input(f"https:{n}", bytes([n]) * 40) for n in range(9)]
    with make(directory, segment_bytes=3 * size_of(items[0])) as spool:
        for item in items:
            spool.append([item])
    first, second, third = segment_files(directory)
    data = bytearray(second.read_bytes())
    data[size_of(items[3]) + 25] ^= 0x40  # the body of the second record of the second segment
    second.write_bytes(data)
    with logged() as records, make(directory) as spool:
        assert spool.stats() == SpoolStats(7, 7 * size_of(items[0]), 3, spool.stats().oldest)
        assert [item.source for item in drain(spool)] == [f"https:{n}" for n in (0, 1, 2, 3, 6, 7, 8)]
        assert [record.levelname for record in records] == ["ERROR"]
        assert "the body's CRC does not match" in records[0].getMessage()
        spool.append([Input("https:after", b"")])  # numbered after every file it found, the damaged one included
        assert [path.name for path in segment_files(directory)] == ["0000000000000004.seg"]
    assert (directory / "0000000000000002.seg.damaged").read_bytes() == bytes(data[size_of(items[3]):])


def test_damage_at_the_start_of_a_segment_moves_the_whole_file_aside(tmp_path):
    directory = tmp_path / "spool"
    original = written(directory, [[Input("https:1", b"a")], [Input("https:2", b"b")]])
    segment = directory / "0000000000000001.seg"
    segment.write_bytes(b"X" + original[1:])
    with logged() as records, make(directory) as spool:
        assert spool.stats() == SpoolStats(0, 0, 0, None)
    assert not segment.exists()
    assert (directory / "0000000000000001.seg.damaged").read_bytes() == b"X" + original[1:]
    assert [record.levelname for record in records] == ["ERROR"]


def test_damage_found_when_the_drainer_reads_a_segment_is_set_aside_too(tmp_path):
    directory = tmp_path / "spool"
    items = [Input(f"https:{n}", b"x" * 30) for n in range(4)]
    with make(directory) as spool:
        spool.append(items)
        segment = segment_files(directory)[0]
        data = bytearray(segment.read_bytes())
        data[2 * size_of(items[0]) + 30] ^= 1  # the third record's body, after the spool wrote it
        segment.write_bytes(data)
        with logged() as records:
            taken = spool.oldest()
        assert pairs(taken.inputs) == pairs(items[:2])
        assert spool.stats().records == 2 and spool.stats().bytes == 2 * size_of(items[0]) == taken.bytes
        assert [record.levelname for record in records] == ["ERROR"]
        assert f"is damaged at offset {2 * size_of(items[0])}" in records[0].getMessage()
        assert "2 of its 4 events kept" in records[0].getMessage()
        spool.consumed(taken)
        assert spool.stats() == SpoolStats(0, 0, 0, None)
    assert (directory / f"{segment.name}.damaged").read_bytes() == bytes(data[2 * size_of(items[0]):])


# -- kill -9 ------------------------------------------------------------------------------------------------------


class Acknowledged:
    """The ids a child printed after `append` returned, read on a thread as they come."""

    def __init__(self, child: subprocess.Popen) -> None:
        self.child = child
        self.ids: list[str] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.child.stdout:
            with self.changed:
                if line.endswith("\n"):  # a line cut by the kill was not acknowledged to the test
                    self.ids.append(line[:-1])
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.ids) >= count or not self.reader.is_alive(), timeout):
                raise AssertionError(f"the writer acknowledged {len(self.ids)} records in {timeout}s, not {count}")
        assert len(self.ids) >= count, f"the writer died: {self.child.stderr.read()}"

    def all(self) -> list[str]:
        self.reader.join(30)
        return self.ids


def test_kill_9_at_random_moments_loses_no_acknowledged_record(tmp_path):
    """Each round, a writer appends to the same spool until a SIGKILL at a random moment. After each, a copy of
    the directory holds, round after round, exactly a prefix of what that round's writer appended, with every
    id it acknowledged and the payload it wrote; the earlier rounds are as they were."""
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    directory = tmp_path / "spool"
    held_by_round: list[int] = []
    for round_ in range(12):
        child = subprocess.Popen([sys.executable, str(WRITER), "append", str(directory), f"r{round_}",
                                  str(seed + round_), str(rng.choice([4096, 65536, 1 << 20]))],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        acknowledged = Acknowledged(child)
        try:
            acknowledged.wait_for(rng.randint(1, 1500), timeout=60)
            time.sleep(rng.uniform(0, 0.01))  # a random moment: inside a write, an fsync, a rotation, or between
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(30)
        acked = acknowledged.all()
        copy = tmp_path / f"after-round-{round_}"
        shutil.copytree(directory, copy)
        with make(copy) as spool:
            held = drain(spool)
        rounds = _split_rounds(held)
        context = f"seed {seed}, round {round_}"
        assert [name for name, _ in rounds] == [f"r{number}" for number in range(round_ + 1)], context
        for (name, items), before in zip(rounds, held_by_round, strict=False):
            assert len(items) == before, f"{context}: round {name} changed"
        name, items = rounds[-1]
        assert [item.source for item in items] == [f"{name}:{number}" for number in range(len(items))], context
        assert len(items) >= len(acked) and [item.source for item in items[:len(acked)]] == acked, context
        assert all(item.payload == payload_for(item.source) for _, items in rounds for item in items), context
        held_by_round.append(len(items))


def _split_rounds(held: list[Input]) -> list[tuple[str, list[Input]]]:
    rounds: list[tuple[str, list[Input]]] = []
    for item in held:
        name = item.source.split(":", 1)[0]
        if not rounds or rounds[-1][0] != name:
            rounds.append((name, []))
        rounds[-1][1].append(item)
    return rounds


# -- sealing while appends continue -------------------------------------------------------------------------------


def test_the_drainer_taking_the_active_segment_while_two_threads_append_loses_and_repeats_nothing(tmp_path):
    spool = make(tmp_path / "spool", segment_bytes=2048)
    appended: dict[str, list[str]] = {"a": [], "b": []}
    finished = threading.Event()
    failures: list[BaseException] = []

    def write(name: str) -> None:
        rng = random.Random(name)
        try:
            for number in range(400):
                batch = [Input(f"{name}:{number}:{offset}", rng.randbytes(rng.randint(0, 300)))
                         for offset in range(rng.randint(1, 4))]
                spool.append(batch)
                appended[name].extend(item.source for item in batch)
        except BaseException as error:
            failures.append(error)

    drained: list[str] = []
    writers = [threading.Thread(target=write, args=(name,)) for name in appended]

    def drain_until_done() -> None:
        try:
            while True:
                done = finished.is_set()
                segment = spool.oldest()
                if segment is None:
                    if done:
                        return
                    finished.wait(0.001)
                    continue
                drained.extend(item.source for item in segment.inputs)
                spool.consumed(segment)
        except BaseException as error:
            failures.append(error)

    drainer = threading.Thread(target=drain_until_done)
    drainer.start()
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    finished.set()
    drainer.join(120)
    assert not failures, failures
    assert len(drained) == len(set(drained)) == sum(map(len, appended.values()))
    for name, sources in appended.items():
        assert [source for source in drained if source.startswith(f"{name}:")] == sources
    assert spool.stats() == SpoolStats(0, 0, 0, None)
    spool.close()
    assert [path.name for path in (tmp_path / "spool").iterdir()] == ["lock"]


# -- the disk fails -----------------------------------------------------------------------------------------------


def fail_once(monkeypatch, name: str, code: int, before=None) -> None:
    """Make the next os.<name> call fail with `code` (after `before(*args)`, which may do part of the work)."""
    real = getattr(os, name)
    state = {"armed": True}

    def failing(*args):
        if not state["armed"]:
            return real(*args)
        state["armed"] = False
        if before is not None:
            before(real, *args)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, name, failing)


def half_written(real, fd, data):
    real(fd, bytes(data)[:len(data) // 2])


@pytest.mark.parametrize("failure", ["write cut by a full disk", "fsync error", "new segment's write fails",
                                     "and the truncate fails too"])
def test_a_failed_append_leaves_the_spool_consistent_and_usable(tmp_path, monkeypatch, failure):
    directory = tmp_path / "spool"
    first = [Input(f"https:a{n}", b"a" * 50) for n in range(3)]
    lost = [Input(f"https:b{n}", b"b" * 500) for n in range(3)]
    later = [Input("https:c", b"c" * 70)]
    spool = make(directory)
    spool.append(first)
    if failure == "new segment's write fails":
        spool.consumed(spool.oldest())
        first = []
    before = spool.stats()
    sizes = {path.name: path.stat().st_size for path in segment_files(directory)}
    if failure == "fsync error":
        fail_once(monkeypatch, "fsync", errno.EIO)
    else:
        fail_once(monkeypatch, "write", errno.ENOSPC, half_written)
    if failure == "and the truncate fails too":
        fail_once(monkeypatch, "ftruncate", errno.EIO)
    with logged() as records, pytest.raises(OSError) as raised:
        spool.append(lost)
    monkeypatch.undo()
    assert raised.value.errno in (errno.ENOSPC, errno.EIO)
    assert spool.stats() == before
    landed: list[Input] = []  # records of the failed append that are whole on disk, and will come back
    if failure == "and the truncate fails too":
        assert [record.levelname for record in records] == ["ERROR"]
        assert "cannot cut a failed append off" in records[0].getMessage()
        # Half the write landed: the first record whole, the second torn. Nothing can cut them off now; at the
        # next start the whole one comes back (answered 503, delivered again by Canvas: applied twice, harmlessly).
        landed = lost[:1]
    else:
        assert records == []
        assert {path.name: path.stat().st_size for path in segment_files(directory)} == sizes
    assert read_stats(directory).records == before.records + len(landed)
    spool.append(later)
    assert spool.stats().records == before.records + 1
    spool.close()
    with logged() as records, make(directory) as spool:
        assert spool.stats().records == len(first) + len(landed) + 1
        assert pairs(drain(spool)) == pairs(first + landed + later)
    expected = ["WARNING"] if landed else []  # the torn second record, cut off
    assert [record.levelname for record in records] == expected


def test_a_segment_that_cannot_be_deleted_after_its_commit_stops_being_held_and_the_next_one_comes(tmp_path, monkeypatch,
                                                                                                  caplog):
    """Its events are committed: the drainer must go on to the next segment, not re-apply this one forever."""
    spool = Spool(tmp_path / "spool", 1 << 20, segment_bytes=1)
    spool.append([Input("https:1", b"one")])
    spool.append([Input("https:2", b"two")])
    first = spool.oldest()
    real_unlink = os.unlink

    def refuse(path, *args, **kwargs):
        if Path(path) == first.path:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refuse)
    with caplog.at_level(logging.ERROR, logger="consumer.spool"):
        spool.consumed(first)
    assert "cannot delete the applied spool segment" in caplog.text
    assert spool.stats().records == 1
    second = spool.oldest()
    assert second is not None and second.path != first.path and [i.payload for i in second.inputs] == [b"two"]
    spool.close()


@pytest.mark.parametrize("make", ["file", "under_a_file"])
def test_a_spool_directory_that_cannot_be_used_is_a_configuration_error_naming_the_setting(tmp_path, make):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    directory = blocker if make == "file" else blocker / "spool"
    with pytest.raises(ConfigurationError, match="spool-dir"):
        Spool(directory, 1 << 20)
