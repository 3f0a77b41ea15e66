"""docs/limits.md says what the settings and the enforcing modules declare."""

from scripts import limits_table


def test_the_limits_table_matches_the_declarations():
    written = limits_table.DOC.read_text(encoding="utf-8")
    assert written == limits_table.render(), "run: python scripts/limits_table.py --write"


def test_every_limit_setting_names_its_variable_and_default():
    table = limits_table.render()
    for name in ("MAX_FRAME_BYTES", "AUTH_TIMEOUT_SECONDS", "LOGIN_FAILURES_PER_USER_IP",
                 "REGISTRATIONS_PER_IP", "ATTACHMENT_MAX_BYTES", "HISTORY_PAGE_MAX"):  # fmt: skip
        assert f"`{name}`" in table
