"""Who is asking: a Bearer key when keys exist, the local owner on a key-less loopback server."""

from __future__ import annotations

from flask import g, request

from aiedit.api.errors import ApiError
from aiedit.auth.keys import LOCAL_OWNER, Principal, authenticate, keys_exist

OPEN_PATHS = ("/v1/health",)


def init_app(app) -> None:
    @app.before_request
    def identify():
        if not request.path.startswith("/v1/") or request.path in OPEN_PATHS:
            return
        g.principal = current_principal(app)


def current_principal(app) -> Principal:
    services = app.extensions["aiedit"]
    header = request.headers.get("Authorization", "")
    if not keys_exist(services.db):
        return Principal(owner=LOCAL_OWNER, role="admin")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "this server needs an API key: send `Authorization: Bearer <key>` "
            "(create one with `aiedit keys create --name NAME`)",
            headers={"WWW-Authenticate": 'Bearer realm="aiedit"'},
        )
    principal = authenticate(services.db, token.strip())
    if principal is None:
        raise ApiError(
            401,
            "unauthorized",
            "API key rejected: it is unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer realm="aiedit", error="invalid_token"'},
        )
    return principal
