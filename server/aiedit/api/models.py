"""The model catalog as users see it."""

from __future__ import annotations

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from aiedit.api.errors import ApiError
from aiedit.engines import is_installed, unavailable_reason

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
    installed = fields.Boolean(
        required=True,
        metadata={"description": "Its packages and its complete weights are here: it runs now"},
    )
    available = fields.Boolean(
        required=True,
        metadata={"description": "This installation has the Python packages the model needs"},
    )
    unavailable_reason = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Why not available, naming the extra to install"},
    )
    licence = fields.String(required=True)
    non_commercial = fields.Boolean(required=True)
    licence_notice = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "For non-commercial models: what the licence allows"},
    )
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
    reason = unavailable_reason(entry)
    return {
        "id": entry.id,
        "name": entry.name,
        "description": entry.description,
        "operations": list(entry.operations),
        "engine": entry.engine,
        "installed": reason is None and is_installed(entry),
        "available": reason is None,
        "unavailable_reason": reason,
        "licence": entry.licence,
        "non_commercial": entry.non_commercial,
        "licence_notice": entry.licence_notice,
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


# --- who may make the server download a model ------------------------------------------------


def auto_download_enabled(services) -> bool:
    """The admin opt-in `auto_download`: as configured, or (unset) on only for a server that
    needs no keys (a personal loopback server that never had one: its one user is its admin)."""
    configured = services.config.auto_download
    if configured is not None:
        return bool(configured)
    from aiedit.api.auth import keys_required

    return not keys_required(current_app)


def require_runnable(entry, principal, services) -> None:
    """Refuse a job (409) for a model this server cannot run now: its packages are missing, or
    its weights are not downloaded and the caller may not start a download (only admins may,
    and only with auto_download on: a catalog model can be tens of GB)."""
    reason = unavailable_reason(entry)
    if reason is not None:
        raise ApiError(409, "model_not_available", reason, errors={"model": ["not available"]})
    if is_installed(entry):
        return
    pull = f"aiedit models pull {entry.id}"
    size = f"{entry.download_size / 1e9:.1f} GB" if entry.download_size else "its weights"
    if principal.is_admin and auto_download_enabled(services):
        return
    if principal.is_admin:
        how = (f"run `{pull}` on the server ({size}), or set AIEDIT_AUTO_DOWNLOAD=true to let "
               "admins' jobs download models on first use")
    else:
        how = f"ask the server's admin to run `{pull}` ({size})"
    raise ApiError(
        409,
        "model_not_installed",
        f"model {entry.id} is not downloaded on this server: {how}",
        errors={"model": ["not installed"]},
    )
