"""The local stack's console: one readable line per event, whoever logs it
(the stack itself, or a function's Powertools logger, which writes JSON for
CloudWatch in the cloud)."""

from __future__ import annotations

import logging
import sys

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"
# Attributes every LogRecord has; anything else on a record came as `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _with_extras(record: logging.LogRecord, line: str) -> str:
    extras = [f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD]
    return f"{line} {' '.join(extras)}" if extras else line


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(FORMAT, DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return _with_extras(record, super().format(record))


class ReadablePowertoolsFormatter(LambdaPowertoolsFormatter):
    """Powertools' formatter (so the Logger can still append and clear its
    keys) printing the console's format instead of JSON."""

    def __init__(self) -> None:
        super().__init__()
        self._console = ConsoleFormatter()

    def format(self, record: logging.LogRecord) -> str:
        return self._console.format(record)


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # Mangum logs every request at INFO; the gateway logs them instead, with
    # health checks at DEBUG.
    logging.getLogger("mangum").setLevel(logging.WARNING)


def readable_function_logs() -> None:
    """Turn the JSON lines of every Powertools logger configured so far into
    console lines (called after each function's handler is loaded)."""
    for logger in list(logging.root.manager.loggerDict.values()):
        for handler in getattr(logger, "handlers", ()):
            formatter = handler.formatter
            if isinstance(formatter, LambdaPowertoolsFormatter) and not isinstance(
                formatter, ReadablePowertoolsFormatter
            ):
                handler.setFormatter(ReadablePowertoolsFormatter())
