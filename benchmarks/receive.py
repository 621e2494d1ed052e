"""The HTTPS receiver under load: signed events from many concurrent senders, and the spool filling and draining.

What is measured, on loopback against a real `canvas-progress receive` process:
1. throughput and request latency: `senders` concurrent keep-alive
   connections each POST their share of N signed events (RS256 JWTs, a key
   generated here and served to the receiver as a JWKS file), one after the
   other, as Canvas does; events/s is 2xx'd events over the wall time from
   the first request to the last answer;
2. "every 2xx'd event is present": afterwards the newest row per key of the
   2xx'd events (computed by the pure parser and merge, not by the receiver)
   is compared with the database, table by table, key by key;
3. with `spool`, the spool: a receiver whose database cannot be reached
   takes M events into its spool (events/s held), is stopped with SIGTERM,
   and a new receiver on the same spool directory with the real database
   drains it (events/s drained, until /readyz reports an empty spool).
Signing happens before the clock starts (RSA signing costs far more than
verifying), in worker processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, select

from consumer.core import Tracked
from consumer.events.merge import newest_per_key
from consumer.events.parse import parse_event
from consumer.store.tables import metadata
from consumer.synthetic import generate

KID = "bench-key"
ISSUER = "https://live-events.canvas.instructure.com"


# -- keys and signing ---------------------------------------------------------------------------------------------

def make_key() -> tuple[bytes, dict[str, Any]]:
    """A fresh RSA key: (private key PEM, its public JWKS)."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": KID, "use": "sig", "alg": "RS256"})
    return pem, {"keys": [public]}


_SIGNING_KEY: Any = None


def _init_signer(pem: bytes) -> None:
    global _SIGNING_KEY
    from cryptography.hazmat.primitives import serialization

    _SIGNING_KEY = serialization.load_pem_private_key(pem, password=None)


def _sign_chunk(payloads: Sequence[bytes]) -> list[bytes]:
    import jwt

    now = int(time.time())
    tokens = []
    for payload in payloads:
        try:
            claims = orjson.loads(payload)
        except orjson.JSONDecodeError:
            claims = None
        if not isinstance(claims, dict):
            claims = {"metadata": {}, "body": payload.decode("utf-8", "replace")}  # still signed: quarantined
        claims = {**claims, "iss": ISSUER, "iat": now}
        tokens.append(jwt.encode(claims, _SIGNING_KEY, algorithm="RS256", headers={"kid": KID}).encode())
    return tokens


def sign_all(pem: bytes, payloads: list[bytes], processes: int) -> list[bytes]:
    chunk = max(1, len(payloads) // (processes * 8))
    chunks = [payloads[i:i + chunk] for i in range(0, len(payloads), chunk)]
    with ProcessPoolExecutor(processes, initializer=_init_signer, initargs=(pem,)) as pool:
        return [token for part in pool.map(_sign_chunk, chunks) for token in part]


# -- the receiver process -----------------------------------------------------------------------------------------

@dataclass
class Receiver:
    port: int
    process: subprocess.Popen
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def readyz(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(self.url("/readyz"), timeout=5) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return json.loads(error.read())

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as answer:
            total = 0.0
            for line in answer.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    total += float(line.rsplit(" ", 1)[1])
            return total

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_receiver(database_url: str, jwks_file: Path, spool_dir: Path, log: Path, *extra: str) -> Receiver:
    port = free_port()
    command = [sys.executable, "-m", "consumer", "receive", "--port", str(port), "--jwks-file", str(jwks_file),
               "--spool-dir", str(spool_dir), "--database-url", database_url, "--issuer", ISSUER,
               "--log-level", "WARNING", "--log-format", "json", *extra]
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "DATABASE_URL": ""})
    receiver = Receiver(port, process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the receiver exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(receiver.url("/healthz"), timeout=1):
                return receiver
        except OSError:
            time.sleep(0.1)
    receiver.stop()
    raise RuntimeError("the receiver did not answer /healthz within 60 s")


# -- the senders --------------------------------------------------------------------------------------------------

@dataclass
class Sent:
    statuses: list[int] = field(default_factory=list)  # by event index
    latencies: list[float] = field(default_factory=list)  # seconds, of every request
    seconds: float = 0.0


async def _sender(port: int, work: list[tuple[int, bytes]], sent: Sent) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for index, token in work:
            request = (b"POST /live-events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/jwt\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(token)) + token
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            sent.latencies.append(time.perf_counter() - started)
            sent.statuses[index] = int(status_line.split()[1])
    finally:
        writer.close()


async def _send_all(port: int, tokens: list[bytes], senders: int) -> Sent:
    sent = Sent(statuses=[0] * len(tokens))
    shares: list[list[tuple[int, bytes]]] = [[] for _ in range(senders)]
    for index, token in enumerate(tokens):
        shares[index % senders].append((index, token))
    started = time.perf_counter()
    await asyncio.gather(*(_sender(port, share, sent) for share in shares if share))
    sent.seconds = time.perf_counter() - started
    return sent


def send_all(port: int, tokens: list[bytes], senders: int) -> Sent:
    try:
        import uvloop

        return uvloop.run(_send_all(port, tokens, senders))
    except ImportError:
        return asyncio.run(_send_all(port, tokens, senders))


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


# -- what the tables must hold ------------------------------------------------------------------------------------

def missing_rows(engine: Engine, payloads: list[bytes]) -> dict[str, int]:
    """For each kind of row: how many keys of the 2xx'd events' newest rows the database lacks or holds older."""
    rows = []
    for payload in payloads:
        outcome = parse_event(payload, None, True)
        if isinstance(outcome, Tracked):
            rows.extend(outcome.rows)
    expected = newest_per_key(rows)
    tables = metadata.tables
    missing: dict[str, int] = {}
    with engine.connect() as connection:
        for kind, newest in expected.items():
            table = tables[kind.TABLE]
            columns = [table.c[name] for name in kind.KEY]
            stored = {tuple(row[:-1]): row[-1] for row in connection.execute(select(*columns, table.c[kind.TIME]))}
            lacking = 0
            for row in newest:
                key = tuple(getattr(row, name) for name in kind.KEY)
                have = stored.get(key)
                if have is None or _utc(have) < _utc(getattr(row, kind.TIME)):
                    lacking += 1
            missing[kind.__name__] = lacking
    return missing


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# -- the measurements ---------------------------------------------------------------------------------------------

def throughput(engine: Engine, database_url: str, events: int, senders: int, seed: int, say) -> dict[str, Any]:
    """Signed events from `senders` concurrent connections: events/s, latency percentiles, 2xx'd vs present."""
    payloads = list(generate(events, seed))
    pem, jwks = make_key()
    say(f"signing {events:,} events")
    tokens = sign_all(pem, payloads, processes=max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="bench-receive-") as folder:
        jwks_file = Path(folder, "jwks.json")
        jwks_file.write_text(json.dumps(jwks))
        receiver = start_receiver(database_url, jwks_file, Path(folder, "spool"), Path(folder, "receiver.log"))
        try:
            say(f"sending from {senders} concurrent connections")
            sent = send_all(receiver.port, tokens, senders)
            groups = receiver.metric("canvas_receiver_group_size_count")
            commit_seconds = receiver.metric("canvas_receiver_commit_seconds_sum")
            spooled = receiver.metric("canvas_spool_appended_total")
        finally:
            code = receiver.stop()
        if code != 0:
            raise RuntimeError(f"the receiver exited with {code}: {receiver.log.read_text()[-2000:]}")
    ok = [payloads[i] for i, status in enumerate(sent.statuses) if 200 <= status < 300]
    missing = missing_rows(engine, ok)
    statuses: dict[str, int] = {}
    for status in sent.statuses:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "events": events, "senders": senders, "seconds": round(sent.seconds, 3),
        "events_per_second": round(len(ok) / sent.seconds, 1) if sent.seconds else 0.0,
        "p50_ms": round(percentile(sent.latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(sent.latencies, 99) * 1000, 1),
        "max_ms": round(max(sent.latencies, default=0.0) * 1000, 1),
        "statuses": statuses, "acknowledged": len(ok), "groups": int(groups),
        "mean_group": round(len(ok) / groups, 1) if groups else None,
        "mean_commit_ms": round(commit_seconds / groups * 1000, 2) if groups else None, "spooled": int(spooled),
        "missing_after": missing, "all_present": not any(missing.values()),
    }


def spool(engine: Engine, database_url: str, events: int, senders: int, seed: int, say) -> dict[str, Any]:
    """Events taken into the spool while the database is unreachable, then drained by a restarted receiver."""
    payloads = list(generate(events, seed + 1))
    pem, jwks = make_key()
    say(f"signing {events:,} events for the spool")
    tokens = sign_all(pem, payloads, processes=max(1, os.cpu_count() or 1))
    unreachable = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/unreachable"
    with tempfile.TemporaryDirectory(prefix="bench-spool-") as folder:
        jwks_file = Path(folder, "jwks.json")
        jwks_file.write_text(json.dumps(jwks))
        spool_dir, log = Path(folder, "spool"), Path(folder, "receiver.log")
        receiver = start_receiver(unreachable, jwks_file, spool_dir, log)
        try:
            say("filling the spool (the database is unreachable)")
            sent = send_all(receiver.port, tokens, senders)
            held = receiver.readyz()
        finally:
            receiver.stop()
        say("draining it with a new receiver on the real database")
        started = time.perf_counter()
        receiver = start_receiver(database_url, jwks_file, spool_dir, log)
        try:
            while receiver.readyz().get("spool_records"):
                time.sleep(0.05)
            drained_seconds = time.perf_counter() - started
        finally:
            receiver.stop()
    ok = [payloads[i] for i, status in enumerate(sent.statuses) if 200 <= status < 300]
    missing = missing_rows(engine, ok)
    return {
        "events": events, "held": held.get("spool_records"), "held_bytes": held.get("spool_bytes"),
        "spool_events_per_second": round(len(ok) / sent.seconds, 1) if sent.seconds else 0.0,
        "spool_p99_ms": round(percentile(sent.latencies, 99) * 1000, 1),
        "drain_seconds": round(drained_seconds, 3),
        "drain_events_per_second": round(len(ok) / drained_seconds, 1) if drained_seconds else 0.0,
        "acknowledged": len(ok), "missing_after": missing, "all_present": not any(missing.values()),
    }
