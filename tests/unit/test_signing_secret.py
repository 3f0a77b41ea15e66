"""The compose stack's signing secret: random, strong, private, made once."""

from __future__ import annotations

import stat

from aurora.secrets import LOCAL_DEV_SECRET, MIN_SECRET_BYTES
from local.signing_secret import ensure_secret, main


def test_a_new_secret_is_random_strong_and_readable_by_its_owner_only(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert ensure_secret(first) and ensure_secret(second)
    secret = first.read_text().strip()
    assert len(secret.encode()) >= MIN_SECRET_BYTES and secret != LOCAL_DEV_SECRET
    assert secret != second.read_text().strip()
    assert stat.S_IMODE(first.stat().st_mode) == 0o400
    assert {p.name for p in tmp_path.iterdir()} == {"a", "b"}  # nothing half-written left


def test_an_existing_secret_is_kept_and_an_empty_file_is_replaced(tmp_path, capsys):
    path = tmp_path / "jwt-secret"
    main([str(path)])
    kept = path.read_text()
    main([str(path)])
    assert path.read_text() == kept
    assert capsys.readouterr().out.splitlines()[-1].startswith("kept the signing secret")
    path.chmod(0o600)
    path.write_text("\n")
    assert ensure_secret(path)
    assert path.read_text().strip()
