"""Operators: the users named in `AURORA_OPERATORS` (user ids), who moderate
every public room (`membership.may_moderate`) and read the audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aurora.tokens import Claims


def is_operator(claims_or_user_id: Claims | str) -> bool:
    """Whether the user is one of the configured operators."""
    from aurora.settings import get_settings

    user_id = getattr(claims_or_user_id, "user_id", claims_or_user_id)
    return user_id in get_settings().operators
