"""JSON errors `{code, status, message, errors?}` for every failure, with a message a person can act
on and a stable machine-readable `code`."""

from __future__ import annotations

from http import HTTPStatus

from flask import jsonify, request
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

from aiedit.logs import job_texts, private_text

_DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    402: "payment_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
    507: "insufficient_storage",
}


class ErrorSchema(Schema):
    code = fields.String(required=True, metadata={"description": "Stable machine-readable code"})
    status = fields.Integer(required=True, metadata={"description": "HTTP status"})
    message = fields.String(
        required=True, metadata={"description": "What went wrong and what to do"}
    )
    errors = fields.Dict(metadata={"description": "Per-field details"})


class ApiError(HTTPException):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: dict | None = None,
        headers: dict | None = None,
    ):
        super().__init__(description=message)
        self.code = status
        self.error_code = code
        self.message = message
        self.errors = errors
        self.extra_headers = headers or {}


def error_response(exc: HTTPException):
    status = exc.code or 500
    if isinstance(exc, ApiError):
        body = {"code": exc.error_code, "status": status, "message": exc.message}
        if exc.errors:
            body["errors"] = exc.errors
        headers = exc.extra_headers
    else:
        data = getattr(exc, "data", None) or {}
        messages = data.get("messages")
        body = {
            "code": _DEFAULT_CODES.get(status, "error"),
            "status": status,
            "message": _message(status, exc, messages),
        }
        if messages:
            body["errors"] = _flatten_locations(messages)
            if status == 422:
                body["code"] = "invalid_params"
        headers = data.get("headers") or {}
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if status == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _message(status: int, exc: HTTPException, messages) -> str:
    if messages:
        details = "; ".join(_describe(_flatten_locations(messages)))
        return f"invalid request: {details}"
    if status == 413:
        return "the upload is larger than this server accepts (setting max_upload_bytes)"
    if status == 404:
        return "not found"
    if status == 405:
        return "method not allowed for this URL"
    if status >= 500:
        return "the server failed unexpectedly; the error has been logged"
    return exc.description or HTTPStatus(status).phrase


def _flatten_locations(messages: dict) -> dict:
    """webargs nests errors by location (json, query, form, files): merge them."""
    flat: dict = {}
    for location, errors in messages.items():
        if isinstance(errors, dict):
            flat.update(errors)
        else:
            flat[location] = errors
    return flat


def _describe(errors: dict, prefix: str = "") -> list[str]:
    out = []
    for name, value in errors.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            out.extend(_describe(value, path + "."))
        elif isinstance(value, list):
            out.append(f"{path}: {' '.join(str(v) for v in value)}")
        else:
            out.append(f"{path}: {value}")
    return out


def init_app(app) -> None:
    app.register_error_handler(HTTPException, error_response)

    @app.errorhandler(Exception)
    def unexpected(exc):  # noqa: ARG001  (logged by Flask)
        with private_text(*_request_texts()):  # an exception may quote the request's prompt
            app.logger.exception("unhandled error")
        return error_response(
            ApiError(
                500, "internal_error", "the server failed unexpectedly; the error has been logged"
            )
        )


def _request_texts() -> tuple[str, ...]:
    """The prompts of the request being answered (a job's `request` part or `Aiedit-Request`
    header, or a JSON body's `params`), as far as they were already read: no body is parsed
    for this."""
    import json

    texts: list[str] = []
    form = request.__dict__.get("form")  # parsed already (werkzeug caches it there)
    raws = [form.get("request") if form is not None else None,
            request.headers.get("Aiedit-Request")]  # POST /v1/jobs/raw
    bodies = [request.get_json(silent=True)] if request.is_json else []
    for raw in filter(None, raws):
        try:
            bodies.append(json.loads(raw))
        except ValueError:
            texts.append(raw)  # not JSON: blank it whole
    for body in bodies:
        params = body.get("params") if isinstance(body, dict) else None
        if isinstance(params, dict):
            texts.extend(job_texts(params))
    return tuple(texts)

