"""The caller's data: `GET /v1/account/export`, one zip of everything the server holds about the
calling key's user (see privacy/export.py)."""

from __future__ import annotations

from flask import Response, current_app, g
from flask_smorest import Blueprint

from aiedit.api.errors import ApiError
from aiedit.privacy import UnknownUser
from aiedit.privacy.export import stream_export

blp = Blueprint("privacy", __name__, url_prefix="/v1", description="Your data")


@blp.route("/account/export")
@blp.response(200, content_type="application/zip",
              description="A zip: account.json, jobs.json, ledger.json, images/<job id>/…")
@blp.alt_response(404, description="The key belongs to no user (`no_account`)")
def export():
    """Download everything the server holds about you (one zip)

    `account.json` (you, your keys without their secrets, your credit account, your support
    messages), `jobs.json` (each retained job's parameters, state, times and results),
    `ledger.json` (your credit history), and under `images/<job id>/` the uploads and results
    the server still retains."""
    services = current_app.extensions["aiedit"]
    name = g.principal.user
    if name is None:
        raise ApiError(
            404, "no_account",
            "this key belongs to no user, so there is no account to export: use a key made "
            "for a user (`aiedit keys create --user NAME`); your jobs are at GET /v1/jobs",
        )
    try:
        pieces = stream_export(services, name)
    except UnknownUser:  # erased meanwhile
        raise ApiError(404, "no_account", "this account no longer exists") from None
    stamp = services.runner.now().strftime("%Y%m%d-%H%M%S")
    return Response(pieces, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="aiedit-export-{stamp}.zip"',
        "Cache-Control": "no-store",
    })
