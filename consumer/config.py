"""All configuration in one place: environment variables, overridden by CLI flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./course_progress.db"


class ConfigurationError(ValueError):
    """A setting, flag or environment that cannot work: reported in one line, exit status 2."""


class Settings(BaseSettings):
    """Settings read from the environment (names are case-insensitive)."""

    # A `.env` file in the working directory is read too; the environment wins over it.
    model_config = SettingsConfigDict(extra="ignore", validate_default=True, env_file=".env", env_file_encoding="utf-8")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL; postgresql+psycopg://user:pass@host/db for Postgres",
    )
    batch_size: int = Field(5000, ge=1, le=50_000, description="events written per database transaction")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="log lines on stderr: json, text, or auto (text on a terminal, json otherwise)"
    )
    log_levels: str = Field(
        "", description="logger=LEVEL pairs, comma-separated, e.g. botocore=DEBUG: boto3, botocore, s3transfer and "
        "urllib3 stay at WARNING unless named here (credentials are masked even then)"
    )

    # SQS worker (`run`) and `send`
    sqs_queue_url: str | None = Field(None, description="URL of the SQS queue Canvas delivers Live Events to")
    receivers: int = Field(4, ge=1, le=64, description="concurrent ReceiveMessage long-polls")
    wait_time_seconds: int = Field(20, ge=0, le=20, description="ReceiveMessage long-poll wait")
    flush_interval: float = Field(0.5, gt=0, le=60, description="longest a received message waits before its batch is committed")
    shutdown_grace: float = Field(30.0, gt=0, description="seconds allowed to finish the in-flight batch on SIGTERM")
    metrics_port: int = Field(9100, ge=0, le=65535, description="port of /metrics, /healthz and /readyz (0: off)")
    metrics_host: str = Field(
        "127.0.0.1", description="address of the worker's /metrics, /healthz and /readyz (0.0.0.0 in a container)"
    )

    # Reports API (`serve`)
    api_host: str = Field("127.0.0.1", description="address the API listens on (0.0.0.0 in a container)")
    api_port: int = Field(8000, ge=1, le=65535, description="port the API listens on")
    report_workers: int = Field(1, ge=1, le=16, description="report jobs run at once by each API server")
    report_lease: float = Field(
        30.0, gt=0, le=3600, description="a running report whose heartbeat is older than this many seconds has lost its server"
    )
    public_url: str | None = Field(None, description="base URL clients use (for file_url and Progress url); default: from the request")
    forwarded_allow_ips: str = Field("127.0.0.1", description="proxies whose X-Forwarded-* headers are trusted")
    allowed_hosts: str = Field(
        "localhost,127.0.0.1,[::1]",
        description="comma-separated Host header values the API answers (`*.example.edu` for subdomains, `*` for "
        "any); the host of PUBLIC_URL is always allowed. URLs handed to clients are built from PUBLIC_URL, or "
        "from an allowed Host",
    )
    report_jobs_per_account: int = Field(
        10, ge=1, le=10_000, description="report jobs an account may have queued or running at once (above: 429)"
    )
    report_retention_days: int = Field(
        14, ge=1, le=3650, description="days a finished report's file is kept; older files are deleted"
    )

    # What is stored about students
    store_user_names: bool = Field(
        True,
        description="keep students' names and emails from progress events in `users`; false keeps ids only "
        "(`canvas-progress scrub-users` clears those already stored)",
    )

    # The quarantine (`rejected purge --expired`, `status`)
    rejected_retention_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="days a quarantined input is kept after it was last seen; `rejected purge --expired` deletes older "
        "ones. Its payload may hold personal data (names, emails): 30 days leaves time to fix and retry, no more",
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
