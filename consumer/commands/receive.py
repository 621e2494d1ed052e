"""`receive`: the HTTPS receiver Canvas Data Services POSTs Live Events to."""

from __future__ import annotations

import argparse
import logging
import signal

from consumer.commands.common import CommandError, check_can_listen
from consumer.config import Settings
from consumer.settings_flags import add_setting_flags
from consumer.text import one_line

log = logging.getLogger("consumer")

# What uvicorn may hold at once: beyond it, new connections get 503 (Canvas retries) instead of memory growing.
MAX_CONCURRENT = 500
GRACE_SECONDS = 20.0  # to answer what is in flight after SIGTERM (Canvas waits 15 s for an answer)


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    receive = commands.add_parser(
        "receive",
        parents=[common],
        help="receive Live Events that Canvas POSTs over HTTPS (Data Services HTTPS subscriptions)",
        description="Take Canvas Live Events at POST /live-events, one event per request: signed payloads (a JWT, "
        "RS256, checked against Canvas's published keys) or, with --allow-unsigned, plain JSON. Each request is "
        "answered 200 once its event is committed (with concurrent ones, in one transaction) or, while the "
        "database cannot take it, appended to the spool under --spool-dir and fsync'd; the spool is applied when "
        "the database is back and at the next start. 401: not verified (not stored); 413: over 1 MiB; 503: the "
        "spool is full (Canvas retries). /healthz, /readyz and /metrics are on the same port. Put it behind a "
        "TLS-terminating proxy: Canvas only posts to HTTPS. SIGTERM answers what is in flight and exits 0.",
    )
    add_setting_flags(receive, "receive_host", "receive_port", "jwks_url", "jwks_file", "jwks_cache_seconds",
                      "allow_unsigned", "jwt_issuer", "spool_dir", "spool_max_bytes", "batch_size", "store_user_names", "history",
                      "forwarded_allow_ips")
    receive.add_argument("--no-migrate", action="store_true",
                         help="do not upgrade the schema first (events wait in the spool until it is current)")
    receive.set_defaults(handler=cmd_receive)


def cmd_receive(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from consumer.pipeline import Pipeline
    from consumer.receiver.app import ReceiverApp
    from consumer.receiver.intake import Intake
    from consumer.receiver.metrics import ReceiverHooks, register_spool
    from consumer.receiver.protocol import GuardedHttpToolsProtocol
    from consumer.sources.signatures import KeySet, Verifier
    from consumer.spool import Spool
    from consumer.store.engine import make_engine
    from consumer.store.migrate import current_revision, schema_problem, upgrade
    from consumer.tuning import throughput_mode

    check_can_listen(settings.receive_host, settings.receive_port, "RECEIVE_HOST / --host", "RECEIVE_PORT / --port")
    # Always a key set (JWKS_URL has a default): with unsigned payloads allowed, signed ones are still verified.
    keys = KeySet(url=None if settings.jwks_file else settings.jwks_url, file=settings.jwks_file,
                  ttl=settings.jwks_cache_seconds)
    keys.start()  # a bad JWKS file fails here (exit 2); an unreachable URL is retried when a request needs it
    verifier = Verifier(keys, issuer=settings.jwt_issuer, allow_unsigned=settings.allow_unsigned)
    spool = Spool(settings.spool_dir, settings.spool_max_bytes)  # SpoolLocked: another receiver has it (exit 2)
    engine = make_engine(settings.database_url)

    def prepare() -> None:
        if args.no_migrate:
            with engine.connect() as connection:
                problem = schema_problem(current_revision(connection))
            if problem is not None:
                raise problem
        else:
            upgrade(engine)

    prepared = False
    try:
        prepare()
        prepared = True
    except Exception as error:  # the database may be down: start anyway, spool, and retry in the drainer
        detail = one_line(str(getattr(error, "orig", None) or error)) or type(error).__name__
        log.warning("the database cannot be prepared yet (%s): events are spooled until it can", detail)
    pipeline = Pipeline(engine, settings.store_user_names, settings.history)
    intake = Intake(pipeline, spool, max_batch=min(settings.batch_size, 1000), prepare=prepare, prepared=prepared,
                    hooks=ReceiverHooks())
    register_spool(spool, lambda: intake.database_ok)
    stats = spool.stats()
    if stats.records:
        log.info("the spool holds %d events from before: applying them", stats.records)
    intake.start()

    def shutdown() -> None:
        intake.stop(timeout=GRACE_SECONDS)
        keys.close()

    app = ReceiverApp(intake, verifier, on_shutdown=shutdown)
    log.info("receiving Live Events on http://%s:%d/live-events (signatures %s)", settings.receive_host,
             settings.receive_port, "optional" if settings.allow_unsigned else "required")
    signal.signal(signal.SIGTERM, lambda *_: None)  # uvicorn stops gracefully, then the process exits 0 (as `serve`)
    server = uvicorn.Server(uvicorn.Config(
        app, host=settings.receive_host, port=settings.receive_port, log_config=None, access_log=False,
        proxy_headers=True, forwarded_allow_ips=settings.forwarded_allow_ips, lifespan="on",
        limit_concurrency=MAX_CONCURRENT, timeout_graceful_shutdown=int(GRACE_SECONDS),
        http=GuardedHttpToolsProtocol,  # a deadline and a size bound on request heads (consumer/receiver/protocol.py)
    ))
    try:
        with throughput_mode():  # as replay and the worker: the commit thread gets the GIL back at once
            server.run()
    finally:
        shutdown()  # idempotent: after the lifespan's shutdown, or when the server failed to start
    if not server.started:
        raise CommandError(f"the receiver could not start on {settings.receive_host}:{settings.receive_port} "
                           "(see the log line above)")
    return 0
