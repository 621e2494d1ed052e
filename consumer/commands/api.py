"""The Reports API server (`serve`) and its tokens (`token create|list|revoke`)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys

from consumer.commands.arguments import account_argument, id_argument
from consumer.commands.common import CommandError, check_can_listen, open_database
from consumer.config import Settings
from consumer.console import print_table
from consumer.settings_flags import add_setting_flags

log = logging.getLogger("consumer")


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="run the Canvas-style Reports and Progress API and the dashboard (FastAPI on uvicorn)",
        description="Serve Canvas's Account Reports, Course Reports and Progress APIs over the tracked tables, "
        "with bearer tokens from `token create`. Reports run in background threads of this server; a report "
        "queued when a server stops runs on the next one, a running one ends failed. The OpenAPI document is "
        "at /openapi.json (browsable at /docs and /redoc, which work offline); the dashboard is at /dashboard (it "
        "asks for a token); /healthz and /readyz are the probes, /metrics is for Prometheus.",
    )
    add_setting_flags(serve, "api_host", "api_port", "report_workers", "report_lease", "public_url", "forwarded_allow_ips",
                      "allowed_hosts", "report_jobs_per_account", "report_retention_days")
    serve.add_argument("--no-migrate", action="store_true", help="do not upgrade the schema first (fail if it is not current)")
    serve.set_defaults(handler=cmd_serve)

    token = commands.add_parser(
        "token",
        help="create, list or revoke API tokens",
        description="API tokens for `serve`. A token sees only the accounts it was created for; only its "
        "SHA-256 hash is stored, so it is printed once, at creation.",
    )
    actions = token.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", parents=[common], help="create a token and print it (once)")
    create.add_argument("--account", type=account_argument, action="append", required=True, metavar="ID",
                        help="a Canvas account id the token may see (repeat for several)")
    create.add_argument("--name", help="a label, e.g. who or what uses the token")
    create.add_argument("--json", action="store_true", help="print {id, token, accounts, name} as JSON")
    create.set_defaults(handler=cmd_token_create)
    listing = actions.add_parser("list", parents=[common], help="list tokens (ids, names, accounts; never the tokens)")
    listing.add_argument("--json", action="store_true", help="print the rows as JSON")
    listing.set_defaults(handler=cmd_token_list)
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a token by id; it gets 401 from then on")
    revoke.add_argument("id", type=id_argument, help="the token id (from `token list`)")
    revoke.set_defaults(handler=cmd_token_revoke)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from consumer.api.app import create_app
    from consumer.api.hosts import host_patterns
    from consumer.reports.runner import ReportRunner

    try:
        host_patterns(settings.allowed_hosts, settings.public_url)  # a bad setting fails before the database is touched
    except ValueError as error:
        raise CommandError(str(error), exit_code=2) from None
    check_can_listen(settings.api_host, settings.api_port, "API_HOST / --host", "API_PORT / --port")
    engine = open_database(settings, migrate=not args.no_migrate)
    runner = ReportRunner(engine, workers=settings.report_workers, lease=settings.report_lease,
                          jobs_per_account=settings.report_jobs_per_account,
                          retention_days=settings.report_retention_days)
    app = create_app(engine, runner, settings.public_url, settings.allowed_hosts)
    log.info("serving the Reports API on http://%s:%d (dashboard: /dashboard, API docs: /docs)",
             settings.api_host, settings.api_port)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it to the handler it found; with this one
    # the process exits 0 after a clean stop (as `run` does) instead of dying by the signal.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(
        app, host=settings.api_host, port=settings.api_port, log_config=None, proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips, timeout_graceful_shutdown=10,
        # h11 and asyncio, as tested: httptools (installed for `receive`) refuses an unknown method with 400
        # before the app can answer Canvas's 405, and the API's load is small requests, not thousands a second.
        http="h11", loop="asyncio",
    )
    return 0


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.tokens import create_token

    accounts = sorted(set(args.account))  # local ids: account_argument reads a global id as its local id
    engine = open_database(settings, migrate=True)
    token_id, token = create_token(engine, accounts, args.name)
    if args.json:
        print(json.dumps({"id": token_id, "token": token, "accounts": accounts, "name": args.name}))
    else:
        print(token)
        accounts_text = ", ".join(str(a) for a in accounts)
        print(f"token {token_id} created for account(s) {accounts_text}; it is shown only now, store it safely",
              file=sys.stderr)
    return 0


def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.tokens import list_tokens

    tokens = list_tokens(open_database(settings, migrate=False))
    rows = [
        {"id": t.id, "name": t.name, "accounts": list(t.accounts), "created_at": t.created_at.isoformat(),
         "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None}
        for t in tokens
    ]
    if args.json:
        print(json.dumps(rows))
    else:
        print_table(["id", "name", "accounts", "created_at", "revoked_at"],
                    [[r["id"], r["name"] or "", ",".join(map(str, r["accounts"])), r["created_at"], r["revoked_at"] or ""] for r in rows])
    return 0


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from consumer.tokens import revoke_token

    if not revoke_token(open_database(settings, migrate=False), args.id):
        raise CommandError(f"no active token with id {args.id}")
    print(f"token {args.id} revoked")
    return 0
