"""One settings object for every AuroraChat process, read from the environment.

`get_settings()` builds it once per process (never at import time). Explicit
values win: `Settings.from_env(environ)` builds one from any mapping.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

from aurora.errors import ConfigurationError

# The placeholder secret the local stack uses; refused outside local mode.
LOCAL_DEV_SECRET = "aurora-local-development-secret-not-for-production"  # noqa: S105
MIN_SECRET_BYTES = 32


# Registrations per client IP and window in local mode, where every script and
# load test registers from 127.0.0.1 (REGISTRATIONS_PER_IP still wins).
LOCAL_REGISTRATIONS_PER_IP = 100_000

# SigV4 presigned URLs live at most 7 days (S3 refuses a longer X-Amz-Expires).
MAX_PRESIGNED_URL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Settings:
    # Mode: "local" relaxes origin checks and allows the development secret.
    env: str = "production"

    # Backends, chosen by URL.
    redis_url: str = "redis://127.0.0.1:6379/0"
    mongo_url: str = "mongodb://127.0.0.1:27017/?retryWrites=false"
    mongo_db: str = "aurora"

    # Tokens and passwords.
    jwt_secret: str = field(default=LOCAL_DEV_SECRET, repr=False)
    jwt_ttl_seconds: int = 24 * 3600
    jwt_leeway_seconds: int = 10
    bcrypt_rounds: int = 10

    # Chat limits.
    rate_limit_messages: int = 3
    rate_limit_window_ms: int = 1000
    max_text_chars: int = 4000

    # Persistence drain.
    drain_batch_size: int = 500
    drain_block_ms: int = 1000
    drain_safety_margin_ms: int = 5000
    drain_claim_idle_ms: int = 30_000
    # True: a run stops when the stream is empty (cheaper, more lag); the
    # default keeps each run draining until its time is nearly up.
    drain_exit_when_idle: bool = False

    # Fan-out container.
    fanout_host: str = "0.0.0.0"
    fanout_port: int = 8080
    ping_interval_seconds: int = 30
    max_frame_bytes: int = 16 * 1024

    # Browser origins allowed outside local mode (comma separated in the env).
    allowed_origins: tuple[str, ...] = ()

    # Accounts and tokens (issue 5).
    # Secrets that still verify tokens after a rotation (comma separated in the env).
    jwt_previous_secrets: tuple[str, ...] = field(default=(), repr=False)
    # In the cloud the secret can come from SSM Parameter Store (a SecureString name)
    # or Secrets Manager (a secret id) instead of JWT_SECRET; cached this long.
    jwt_secret_parameter: str = ""
    jwt_secret_id: str = ""
    jwt_secret_max_age_seconds: int = 300
    refresh_ttl_seconds: int = 30 * 24 * 3600
    max_sessions_per_user: int = 50
    # Failed logins: per username and client IP, and wider per client IP.
    login_failures_per_user_ip: int = 5
    login_failures_per_ip: int = 50
    login_failure_window_seconds: int = 15 * 60
    registrations_per_ip: int = 10
    registration_window_seconds: int = 3600
    # Persistence drain, continued: an entry delivered more than this many
    # times is dead-lettered; the stream is trimmed at most this often.
    drain_max_deliveries: int = 5
    drain_trim_interval_ms: int = 1000
    # Attachments (issue 6): presigned S3 uploads, checked with HEAD before use.
    attachments_bucket: str = "aurora-attachments"
    attachment_max_bytes: int = 10 * 1024 * 1024
    attachment_content_types: tuple[str, ...] = (
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
    )
    attachment_url_ttl_seconds: int = 300
    # Set locally (moto or LocalStack); empty on AWS, where boto3 finds S3 itself.
    s3_endpoint_url: str = ""
    # Where browsers reach that same S3, if not at s3_endpoint_url: presigned
    # upload and download URLs are signed for this address (SigV4 signs the
    # host, so a signed URL cannot be rewritten to another one). Under docker
    # compose the servers use http://s3:5000 and the host's browser
    # http://localhost:9000. Empty: s3_endpoint_url.
    s3_public_endpoint_url: str = ""
    # Fan-out tier, protocol v1 (issue 3).
    auth_timeout_seconds: float = 5.0  # a connection without a token must send `auth` by then
    max_connections_per_user: int = 10  # across every replica
    connection_lease_seconds: int = 30  # a killed replica's connections stop counting after this
    idempotency_ttl_seconds: int = 300  # one client_id is stored once within this time
    resume_window: int = 500  # recent messages kept per room for resume (a capped stream)
    max_backlog: int = 1_000_000  # persistence stream length at which sends get `backpressure`
    max_send_buffer_bytes: int = 256 * 1024  # a client over this is closed with 4008
    # Revocation reaching open WebSockets (issue 9). Each replica re-checks all
    # its connections this often, so a lost pub/sub notice is enforced within
    # this bound (docs/architecture.md).
    revocation_check_seconds: int = 30
    # History, search and rooms (the messages function). Pages hold this many
    # messages by default and at most; each database query may run this long.
    history_page_default: int = 50
    history_page_max: int = 100
    history_query_max_ms: int = 2000

    @property
    def is_local(self) -> bool:
        return self.env == "local"

    @property
    def s3_presign_endpoint_url(self) -> str:
        """The S3 address presigned URLs name: the public one if set."""
        return self.s3_public_endpoint_url or self.s3_endpoint_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()

        def text(name: str, default: str) -> str:
            return env.get(name, "") or default

        def number(name: str, default: int) -> int:
            raw = env.get(name, "")
            if not raw:
                return default
            try:
                return int(raw)
            except ValueError:
                raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None

        origins = tuple(o.strip() for o in env.get("ALLOWED_ORIGINS", "").split(",") if o.strip())
        settings = cls(
            env=text("AURORA_ENV", defaults.env),
            redis_url=text("REDIS_URL", defaults.redis_url),
            mongo_url=text("MONGO_URL", defaults.mongo_url),
            mongo_db=text("MONGO_DB", defaults.mongo_db),
            jwt_secret=text("JWT_SECRET", defaults.jwt_secret),
            jwt_ttl_seconds=number("JWT_TTL_SECONDS", defaults.jwt_ttl_seconds),
            jwt_leeway_seconds=number("JWT_LEEWAY_SECONDS", defaults.jwt_leeway_seconds),
            bcrypt_rounds=number("BCRYPT_ROUNDS", defaults.bcrypt_rounds),
            rate_limit_messages=number("RATE_LIMIT_MESSAGES", defaults.rate_limit_messages),
            rate_limit_window_ms=number("RATE_LIMIT_WINDOW_MS", defaults.rate_limit_window_ms),
            max_text_chars=number("MAX_TEXT_CHARS", defaults.max_text_chars),
            drain_batch_size=number("DRAIN_BATCH_SIZE", defaults.drain_batch_size),
            drain_block_ms=number("DRAIN_BLOCK_MS", defaults.drain_block_ms),
            drain_safety_margin_ms=number(
                "DRAIN_SAFETY_MARGIN_MS", defaults.drain_safety_margin_ms
            ),
            drain_claim_idle_ms=number("DRAIN_CLAIM_IDLE_MS", defaults.drain_claim_idle_ms),
            drain_exit_when_idle=text("DRAIN_EXIT_WHEN_IDLE", "false").lower()
            in ("1", "true", "yes"),
            fanout_host=text("FANOUT_HOST", defaults.fanout_host),
            fanout_port=number("FANOUT_PORT", defaults.fanout_port),
            ping_interval_seconds=number("PING_INTERVAL_SECONDS", defaults.ping_interval_seconds),
            max_frame_bytes=number("MAX_FRAME_BYTES", defaults.max_frame_bytes),
            allowed_origins=origins,
            # Accounts and tokens (issue 5).
            jwt_previous_secrets=tuple(
                s.strip() for s in env.get("JWT_PREVIOUS_SECRETS", "").split(",") if s.strip()
            ),
            jwt_secret_parameter=text("JWT_SECRET_PARAMETER", ""),
            jwt_secret_id=text("JWT_SECRET_ID", ""),
            jwt_secret_max_age_seconds=number(
                "JWT_SECRET_MAX_AGE_SECONDS", defaults.jwt_secret_max_age_seconds
            ),
            refresh_ttl_seconds=number("REFRESH_TTL_SECONDS", defaults.refresh_ttl_seconds),
            max_sessions_per_user=number("MAX_SESSIONS_PER_USER", defaults.max_sessions_per_user),
            login_failures_per_user_ip=number(
                "LOGIN_FAILURES_PER_USER_IP", defaults.login_failures_per_user_ip
            ),
            login_failures_per_ip=number("LOGIN_FAILURES_PER_IP", defaults.login_failures_per_ip),
            login_failure_window_seconds=number(
                "LOGIN_FAILURE_WINDOW_SECONDS", defaults.login_failure_window_seconds
            ),
            registrations_per_ip=number(
                "REGISTRATIONS_PER_IP",
                LOCAL_REGISTRATIONS_PER_IP
                if text("AURORA_ENV", defaults.env) == "local"
                else defaults.registrations_per_ip,
            ),
            registration_window_seconds=number(
                "REGISTRATION_WINDOW_SECONDS", defaults.registration_window_seconds
            ),
            # Persistence drain, continued (issue 4).
            drain_max_deliveries=number("DRAIN_MAX_DELIVERIES", defaults.drain_max_deliveries),
            drain_trim_interval_ms=number(
                "DRAIN_TRIM_INTERVAL_MS", defaults.drain_trim_interval_ms
            ),
            # Attachments (issue 6).
            attachments_bucket=text("ATTACHMENTS_BUCKET", defaults.attachments_bucket),
            attachment_max_bytes=number("ATTACHMENT_MAX_BYTES", defaults.attachment_max_bytes),
            attachment_content_types=tuple(
                t.strip().lower()
                for t in env.get("ATTACHMENT_CONTENT_TYPES", "").split(",")
                if t.strip()
            )
            or defaults.attachment_content_types,
            attachment_url_ttl_seconds=number(
                "ATTACHMENT_URL_TTL_SECONDS", defaults.attachment_url_ttl_seconds
            ),
            s3_endpoint_url=env.get("AWS_ENDPOINT_URL_S3", "") or env.get("AWS_ENDPOINT_URL", ""),
            s3_public_endpoint_url=text("S3_PUBLIC_ENDPOINT_URL", ""),
            # Fan-out tier, protocol v1 (issue 3).
            auth_timeout_seconds=number("AUTH_TIMEOUT_SECONDS", 5),
            max_connections_per_user=number(
                "MAX_CONNECTIONS_PER_USER", defaults.max_connections_per_user
            ),
            connection_lease_seconds=number(
                "CONNECTION_LEASE_SECONDS", defaults.connection_lease_seconds
            ),
            idempotency_ttl_seconds=number(
                "IDEMPOTENCY_TTL_SECONDS", defaults.idempotency_ttl_seconds
            ),
            resume_window=number("RESUME_WINDOW", defaults.resume_window),
            max_backlog=number("MAX_BACKLOG", defaults.max_backlog),
            max_send_buffer_bytes=number("MAX_SEND_BUFFER_BYTES", defaults.max_send_buffer_bytes),
            # Revocation reaching open WebSockets (issue 9).
            revocation_check_seconds=number(
                "REVOCATION_CHECK_SECONDS", defaults.revocation_check_seconds
            ),
            # History, search and rooms.
            history_page_default=number("HISTORY_PAGE_DEFAULT", defaults.history_page_default),
            history_page_max=number("HISTORY_PAGE_MAX", defaults.history_page_max),
            history_query_max_ms=number("HISTORY_QUERY_MAX_MS", defaults.history_query_max_ms),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse settings that are unsafe outside local mode."""
        if not 4 <= self.bcrypt_rounds <= 16:
            raise ConfigurationError("BCRYPT_ROUNDS must be between 4 and 16")
        if self.rate_limit_messages < 1 or self.rate_limit_window_ms < 1:
            raise ConfigurationError("rate limits must be positive")
        if self.drain_batch_size < 1:
            raise ConfigurationError("DRAIN_BATCH_SIZE must be positive")
        throttles = (
            self.login_failures_per_user_ip,
            self.login_failures_per_ip,
            self.login_failure_window_seconds,
            self.registrations_per_ip,
            self.registration_window_seconds,
            self.max_sessions_per_user,
        )
        if min(throttles) < 1 or self.jwt_ttl_seconds < 1 or self.refresh_ttl_seconds < 1:
            raise ConfigurationError(
                "token lifetimes and login/registration limits must be positive"
            )
        if self.drain_max_deliveries < 1:
            raise ConfigurationError("DRAIN_MAX_DELIVERIES must be positive")
        fanout_limits = (
            self.max_connections_per_user,
            self.connection_lease_seconds,
            self.resume_window,
            self.max_backlog,
            self.idempotency_ttl_seconds,
            self.ping_interval_seconds,
            self.revocation_check_seconds,
        )
        if min(fanout_limits) < 1:
            raise ConfigurationError("fan-out limits and windows must be positive")
        if not 1 <= self.history_page_default <= self.history_page_max:
            raise ConfigurationError("HISTORY_PAGE_DEFAULT must be between 1 and HISTORY_PAGE_MAX")
        if self.history_query_max_ms < 1:
            raise ConfigurationError("HISTORY_QUERY_MAX_MS must be positive")
        if self.attachment_max_bytes < 1:
            raise ConfigurationError("ATTACHMENT_MAX_BYTES must be positive")
        if not 1 <= self.attachment_url_ttl_seconds <= MAX_PRESIGNED_URL_SECONDS:
            raise ConfigurationError(
                f"ATTACHMENT_URL_TTL_SECONDS must be between 1 and {MAX_PRESIGNED_URL_SECONDS}"
                " (S3 refuses presigned URLs that live longer than 7 days)"
            )
        if self.s3_public_endpoint_url:
            public = urlsplit(self.s3_public_endpoint_url)
            if public.scheme not in ("http", "https") or not public.netloc or public.query:
                raise ConfigurationError(
                    "S3_PUBLIC_ENDPOINT_URL must be an http(s) URL like http://localhost:9000"
                )
        if self.is_local:
            return
        if self.jwt_secret_parameter or self.jwt_secret_id:
            return  # fetched on first use and checked then (aurora.secrets)
        check_secrets((self.jwt_secret, *self.jwt_previous_secrets), "JWT_SECRET")


def check_secrets(secrets: tuple[str, ...], source: str) -> None:
    """Refuse the development secret or one too short to resist guessing (HS256)."""
    for secret in secrets:
        if secret == LOCAL_DEV_SECRET:
            raise ConfigurationError(f"{source} is the local development secret; set a real one")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigurationError(f"{source} must be at least {MIN_SECRET_BYTES} bytes")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    from aurora.mongo_secret import resolve_mongo_url

    return Settings.from_env(resolve_mongo_url(os.environ))
