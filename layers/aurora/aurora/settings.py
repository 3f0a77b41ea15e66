"""One settings object for every AuroraChat process, read from the environment.

`get_settings()` builds it once per process (never at import time). Explicit
values win: `Settings.from_env(environ)` builds one from any mapping.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from aurora.errors import ConfigurationError

# The placeholder secret the local stack uses; refused outside local mode.
LOCAL_DEV_SECRET = "aurora-local-development-secret-not-for-production"  # noqa: S105
MIN_SECRET_BYTES = 32


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
    # True: a run stops when the stream is empty (cheaper, more lag).
    drain_exit_when_idle: bool = True

    # Fan-out container.
    fanout_host: str = "0.0.0.0"
    fanout_port: int = 8080
    ping_interval_seconds: int = 30
    max_frame_bytes: int = 16 * 1024

    # Browser origins allowed outside local mode (comma separated in the env).
    allowed_origins: tuple[str, ...] = ()

    # Fan-out tier, protocol v1 (issue 3).
    auth_timeout_seconds: float = 5.0  # a connection without a token must send `auth` by then
    max_connections_per_user: int = 10  # across every replica
    connection_lease_seconds: int = 30  # a killed replica's connections stop counting after this
    idempotency_ttl_seconds: int = 300  # one client_id is stored once within this time
    resume_window: int = 500  # recent messages kept per room for resume (a capped stream)
    max_backlog: int = 1_000_000  # persistence stream length at which sends get `backpressure`
    max_send_buffer_bytes: int = 256 * 1024  # a client over this is closed with 4008

    @property
    def is_local(self) -> bool:
        return self.env == "local"

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
            drain_exit_when_idle=text("DRAIN_EXIT_WHEN_IDLE", "true").lower()
            in ("1", "true", "yes"),
            fanout_host=text("FANOUT_HOST", defaults.fanout_host),
            fanout_port=number("FANOUT_PORT", defaults.fanout_port),
            ping_interval_seconds=number("PING_INTERVAL_SECONDS", defaults.ping_interval_seconds),
            max_frame_bytes=number("MAX_FRAME_BYTES", defaults.max_frame_bytes),
            allowed_origins=origins,
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
        fanout_limits = (
            self.max_connections_per_user,
            self.connection_lease_seconds,
            self.resume_window,
            self.max_backlog,
            self.idempotency_ttl_seconds,
            self.ping_interval_seconds,
        )
        if min(fanout_limits) < 1:
            raise ConfigurationError("fan-out limits and windows must be positive")
        if self.is_local:
            return
        if self.jwt_secret == LOCAL_DEV_SECRET:
            raise ConfigurationError("JWT_SECRET is the local development secret; set a real one")
        if len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigurationError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env()
