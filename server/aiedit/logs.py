"""Logging set-up: one JSON object a line (studio and hosted) or plain text (personal).

Every line written while a job runs carries that job's id (`job_context`); other fields come from
`extra=`. Job parameters (prompts) and image data are never logged: the runner adds the
parameters to its "job queued" line only when the debug setting `log_prompts` is on.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("aiedit_job", default=None)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "job_id"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Lines logged inside carry `job_id` (in this thread or task)."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


class JobIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "job_id", None):
            record.job_id = _job_id.get()
        return True


def _fields(record: logging.LogRecord) -> dict:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "job_id", None):
            line["job_id"] = record.job_id
        line.update(_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = {"job": getattr(record, "job_id", None), **_fields(record)}
        tail = " ".join(f"{k}={v}" for k, v in extras.items() if v is not None and v != "")
        if not tail:
            return text
        head, sep, rest = text.partition("\n")  # keep a traceback below the fields
        return f"{head} [{tail}]{sep}{rest}"


def configure(config, stream=None) -> None:
    """Send every logger's lines to stderr in the configured format (replaces earlier set-up)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(JobIdFilter())
    handler.setFormatter(JsonFormatter() if config.logs_as_json else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.log_level.upper())
    logging.captureWarnings(True)  # library warnings become log lines in the same format
    if root.level > logging.DEBUG:
        logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per migration plugin
