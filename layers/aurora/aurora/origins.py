"""Which browser origins may call the API and open WebSockets."""

from __future__ import annotations

import re

from aurora.settings import Settings

# Local mode: any port on localhost, 127.0.0.1 or [::1], over http or https.
LOCAL_ORIGIN = re.compile(r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$")


def is_allowed_origin(origin: str | None, settings: Settings) -> bool:
    """Requests without an Origin (non-browser clients) are allowed everywhere;
    browsers only from the configured origins, or from localhost in local mode."""
    if not origin:
        return True
    if "*" in settings.allowed_origins or origin in settings.allowed_origins:
        return True
    return settings.is_local and LOCAL_ORIGIN.match(origin) is not None
