"""Health."""

from __future__ import annotations

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from aiedit import __version__
from aiedit.api.auth import keys_required

blp = Blueprint("health", __name__, url_prefix="/v1", description="Is the server up?")


class HealthSchema(Schema):
    status = fields.String(required=True)
    version = fields.String(required=True)
    mode = fields.String(required=True)
    auth_required = fields.Boolean(required=True)
    devices = fields.List(fields.String(), required=True)


@blp.route("/health")
@blp.response(200, HealthSchema)
def health():
    """Server status (needs no key)"""
    services = current_app.extensions["aiedit"]
    return {
        "status": "ok",
        "version": __version__,
        "mode": services.config.mode,
        "auth_required": keys_required(current_app),
        "devices": services.config.devices or ["auto"],
    }
