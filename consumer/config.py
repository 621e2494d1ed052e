"""All configuration in one place: a `.env` file, environment variables over it, command-line flags over both."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumer.core import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///./course_progress.db"


class Settings(BaseSettings):
    """Settings read from the environment (names are case-insensitive), a `.env` file, and the commands' flags.

    Each field is the one place for its setting: default, bounds, description
    (the `--help` text and the README's Configuration table) and flag. Its
    `json_schema_extra` says what a flag needs besides (consumer/settings_flags.py
    reads it): `flag`, the option string when it is not `--` and the name with
    dashes, or None for a setting with no flag; `flag_value` and `flag_help` for a
    flag that takes no value and sets this one; `default_text` for a default of None;
    `details`, more for the README than for `--help`.
    """

    # A `.env` file in the working directory is read too; the environment wins over it.
    model_config = SettingsConfigDict(extra="ignore", validate_default=True, env_file=".env", env_file_encoding="utf-8")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="the database: `postgresql://user:password@host:5432/dbname` (also `postgres://`, "
        "`postgresql+psycopg://`) or `sqlite:///path/to/file.db`; no other database or driver",
    )
    batch_size: int = Field(
        5000, ge=1, le=50_000, description="events (for `run`, SQS messages) written per database transaction"
    )
    log_level: str = Field("INFO", description="the least severe log lines written: DEBUG, INFO, WARNING or ERROR")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="log lines on stderr: `json` (one object per line), `text`, or `auto` (text on a terminal, json "
        "otherwise)",
        json_schema_extra={"details": "Text has control characters escaped (`\\u001b`), as JSON does."},
    )
    log_levels: str = Field(
        "",
        description="levels for named loggers, `logger=LEVEL` comma-separated, e.g. `botocore=DEBUG,consumer.worker=DEBUG`",
        json_schema_extra={
            "flag": None,
            "details": "`boto3`, `botocore`, `s3transfer` and `urllib3` stay at `WARNING` whatever `LOG_LEVEL` says "
            "unless named here: their DEBUG lines dump requests with the session token and access key id. Every log "
            "line has AWS access key ids, session tokens, request signatures, `AWS_SECRET_ACCESS_KEY` and the "
            "database password masked as `***`, named loggers included.",
        },
    )

    # SQS worker (`run`), `send` and `status`
    sqs_queue_url: str | None = Field(
        None,
        description="URL of the SQS queue Canvas delivers Live Events to: `run` consumes it, `send` writes to it, "
        "`status` reports its depth",
        json_schema_extra={"flag": "--queue-url"},
    )
    receivers: int = Field(4, ge=1, le=64, description="concurrent ReceiveMessage long-polls")
    wait_time_seconds: int = Field(20, ge=0, le=20, description="ReceiveMessage long-poll wait in seconds")
    flush_interval: float = Field(
        0.5,
        gt=0,
        le=60,
        description="longest a received message waits before its batch starts committing, in seconds",
        json_schema_extra={"details": "With the commit itself, receipt to commit stays under 1 s."},
    )
    shutdown_grace: float = Field(30.0, gt=0, description="seconds allowed to finish the in-flight batch after SIGTERM")
    metrics_port: int = Field(
        9100, ge=0, le=65535, description="port of `/metrics`, `/healthz` and `/readyz`; 0 turns them off"
    )
    metrics_host: str = Field(
        "127.0.0.1",
        description="address of `/metrics`, `/healthz` and `/readyz`; `0.0.0.0` in a container, for the kubelet and "
        "Prometheus",
        json_schema_extra={
            "details": "They need no credentials: `/readyz` answers only `ready` or `not ready`, and the reason (which "
            "names the database and the queue) goes to the log when it changes."
        },
    )

    # Reports API (`serve`)
    api_host: str = Field(
        "127.0.0.1", description="address the API listens on; `0.0.0.0` in a container", json_schema_extra={"flag": "--host"}
    )
    api_port: int = Field(
        8000, ge=1, le=65535, description="port the API listens on", json_schema_extra={"flag": "--port"}
    )
    report_workers: int = Field(1, ge=1, le=16, description="report jobs one API server runs at once")
    report_lease: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="seconds without a heartbeat before a running report counts as lost (its server died) and is failed",
    )
    public_url: str | None = Field(
        None,
        description="base URL clients reach the API at, for `file_url` and Progress `url`",
        json_schema_extra={"default_text": "from the request"},
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="proxies whose `X-Forwarded-Proto` and `X-Forwarded-For` headers the API trusts; `*` for any, "
        "behind an ingress",
        json_schema_extra={"details": "`X-Forwarded-Host` is never read."},
    )
    allowed_hosts: str = Field(
        "localhost,127.0.0.1,[::1]",
        description="comma-separated `Host` values the API answers (`*.example.edu` for any subdomain, `*` for any "
        "host); the host of `PUBLIC_URL` is always allowed",
        json_schema_extra={
            "details": "Any other `Host` gets 400, so URLs handed to clients (`file_url`, Progress `url`, `Link`) are "
            "built from `PUBLIC_URL` or an allowed `Host`, never one a client chose. `/healthz`, `/readyz` and "
            "`/metrics` answer any `Host` (probes send the pod's address). Set it when `PUBLIC_URL` is not set and "
            "clients use another name."
        },
    )
    report_jobs_per_account: int = Field(
        10,
        ge=1,
        le=10_000,
        description="report jobs one account may have queued or running at once, across all servers; one more is "
        "refused with 429 and `Retry-After`",
    )
    report_retention_days: int = Field(
        14,
        ge=1,
        le=3650,
        description="days after it ended that a finished report (complete, error, aborted) is deleted with its file",
        json_schema_extra={
            "details": "The API answers 404 for it, as for a deleted report. Checked when `serve` starts and hourly."
        },
    )

    # HTTPS receiver (`receive`)
    receive_host: str = Field(
        "127.0.0.1",
        description="address the receiver listens on; `0.0.0.0` in a container (behind a TLS ingress)",
        json_schema_extra={"flag": "--host"},
    )
    receive_port: int = Field(8080, ge=1, le=65535, description="port the receiver listens on",
                              json_schema_extra={"flag": "--port"})
    jwks_url: str = Field(
        "https://8axpcl50e4.execute-api.us-east-1.amazonaws.com/main/jwks",
        description="where Canvas publishes the public keys (JWKS) that sign Live Events payloads",
        json_schema_extra={"details": "Fetched at start, cached for `JWKS_CACHE_SECONDS`, and fetched again at most "
                           "once a minute when a payload names a key it does not hold (Canvas rotates monthly)."},
    )
    jwks_file: str | None = Field(
        None,
        description="a JWKS file to use instead of `JWKS_URL` (closed networks, tests); read at start",
    )
    jwks_cache_seconds: float = Field(3600.0, ge=60, le=86400, description="how long fetched keys are used before "
                                      "they are fetched again, in seconds")
    allow_unsigned: bool = Field(
        False,
        description="accept unsigned payloads (Data Services' \"Sign Payload\" off); signed ones are still verified",
        json_schema_extra={"flag": "--allow-unsigned", "flag_value": True,
                           "flag_help": "accept unsigned payloads too (signed ones are still verified)",
                           "details": "Off by default: anyone who can reach the receiver could then write events."},
    )
    jwt_issuer: str | None = Field(
        None,
        description="the `iss` a signed payload must carry, e.g. `https://live-events.canvas.instructure.com`; "
        "not checked when unset",
        json_schema_extra={"flag": "--issuer"},
    )
    spool_dir: str = Field(
        "./spool",
        description="directory of the receiver's journal: events accepted while the database cannot take them, "
        "fsync'd before Canvas gets its 2xx, applied when it is back; one receiver per directory",
    )
    spool_max_bytes: int = Field(
        1 << 30,
        ge=1 << 20,
        le=1 << 50,
        description="the most the spool holds, in bytes; above it requests get 503 and Canvas retries",
        json_schema_extra={"details": "How long an outage it covers: SPOOL_MAX_BYTES / (events per second x bytes "
                           "per event); see docs/operations.md."},
    )

    # What is stored about students
    store_user_names: bool = Field(
        True,
        description="keep students' names and emails from progress events in `users`; `false` stores students by id "
        "only, their names and emails never reach the tables (replay, the worker, `rejected retry`)",
        json_schema_extra={
            "flag": "--no-user-names",
            "flag_value": False,
            "flag_help": "store students' ids only, never their names or emails",
            "details": "`scrub-users` clears those stored before. See [Personal data](#personal-data).",
        },
    )

    replay_processes: int = Field(
        0, ge=0, le=64,
        description="worker processes that parse and commit what `replay` reads, on Postgres; 0: one per CPU core "
        "it may use (a container's CPU limit counts; at most 4), or 1 for local files under 16 MiB in all, where "
        "starting workers costs more than they save; 1: all in one process",
        json_schema_extra={
            "flag": "--processes",
            "details": "Batches then commit in any order, which the merge rules allow; if the database fails, "
            "batches read later may already be committed (replay is safe to repeat). SQLite always uses one process.",
        },
    )

    # Progress over time
    history: bool = Field(
        True,
        description="keep every progress event in `course_progress_history` and the daily figures per course "
        "(`course_progress_daily`); `false` keeps the current tables only (replay, the worker, the receiver, "
        "`rejected retry`)",
        json_schema_extra={
            "flag": "--no-history",
            "flag_value": False,
            "flag_help": "keep the current tables only: no course_progress_history, no daily figures",
            "details": "Events applied while it is off are missing from the history and the daily figures for good, "
            "unless they are replayed later with it on (replay is safe to repeat). See docs/bi.md.",
        },
    )

    # The quarantine (`rejected purge --expired`, `status`)
    rejected_retention_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="days a quarantined input is kept after it was last seen; `rejected purge --expired` "
        "deletes older ones. Its payload may hold personal data (names, emails): the default leaves time to notice, "
        "fix and retry, no more",
        json_schema_extra={"details": "See [The quarantine](#the-quarantine-and-its-retention)."},
    )

    @field_validator("database_url")
    @classmethod
    def _use_psycopg3(cls, url: str) -> str:
        # postgres:// and postgresql:// are what most platforms hand out; the
        # driver installed with the tracker is psycopg 3. Anything that cannot
        # work (empty, not a URL, another database or driver) is refused here.
        from consumer.store.engine import database_setting

        return database_setting(url)

    @field_validator("sqs_queue_url")
    @classmethod
    def _queue_is_a_url(cls, url: str | None) -> str | None:
        from urllib.parse import urlparse

        if not url:
            return None  # SQS_QUEUE_URL= (empty) is the same as unset
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path.strip("/").count("/") != 1:
            raise ConfigurationError("not an SQS queue URL: expected https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE")
        return url

    @field_validator("jwks_url")
    @classmethod
    def _jwks_is_a_url(cls, url: str) -> str:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (a port that is not a number in range raises ValueError)
        except ValueError as error:
            raise ConfigurationError(f"not a URL: {error}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("not an http:// or https:// URL")
        return url

    @field_validator("log_levels")
    @classmethod
    def _logger_levels(cls, text: str) -> str:
        from consumer.logs import parse_levels

        parse_levels(text)  # raises ValueError naming the pair that is not logger=LEVEL
        return text

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        level = level.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"unknown log level {level!r}")
        return level
