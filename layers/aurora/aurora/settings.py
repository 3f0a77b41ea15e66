"""One settings object for every AuroraChat process, read from the environment.

Each field states its environment variable, default, type and bounds once
(`setting(...)`); `Settings.from_env(environ)` reads them all from any mapping,
and `get_settings()` builds the process-wide one on first use (never at import
time). Plain dataclasses, no pydantic: the drain's cold start never loads it.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, get_origin, get_type_hints
from urllib.parse import urlsplit

from aurora.errors import ConfigurationError
from aurora.secrets import LOCAL_DEV_SECRET, check_secrets, in_cloud_runtime, resolve_stored_urls

# bcrypt costs below this are refused outside local mode: each step halves
# the work of guessing a stolen hash.
MIN_BCRYPT_ROUNDS = 10

# Registrations per client IP and window in local mode, where every script and
# load test registers from 127.0.0.1 (REGISTRATIONS_PER_IP still wins).
LOCAL_REGISTRATIONS_PER_IP = 100_000

# Where a plain redis:// URL is accepted outside local mode: nothing crosses a network.
_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

# SigV4 presigned URLs live at most 7 days (S3 refuses a longer X-Amz-Expires).
MAX_PRESIGNED_URL_SECONDS = 7 * 24 * 3600


def setting(
    env: str | tuple[str, ...],
    default: Any,
    doc: str,
    *,
    limit: bool = False,
    secret: bool = False,
    parse: Callable[[str], Any] | None = None,
    **bounds: float,
) -> Any:
    """A field read from `env` (the first of several names that is set, when a
    tuple), parsed by its annotated type unless `parse` is given: a tuple is a
    comma-separated list. `bounds` are `ge`, `gt` and `le`. `limit` lists it in
    docs/limits.md; `secret` keeps it out of repr and error messages."""
    names = (env,) if isinstance(env, str) else env
    unknown = set(bounds) - set(_BOUNDS)
    assert not unknown, f"unknown bounds {unknown}"
    meta = {"env": names, "doc": doc, "limit": limit, "secret": secret, "parse": parse,
            "bounds": bounds}  # fmt: skip
    return field(default=default, repr=not secret, metadata=meta)


_BOUNDS = {"ge": (operator.ge, ">="), "gt": (operator.gt, ">"), "le": (operator.le, "<=")}


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _items(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _partition_counts(raw: str) -> tuple[int, ...]:
    counts = tuple(int(item) for item in _items(raw))
    if any(not 1 <= count <= 256 for count in counts):
        raise ValueError("each must be a partition count from 1 to 256")
    return counts


def _partition_indexes(raw: str) -> tuple[int, ...]:
    indexes = tuple(int(item) for item in _items(raw))
    if any(not 0 <= index < 256 for index in indexes):
        raise ValueError("each must be a partition index from 0 to 255")
    return indexes


def _content_types(raw: str) -> tuple[str, ...]:
    return _items(raw.lower())


_PARSERS: dict[Any, Callable[[str], Any]] = {int: int, float: float, bool: _flag, str: str}


@dataclass(frozen=True)
class Settings:
    # Mode: "local" relaxes origin checks and allows the development secret.
    env: str = setting("AURORA_ENV", "production", "local, or anything else for the cloud")
    # Browser origins allowed outside local mode (local mode allows localhost).
    allowed_origins: tuple[str, ...] = setting("ALLOWED_ORIGINS", (), "allowed browser origins")

    # Redis: streams, pub/sub, rate limits, sessions and revocations.
    redis_url: str = setting("REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL")
    # Redis replicates asynchronously: a master that dies (or is cut off and
    # replaced) loses what it had not passed on. With N > 0 a message, edit,
    # delete or reaction is acknowledged only once N replicas of its master
    # have it (WAIT); otherwise the sender gets `unavailable` and retries with
    # the same client_id (docs/cluster.md, "Failover: what can be lost").
    redis_replica_acks: int = setting(
        "REDIS_REPLICA_ACKS", 0, "replicas that must have a message before its ack", ge=0
    )
    redis_replica_ack_timeout_ms: int = setting(
        "REDIS_REPLICA_ACK_TIMEOUT_MS", 1000, "how long a send waits for them", ge=1
    )

    # MongoDB: users, stored messages, room activity. In the cloud MONGO_URL
    # may come from Secrets Manager instead (MONGO_URL_SECRET_ID, aurora.secrets).
    mongo_url: str = setting(
        "MONGO_URL", "mongodb://127.0.0.1:27017/?retryWrites=false", "MongoDB URI", secret=True
    )
    mongo_db: str = setting("MONGO_DB", "aurora", "database name")

    # Tokens and their secrets. In the cloud the secret can come from SSM
    # Parameter Store (a SecureString name) or Secrets Manager (a secret id)
    # instead of JWT_SECRET, cached for jwt_secret_max_age_seconds.
    jwt_secret: str = setting("JWT_SECRET", LOCAL_DEV_SECRET, "HS256 signing key", secret=True)
    jwt_previous_secrets: tuple[str, ...] = setting(
        "JWT_PREVIOUS_SECRETS", (), "keys that still verify after a rotation", secret=True
    )
    jwt_secret_parameter: str = setting("JWT_SECRET_PARAMETER", "", "SSM parameter name")
    jwt_secret_id: str = setting("JWT_SECRET_ID", "", "Secrets Manager secret id")
    jwt_secret_max_age_seconds: int = setting(
        "JWT_SECRET_MAX_AGE_SECONDS", 300, "a fetched secret is reused this long", ge=0
    )
    jwt_ttl_seconds: int = setting(
        "JWT_TTL_SECONDS", 24 * 3600, "access token lifetime", limit=True, ge=1
    )
    jwt_leeway_seconds: int = setting(
        "JWT_LEEWAY_SECONDS", 10, "clock skew allowed when checking expiry", ge=0
    )
    # Every token names who issued it and for whom, and only tokens naming this
    # deployment are accepted: a secret shared by mistake between deployments
    # does not make their tokens interchangeable. The template sets an issuer
    # per account, region and stage.
    jwt_issuer: str = setting("JWT_ISSUER", "aurorachat", "`iss` of tokens issued and accepted")
    jwt_audience: str = setting("JWT_AUDIENCE", "aurorachat", "`aud` of tokens issued and accepted")
    # Tokens with neither claim come from servers that predate them (the
    # original's included): accepted until they expire while this is on. Turn
    # it off once JWT_TTL_SECONDS has passed since every server sharing the
    # secret issues `iss` and `aud`.
    jwt_accept_unscoped: bool = setting(
        "JWT_ACCEPT_UNSCOPED", True, "accept unexpired tokens that carry neither `iss` nor `aud`"
    )
    refresh_ttl_seconds: int = setting(
        "REFRESH_TTL_SECONDS", 30 * 24 * 3600, "refresh token lifetime", limit=True, ge=1
    )

    # Passwords, sessions, and the login and registration throttles. Local
    # mode (and the tests) may use a lower bcrypt cost for speed; the cloud
    # may not go below MIN_BCRYPT_ROUNDS.
    bcrypt_rounds: int = setting("BCRYPT_ROUNDS", 10, "bcrypt cost", ge=4, le=16)
    max_sessions_per_user: int = setting(
        "MAX_SESSIONS_PER_USER", 50, "open sessions per user (oldest ended)", limit=True, ge=1
    )
    login_failures_per_user_ip: int = setting(
        "LOGIN_FAILURES_PER_USER_IP", 5, "failed logins per username and IP", limit=True, ge=1
    )
    login_failures_per_ip: int = setting(
        "LOGIN_FAILURES_PER_IP", 50, "failed logins per IP, any username", limit=True, ge=1
    )
    login_failure_window_seconds: int = setting(
        "LOGIN_FAILURE_WINDOW_SECONDS",
        15 * 60,
        "window (and lock) of the login throttle",
        limit=True,
        ge=1,
    )
    registrations_per_ip: int = setting(
        "REGISTRATIONS_PER_IP", 10, "registrations per IP", limit=True, ge=1
    )
    registration_window_seconds: int = setting(
        "REGISTRATION_WINDOW_SECONDS",
        3600,
        "window of the registration throttle",
        limit=True,
        ge=1,
    )

    # Sending messages: per-user rate, text size, idempotency, resume, backpressure.
    rate_limit_messages: int = setting(
        "RATE_LIMIT_MESSAGES", 3, "messages per user per window", limit=True, ge=1
    )
    rate_limit_window_ms: int = setting(
        "RATE_LIMIT_WINDOW_MS", 1000, "window of the send rate", limit=True, ge=1
    )
    rate_limit_changes: int = setting(
        "RATE_LIMIT_CHANGES", 10, "edits, deletes and reactions per user and room per window",
        limit=True,
        ge=1,
    )  # fmt: skip
    rate_limit_changes_window_ms: int = setting(
        "RATE_LIMIT_CHANGES_WINDOW_MS", 1000, "window of the change rate", limit=True, ge=1
    )
    max_reactions_per_user: int = setting(
        "MAX_REACTIONS_PER_USER", 10, "distinct reactions of one user on one message", limit=True,
        ge=1, le=50,
    )  # fmt: skip
    # The per-user budget across all rooms (`aurora.budget`), checked before
    # the per-room limit above: one account sending to many rooms cannot fill
    # Redis. Token buckets: the rate is sustained, the burst may come at once.
    user_messages_per_second: float = setting(
        "USER_MESSAGES_PER_SECOND",
        10.0,
        "messages per user per second, all rooms",
        limit=True,
        gt=0,
    )
    user_message_burst: int = setting(
        "USER_MESSAGE_BURST", 20, "messages per user at once, all rooms", limit=True, ge=1
    )
    user_bytes_per_window: int = setting(
        "USER_BYTES_PER_WINDOW",
        256 * 1024,
        "message bytes per user per USER_BYTES_WINDOW_SECONDS, all rooms",
        limit=True,
        ge=1,
    )
    user_bytes_window_seconds: int = setting(
        "USER_BYTES_WINDOW_SECONDS", 10, "window of USER_BYTES_PER_WINDOW", limit=True, ge=1
    )
    max_text_chars: int = setting(
        "MAX_TEXT_CHARS", 4000, "characters of one message's text", limit=True, ge=1
    )
    idempotency_ttl_seconds: int = setting(
        "IDEMPOTENCY_TTL_SECONDS",
        300,
        "one client_id is stored once within this time",
        limit=True,
        ge=1,
    )
    resume_window: int = setting(
        "RESUME_WINDOW", 500, "recent messages kept per room for resume", limit=True, ge=1
    )
    resume_window_ttl_seconds: int = setting(
        "RESUME_WINDOW_TTL_SECONDS",
        24 * 3600,
        "a room's resume window is dropped after this long without a message",
        limit=True,
        ge=1,
    )
    max_backlog_bytes: int = setting(
        "MAX_BACKLOG_BYTES",
        256 * 1024 * 1024,
        "persistence stream bytes (Redis's estimate) at which sends get `backpressure`",
        limit=True,
        ge=1,
    )
    max_backlog: int = setting(
        "MAX_BACKLOG",
        1_000_000,
        "persistence stream length at which sends get `backpressure`",
        limit=True,
        ge=1,
    )

    stream_partitions: int = setting(
        "STREAM_PARTITIONS",
        0,
        "persistence stream partitions, fixed per deployment (0: 1 on a single Redis, "
        "12 on a cluster)",
        ge=0,
        le=256,
    )
    stream_partitions_before: tuple[int, ...] = setting(
        "STREAM_PARTITIONS_BEFORE",
        (),
        "earlier partition counts whose streams the drain still empties after a change",
        parse=_partition_counts,
    )
    drain_partitions: tuple[int, ...] = setting(
        "DRAIN_PARTITIONS",
        (),
        "the partitions this drain empties, e.g. 0,1,2 (empty: all; one schedule per group)",
        parse=_partition_indexes,
    )

    # Fan-out server: listening, keepalive, per-connection and per-user limits.
    fanout_host: str = setting("FANOUT_HOST", "0.0.0.0", "listening address")
    fanout_port: int = setting("FANOUT_PORT", 8080, "listening port (0: any)", ge=0, le=65535)
    fanout_console_logs: bool = setting(
        "FANOUT_CONSOLE_LOGS", False, "readable log lines instead of one JSON object a line"
    )
    ping_interval_seconds: int = setting(
        "PING_INTERVAL_SECONDS", 30, "WebSocket ping interval", ge=1
    )
    auth_timeout_seconds: float = setting(
        "AUTH_TIMEOUT_SECONDS",
        5.0,
        "a connection without a token must send `auth` by then",
        limit=True,
        gt=0,
    )
    max_frame_bytes: int = setting(
        "MAX_FRAME_BYTES", 16 * 1024, "bytes of one client frame", limit=True, ge=1
    )
    max_send_buffer_bytes: int = setting(
        "MAX_SEND_BUFFER_BYTES",
        256 * 1024,
        "a client over this is closed with 4008",
        limit=True,
        ge=1,
    )
    # Inbound frames per connection, every type (`fanout.frame_limit`): over
    # the bucket a frame gets `rate_limited`; a flood is closed with 1008.
    # The burst covers a reconnect that rejoins 100 rooms at once.
    inbound_frames_per_second: float = setting(
        "INBOUND_FRAMES_PER_SECOND", 30.0, "frames one connection may send per second",
        limit=True, gt=0,
    )  # fmt: skip
    inbound_frame_burst: int = setting(
        "INBOUND_FRAME_BURST", 150, "frames one connection may send at once", limit=True, ge=1
    )
    flood_frames_per_second: int = setting(
        "FLOOD_FRAMES_PER_SECOND", 200, "frames per second that count as a flood", limit=True,
        ge=1,
    )  # fmt: skip
    flood_seconds: int = setting(
        "FLOOD_SECONDS", 5, "seconds of flood in a row before the connection is closed (1008)",
        limit=True, ge=1,
    )  # fmt: skip
    typing_interval_ms: int = setting(
        "TYPING_INTERVAL_MS", 1000, "one `typing` frame per connection and room this often",
        limit=True, ge=1,
    )  # fmt: skip
    socket_send_buffer_bytes: int = setting(
        "SOCKET_SEND_BUFFER_BYTES",
        64 * 1024,
        "kernel send buffer of one connection (0: the kernel's autotuning, up to MBs)",
        limit=True,
        ge=0,
    )
    max_connections_per_user: int = setting(
        "MAX_CONNECTIONS_PER_USER",
        10,
        "open WebSockets per user, across every replica",
        limit=True,
        ge=1,
    )
    admissions_per_second: int = setting(
        "ADMISSIONS_PER_SECOND",
        1000,
        "new WebSockets one replica accepts per second (bursts as large); more get 503",
        limit=True,
        ge=1,
    )
    connection_lease_seconds: int = setting(
        "CONNECTION_LEASE_SECONDS",
        30,
        "a killed replica's connections stop counting after this",
        ge=1,
    )
    # Each replica re-checks all its connections this often, so a lost pub/sub
    # revocation notice is still enforced within this bound.
    revocation_check_seconds: int = setting(
        "REVOCATION_CHECK_SECONDS", 30, "revoked tokens are enforced within this", ge=1
    )

    # Persistence drain: the scheduled function that stores the stream in MongoDB.
    drain_batch_size: int = setting("DRAIN_BATCH_SIZE", 500, "entries read per batch", ge=1)
    drain_block_ms: int = setting("DRAIN_BLOCK_MS", 1000, "wait for new entries", ge=0)
    drain_safety_margin_ms: int = setting(
        "DRAIN_SAFETY_MARGIN_MS", 5000, "stop this long before the run's timeout", ge=0
    )
    drain_claim_idle_ms: int = setting(
        "DRAIN_CLAIM_IDLE_MS", 30_000, "reclaim entries another run left pending this long", ge=0
    )
    drain_max_deliveries: int = setting(
        "DRAIN_MAX_DELIVERIES", 5, "an entry delivered more often is dead-lettered", ge=1
    )
    drain_trim_interval_ms: int = setting(
        "DRAIN_TRIM_INTERVAL_MS", 1000, "the stream is trimmed at most this often", ge=0
    )
    # True: a run stops when the stream is empty (cheaper, more lag); the
    # default keeps each run draining until its time is nearly up.
    drain_exit_when_idle: bool = setting(
        "DRAIN_EXIT_WHEN_IDLE", False, "stop a run once the stream is empty"
    )

    # History and search (the messages function): page sizes and query time.
    history_page_default: int = setting(
        "HISTORY_PAGE_DEFAULT", 50, "messages per page when not asked (<= max)", limit=True, ge=1
    )
    history_page_max: int = setting(
        "HISTORY_PAGE_MAX", 100, "messages per page at most", limit=True, ge=1
    )
    # One budget per user for history, search and room listing (`aurora.budget`).
    reads_per_second: float = setting(
        "READS_PER_SECOND", 5.0, "history, search and room-listing requests per user per second",
        limit=True, gt=0,
    )  # fmt: skip
    read_burst: int = setting(
        "READ_BURST", 20, "history, search and room-listing requests per user at once",
        limit=True, ge=1,
    )  # fmt: skip
    history_query_max_ms: int = setting(
        "HISTORY_QUERY_MAX_MS",
        2000,
        "time one history or search query may run",
        limit=True,
        ge=1,
    )

    room_creations_per_minute: int = setting(
        "ROOM_CREATIONS_PER_MINUTE", 30, "rooms one user may create per minute", limit=True, ge=1
    )
    # Operators moderate every public room (`general` included) and read the
    # audit log: user ids, never usernames (a name can be registered by anyone).
    operators: tuple[str, ...] = setting(
        "AURORA_OPERATORS", (), "user ids of operators (comma-separated)"
    )
    max_blocks_per_user: int = setting(
        "MAX_BLOCKS_PER_USER", 1000, "users one user may block", limit=True, ge=1
    )
    # Presence: an online entry lives this long unless its replica refreshes it
    # (every third of it), so a dead replica's users go offline within it.
    presence_ttl_seconds: float = setting(
        "PRESENCE_TTL_SECONDS", 45.0, "a dead replica's users go offline within this",
        limit=True, ge=1, le=60,
    )  # fmt: skip
    # Fan-out replicas re-check every joined connection's room access this
    # often, so a lost membership notice is still enforced within this bound.
    membership_check_seconds: float = setting(
        "MEMBERSHIP_CHECK_SECONDS", 10.0, "membership changes are enforced within this", gt=0
    )

    # Attachments: presigned S3 uploads, checked with HEAD before a message carries them.
    attachments_bucket: str = setting("ATTACHMENTS_BUCKET", "aurora-attachments", "S3 bucket")
    attachment_max_bytes: int = setting(
        "ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024, "bytes of one attachment", limit=True, ge=1
    )
    attachment_content_types: tuple[str, ...] = setting(
        "ATTACHMENT_CONTENT_TYPES",
        ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"),
        "content types an attachment may have",
        parse=_content_types,
    )
    attachment_storage_per_user: int = setting(
        "ATTACHMENT_STORAGE_PER_USER", 1024**3, "bytes of attachments one user may upload in all",
        limit=True, ge=1,
    )  # fmt: skip
    attachment_check_threads: int = setting(
        "ATTACHMENT_CHECK_THREADS", 4, "threads of the fan-out's attachment checks (S3 HEAD)",
        limit=True, ge=1, le=64,
    )  # fmt: skip
    attachment_url_ttl_seconds: int = setting(
        "ATTACHMENT_URL_TTL_SECONDS",
        300,
        "lifetime of presigned upload and download links",
        limit=True,
        ge=1,
        le=MAX_PRESIGNED_URL_SECONDS,
    )
    # Set locally (moto or LocalStack); empty on AWS, where boto3 finds S3 itself.
    s3_endpoint_url: str = setting(
        ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"), "", "S3 address the servers use"
    )
    # Where browsers reach that same S3, if not at s3_endpoint_url: presigned
    # URLs are signed for this address (SigV4 signs the host, so a signed URL
    # cannot be rewritten). Under docker compose the servers use
    # http://s3:5000 and the host's browser http://localhost:9000.
    s3_public_endpoint_url: str = setting(
        "S3_PUBLIC_ENDPOINT_URL", "", "S3 address browsers use (empty: s3_endpoint_url)"
    )

    @property
    def is_local(self) -> bool:
        return self.env == "local"

    @property
    def s3_presign_endpoint_url(self) -> str:
        """The S3 address presigned URLs name: the public one if set."""
        return self.s3_public_endpoint_url or self.s3_endpoint_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `environ` (default: the process environment); unset or
        empty variables keep their defaults. ConfigurationError names the variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for declared in declarations():
            raw = next((env[name] for name in declared.env if env.get(name)), "")
            if raw:
                value = declared.read(raw)
                if value != ():  # an empty list keeps the default
                    values[declared.name] = value
        # The one default that depends on the mode (see LOCAL_REGISTRATIONS_PER_IP).
        if values.get("env", cls.env) == "local" and "registrations_per_ip" not in values:
            values["registrations_per_ip"] = LOCAL_REGISTRATIONS_PER_IP
        settings = cls(**values)
        settings.check(env)
        return settings

    def check(self, environ: Mapping[str, str] | None = None) -> None:
        """Refuse what no single field's bounds can: settings that contradict
        each other, and what is unsafe outside local mode. On Lambda or ECS
        (seen in `environ`, default: the process environment) the secrets are
        checked even in local mode: a cloud stack never runs with the public
        development secret, whatever its stage or AURORA_ENV."""
        if self.history_page_default > self.history_page_max:
            raise ConfigurationError("HISTORY_PAGE_DEFAULT must be between 1 and HISTORY_PAGE_MAX")
        if self.s3_public_endpoint_url:
            public = urlsplit(self.s3_public_endpoint_url)
            if public.scheme not in ("http", "https") or not public.netloc or public.query:
                raise ConfigurationError(
                    "S3_PUBLIC_ENDPOINT_URL must be an http(s) URL like http://localhost:9000"
                )
        if not self.is_local:
            if self.bcrypt_rounds < MIN_BCRYPT_ROUNDS:
                raise ConfigurationError(
                    f"BCRYPT_ROUNDS must be >= {MIN_BCRYPT_ROUNDS} outside local mode"
                )
            redis = urlsplit(self.redis_url)
            # Several seed nodes are comma-separated `host:port`s (aurora.backends).
            hosts = [
                urlsplit(f"//{node}").hostname
                for node in redis.netloc.rpartition("@")[2].split(",")
            ]
            if redis.scheme not in ("rediss", "unix") and not all(
                host in _LOOPBACK_HOSTS for host in hosts
            ):
                # The URL may carry an AUTH token, and every message crosses it.
                raise ConfigurationError(
                    "REDIS_URL must use TLS (rediss://) outside local mode, "
                    "unless Redis is on this host"
                )
        elif not in_cloud_runtime(environ):
            return
        if self.jwt_secret_parameter or self.jwt_secret_id:
            return  # fetched on first use and checked then (aurora.secrets)
        check_secrets((self.jwt_secret, *self.jwt_previous_secrets), "JWT_SECRET")


@dataclass(frozen=True)
class Declared:
    """One field as declared: what `from_env` and docs/limits.md read."""

    name: str
    env: tuple[str, ...]
    default: Any
    doc: str
    limit: bool
    secret: bool
    parse: Callable[[str], Any]
    bounds: dict[str, float]

    def read(self, raw: str) -> Any:
        """`raw` parsed and checked against the bounds; ConfigurationError names
        the variable (and the value, unless it is a secret)."""
        got = "" if self.secret else f", got {raw!r}"
        try:
            value = self.parse(raw)
        except ValueError:
            kind = {int: "an integer", float: "a number", bool: "true or false"}
            wanted = kind.get(type(self.default), "valid")
            raise ConfigurationError(f"{self.env[0]} must be {wanted}{got}") from None
        for name, limit in self.bounds.items():
            holds, sign = _BOUNDS[name]
            if not holds(value, limit):
                raise ConfigurationError(f"{self.env[0]} must be {sign} {limit}{got}")
        return value


@lru_cache(maxsize=1)
def declarations() -> tuple[Declared, ...]:
    """Every settings field, in declaration order."""
    hints = get_type_hints(Settings)
    found = []
    for spec in fields(Settings):
        meta = spec.metadata
        kind = hints[spec.name]
        parse = meta["parse"] or (_items if get_origin(kind) is tuple else _PARSERS[kind])
        found.append(
            Declared(
                name=spec.name,
                env=meta["env"],
                default=spec.default,
                doc=meta["doc"],
                limit=meta["limit"],
                secret=meta["secret"],
                parse=parse,
                bounds=dict(meta["bounds"]),
            )
        )
    return tuple(found)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_env(resolve_stored_urls(os.environ))
