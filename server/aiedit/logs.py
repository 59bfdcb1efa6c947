"""Logging set-up: one JSON object a line (studio and hosted) or plain text (personal).

Every line written while a job runs carries that job's id (`job_context`); other fields come from
`extra=`. Job parameters (prompts) and image data are never logged: the runner adds the
parameters to its "job queued" line only when the debug setting `log_prompts` is on. Unless it
is, a filter keeps user text out of every line, also out of what libraries and exceptions write:
the texts of the job or live frame being run (`private_text`) are blanked wherever they appear,
and the libraries' lines known to quote a prompt (diffusers' "part of your input was truncated")
are replaced by a description without it. diffusers and transformers log through their own
handlers; `adopt_library_loggers` sends their lines through this one, so the filter sees them.
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
_private: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "aiedit_private", default=()
)
REDACTED = "[user text]"
# Libraries whose warnings quote what the user wrote: logger prefix -> words of such a line.
_ECHOING = {"diffusers": ("truncated",), "transformers": ("truncated",)}
_ECHO_REPLACEMENT = ("a prompt was longer than the model's text encoder reads; the rest was "
                     "ignored (the text is not logged)")
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


@contextmanager
def private_text(*texts: str) -> Iterator[None]:
    """Lines logged inside (in this thread or task) have these texts blanked."""
    token = _private.set(tuple(t for t in texts if isinstance(t, str) and len(t.strip()) >= 3))
    try:
        yield
    finally:
        _private.reset(token)


def job_texts(params: dict) -> tuple[str, ...]:
    """The user-written texts of a job's params (prompts, text to write)."""
    return tuple(v for k, v in (params or {}).items() if isinstance(v, str)
                 and ("prompt" in k or k == "text"))


class PrivacyFilter(logging.Filter):
    """Keeps prompts out of log lines (see the module's docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        library = record.name.split(".", 1)[0]
        if library in _ECHOING and any(w in str(record.msg) for w in _ECHOING[library]):
            record.msg, record.args = _ECHO_REPLACEMENT, None
            return True
        texts = _private.get()
        if not texts:
            return True
        record.msg, record.args = _redact(record.getMessage(), texts), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _redact(record.exc_text, texts)
        for key, value in _fields(record).items():
            if isinstance(value, str):
                setattr(record, key, _redact(value, texts))
        return True


def _redact(line: str, texts: tuple[str, ...]) -> str:
    for text in texts:
        if text in line:
            line = line.replace(text, REDACTED)
    return line


def adopt_library_loggers() -> None:
    """diffusers and transformers (once imported) log through the root handler, not their own."""
    for library in ("diffusers", "transformers"):
        module = sys.modules.get(f"{library}.utils.logging")
        if module is not None:
            module.disable_default_handler()
            module.enable_propagation()


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
        if record.exc_text or record.exc_info:
            line["exception"] = record.exc_text or self.formatException(record.exc_info)
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
    if not config.log_prompts:
        handler.addFilter(PrivacyFilter())
    handler.setFormatter(JsonFormatter() if config.logs_as_json else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.log_level.upper())
    logging.captureWarnings(True)  # library warnings become log lines in the same format
    if root.level > logging.DEBUG:
        logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per migration plugin
