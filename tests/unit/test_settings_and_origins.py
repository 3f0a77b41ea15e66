"""Settings refuse unsafe values outside local mode; origins follow the mode."""

import pytest

from aurora.errors import ConfigurationError
from aurora.origins import is_allowed_origin
from aurora.settings import LOCAL_DEV_SECRET, Settings, declarations, get_settings

GOOD_SECRET = "a-production-secret-that-is-long-enough-0123456789"


def test_the_local_secret_is_refused_outside_local_mode():
    with pytest.raises(ConfigurationError):
        Settings.from_env({"AURORA_ENV": "production"})


def test_a_short_secret_is_refused_outside_local_mode():
    with pytest.raises(ConfigurationError):
        Settings.from_env({"AURORA_ENV": "prod", "JWT_SECRET": "short"})


def test_local_mode_accepts_the_development_secret():
    assert Settings.from_env({"AURORA_ENV": "local"}).jwt_secret == LOCAL_DEV_SECRET


def test_numbers_that_are_not_numbers_are_a_clear_error():
    with pytest.raises(ConfigurationError, match="BCRYPT_ROUNDS"):
        Settings.from_env({"AURORA_ENV": "local", "BCRYPT_ROUNDS": "ten"})


def test_the_secret_never_appears_in_the_settings_repr():
    settings = Settings.from_env({"AURORA_ENV": "prod", "JWT_SECRET": GOOD_SECRET})
    assert GOOD_SECRET not in repr(settings)


def test_settings_are_not_read_at_import_time(monkeypatch):
    get_settings.cache_clear()
    monkeypatch.setenv("AURORA_ENV", "local")
    monkeypatch.setenv("RATE_LIMIT_MESSAGES", "7")
    assert get_settings().rate_limit_messages == 7
    get_settings.cache_clear()


LOCAL = Settings(env="local")
PROD = Settings(env="prod", jwt_secret=GOOD_SECRET, allowed_origins=("https://chat.example.com",))


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "",
        "http://localhost:5173",
        "http://127.0.0.1:3000",
        "http://[::1]:8000",
        "https://localhost",
    ],
)
def test_local_mode_allows_localhost_on_any_port_and_non_browsers(origin):
    assert is_allowed_origin(origin, LOCAL)


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://localhost.evil.example",
        "null",
        "http://127.0.0.2:80",
        "ftp://localhost",
    ],
)
def test_local_mode_refuses_other_origins(origin):
    assert not is_allowed_origin(origin, LOCAL)


def test_production_allows_only_configured_origins():
    assert is_allowed_origin("https://chat.example.com", PROD)
    assert is_allowed_origin(None, PROD)
    assert not is_allowed_origin("http://localhost:5173", PROD)


def test_fanout_settings_are_read_from_the_environment():
    env = {"AURORA_ENV": "local", "MAX_CONNECTIONS_PER_USER": "3", "RESUME_WINDOW": "50",
           "AUTH_TIMEOUT_SECONDS": "2", "MAX_BACKLOG": "10",
           "REVOCATION_CHECK_SECONDS": "7"}  # fmt: skip
    s = Settings.from_env(env)
    assert (s.max_connections_per_user, s.resume_window, s.auth_timeout_seconds) == (3, 50, 2)
    assert s.max_backlog == 10 and s.max_frame_bytes == 16 * 1024
    assert s.revocation_check_seconds == 7
    assert Settings.from_env({"AURORA_ENV": "local"}).revocation_check_seconds == 30


@pytest.mark.parametrize(
    "name",
    ["MAX_CONNECTIONS_PER_USER", "RESUME_WINDOW", "MAX_BACKLOG", "REVOCATION_CHECK_SECONDS"],
)
def test_fanout_limits_must_be_positive(name):
    with pytest.raises(ConfigurationError):
        Settings.from_env({"AURORA_ENV": "local", name: "0"})


@pytest.mark.parametrize(
    ("name", "value"),
    [("ATTACHMENT_MAX_BYTES", "0"), ("ATTACHMENT_URL_TTL_SECONDS", "0"),
     ("ATTACHMENT_URL_TTL_SECONDS", "-5"), ("ATTACHMENT_URL_TTL_SECONDS", "604801")],
)  # fmt: skip
def test_attachment_limits_outside_what_s3_presigns_are_refused(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({"AURORA_ENV": "local", name: value})


def test_a_week_long_attachment_link_is_the_longest_allowed():
    settings = Settings.from_env({"AURORA_ENV": "local", "ATTACHMENT_URL_TTL_SECONDS": "604800"})
    assert settings.attachment_url_ttl_seconds == 604800


def test_a_fractional_auth_timeout_is_read_as_seconds():
    settings = Settings.from_env({"AURORA_ENV": "local", "AUTH_TIMEOUT_SECONDS": "2.5"})
    assert settings.auth_timeout_seconds == 2.5


@pytest.mark.parametrize(
    ("name", "value"),
    [("AUTH_TIMEOUT_SECONDS", "0"), ("JWT_TTL_SECONDS", "2.5"), ("BCRYPT_ROUNDS", "17"),
     ("FANOUT_PORT", "70000"), ("DRAIN_EXIT_WHEN_IDLE", "maybe")],
)  # fmt: skip
def test_a_value_out_of_its_type_or_bounds_is_refused_by_its_variable_name(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({"AURORA_ENV": "local", name: value})


PARTITION_LISTS = ("stream_partitions_before", "drain_partitions")


def test_every_field_is_read_from_its_declared_variable():
    """One declaration per field: a value set under its name arrives in the field."""
    samples = {int: "7", float: "7.5", bool: "true", str: "http://localhost:1"}
    for declared in declarations():
        kind = type(declared.default)
        if isinstance(declared.default, tuple):
            raw, expected = "a/b, c/d", ("a/b", "c/d")
            if declared.name in PARTITION_LISTS:
                raw, expected = "1, 2", (1, 2)
        else:
            raw = samples[kind]
            expected = kind(raw) if kind in (int, float) else raw == "true" if kind is bool else raw
        env = {"AURORA_ENV": "local", "HISTORY_PAGE_DEFAULT": "1", declared.env[0]: raw}
        if declared.name == "env":
            env["AURORA_ENV"], expected = "local", "local"
        assert getattr(Settings.from_env(env), declared.name) == expected, declared.env[0]


@pytest.mark.parametrize(
    "url",
    [
        "redis://:token@cache.example.com:6379/0",
        "redis://10.0.0.5:6379/0",
        # Several seed nodes: every one must be on this host.
        "redis://127.0.0.1:7000,10.0.0.5:7001/0",
    ],
)
def test_a_plain_redis_url_to_another_host_is_refused_outside_local_mode(url):
    """It may carry an AUTH token, and every message crosses it: TLS (rediss://)."""
    with pytest.raises(ConfigurationError, match="rediss://"):
        Settings.from_env({"REDIS_URL": url, "JWT_SECRET": "x" * 32})
    Settings.from_env({"REDIS_URL": url, "AURORA_ENV": "local"})


@pytest.mark.parametrize(
    "url",
    ["rediss://:token@cache.example.com:6379/0", "redis://127.0.0.1:6379/0",
     "redis://localhost/0", "unix:///run/redis.sock"],
)  # fmt: skip
def test_tls_or_a_redis_on_this_host_is_accepted_outside_local_mode(url):
    assert Settings.from_env({"REDIS_URL": url, "JWT_SECRET": "x" * 32}).redis_url == url


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("STREAM_PARTITIONS", "257"),
        ("STREAM_PARTITIONS", "-1"),
        ("STREAM_PARTITIONS_BEFORE", "0"),
        ("STREAM_PARTITIONS_BEFORE", "4, x"),
        ("DRAIN_PARTITIONS", "256"),
    ],
)
def test_partition_settings_out_of_bounds_are_refused(name, raw):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({"AURORA_ENV": "local", name: raw})


def test_seed_nodes_on_this_host_need_no_tls():
    url = "redis://127.0.0.1:7000,localhost:7001,[::1]:7002/0"
    assert Settings.from_env({"REDIS_URL": url, "JWT_SECRET": "x" * 32}).redis_url == url
