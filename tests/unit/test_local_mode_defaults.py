"""The registration throttle: relaxed in local mode (every script registers
from 127.0.0.1), kept in the cloud, and its variable wins in both."""

from __future__ import annotations

from aurora.settings import LOCAL_REGISTRATIONS_PER_IP, Settings

CLOUD = {"AURORA_ENV": "prod", "JWT_SECRET": "x" * 48}


def test_the_cloud_keeps_ten_registrations_per_ip_and_hour():
    settings = Settings.from_env(CLOUD)
    assert (settings.registrations_per_ip, settings.registration_window_seconds) == (10, 3600)


def test_local_mode_relaxes_the_registration_throttle():
    assert Settings.from_env({"AURORA_ENV": "local"}).registrations_per_ip == (
        LOCAL_REGISTRATIONS_PER_IP
    )
    assert LOCAL_REGISTRATIONS_PER_IP >= 10_000


def test_the_variable_wins_in_either_mode():
    for env in (CLOUD, {"AURORA_ENV": "local"}):
        assert Settings.from_env(env | {"REGISTRATIONS_PER_IP": "3"}).registrations_per_ip == 3


def test_login_throttling_is_the_same_in_both_modes():
    local, cloud = Settings.from_env({"AURORA_ENV": "local"}), Settings.from_env(CLOUD)
    for field in ("login_failures_per_user_ip", "login_failures_per_ip"):
        assert getattr(local, field) == getattr(cloud, field)
    assert local.login_failure_window_seconds == cloud.login_failure_window_seconds == 900
