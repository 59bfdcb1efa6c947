"""The privacy page at /privacy, written from the server's real settings (retention period,
mode, log setting, contact address), so what it promises is what the server does."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from aiedit import __version__

blp = Blueprint("privacy_page", __name__, template_folder="templates")


@blp.get("/privacy")
def privacy():
    config = current_app.extensions["aiedit"].config
    hours = config.retention_hours
    return render_template(
        "privacy.html",
        version=__version__,
        mode=config.mode,
        hosted=config.hosted,
        users=config.studio,
        retention=_period(hours),
        log_prompts=config.log_prompts,
        contact=config.privacy_contact.strip(),
        min_age=config.min_age,
    )


def _period(hours: float) -> str:
    if hours >= 48 and hours % 24 == 0:
        return f"{hours / 24:g} days"
    if hours >= 1:
        return f"{hours:g} hour{'' if hours == 1 else 's'}"
    return f"{hours * 60:g} minutes"
