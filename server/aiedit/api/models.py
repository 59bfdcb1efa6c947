"""The model catalog as users see it."""

from __future__ import annotations

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from aiedit.engines import is_installed

blp = Blueprint("models", __name__, url_prefix="/v1", description="Models the server knows")


class DownloadSchema(Schema):
    state = fields.String(required=True)
    bytes_done = fields.Integer(required=True)
    bytes_total = fields.Integer(required=True)


class ModelSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    operations = fields.List(fields.String(), required=True)
    engine = fields.String(required=True)
    installed = fields.Boolean(required=True)
    licence = fields.String(required=True)
    non_commercial = fields.Boolean(required=True)
    download_size = fields.Integer(required=True)
    memory = fields.Integer(required=True)
    download = fields.Nested(DownloadSchema, allow_none=True)
    kinds = fields.List(
        fields.String(),
        metadata={"description": "Control maps a detector makes or a ControlNet follows"},
    )
    base = fields.String(
        allow_none=True,
        metadata={"description": "The base weights (sdxl, flux, ...) this model is or fits"},
    )
    default = fields.Boolean(
        metadata={"description": "The operation's default (in /v1/operations)"}
    )


class ModelListSchema(Schema):
    models = fields.List(fields.Nested(ModelSchema), required=True)


def describe(entry, downloads=None) -> dict:
    return {
        "id": entry.id,
        "name": entry.name,
        "description": entry.description,
        "operations": list(entry.operations),
        "engine": entry.engine,
        "installed": is_installed(entry),
        "licence": entry.licence,
        "non_commercial": entry.non_commercial,
        "download_size": entry.download_size,
        "memory": entry.memory,
        "download": (downloads or {}).get(entry.id),
        "kinds": list(entry.kinds),
        "base": entry.family,
    }


@blp.route("/models")
@blp.response(200, ModelListSchema)
def list_models():
    """Every model in the catalog, installed or not"""
    services = current_app.extensions["aiedit"]
    downloads = getattr(services, "downloads", None)
    state = downloads.snapshot() if downloads is not None else {}
    return {"models": [describe(e, state) for e in services.catalog]}
