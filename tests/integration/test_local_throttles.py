"""`python -m local.throttles clear` lifts a login lockout of the local stack."""

from __future__ import annotations

import dataclasses
import json

import pytest

from aurora import throttling
from aurora.errors import RateLimitedError
from local import throttles
from tests.conftest import on_single_and_cluster


@on_single_and_cluster
def test_clearing_lifts_a_login_lockout_and_a_registration_limit_and_nothing_else(
    r, settings, tmp_path, capsys
):
    strict = dataclasses.replace(settings, login_failures_per_user_ip=2, registrations_per_ip=1)
    for _ in range(2):
        throttling.record_login_failure(r, strict, "alice", "127.0.0.1")
    throttling.take_registration(r, strict, "127.0.0.1")
    with pytest.raises(RateLimitedError):
        throttling.check_login(r, strict, "alice", "127.0.0.1")
    with pytest.raises(RateLimitedError):
        throttling.take_registration(r, strict, "127.0.0.1")
    r.set("aurora:unrelated", "kept")
    (tmp_path / "local.json").write_text(json.dumps({"redis_url": settings.redis_url}))

    throttles.main(["clear", "--data-dir", str(tmp_path)])

    assert "cleared 3 throttle counter(s)" in capsys.readouterr().out
    throttling.check_login(r, strict, "alice", "127.0.0.1")  # no longer locked
    throttling.take_registration(r, strict, "127.0.0.1")
    assert r.get("aurora:unrelated") == "kept"


def test_clearing_without_a_running_stack_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(SystemExit, match="no running local stack"):
        throttles.main(["clear", "--data-dir", str(tmp_path)])
