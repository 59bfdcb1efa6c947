"""HTTP API: one module per resource. No torch here: operations and engines are described from
their registrations and the catalog."""

from __future__ import annotations

from flask import Blueprint, send_from_directory

from aiedit.api import auth, health, jobs, metrics, models, operations, security


def register(api) -> None:
    for module in (health, operations, models, jobs):
        api.register_blueprint(module.blp)
    api._app.register_blueprint(metrics.blp)  # Prometheus text, not JSON: kept out of OpenAPI
    security.init_app(api._app)  # first: limits apply before a key is checked
    auth.init_app(api._app)
    _serve_swagger_assets(api)


def _serve_swagger_assets(api) -> None:
    """Swagger UI's files come from the swagger-ui-bundle package, so /docs works offline."""
    import swagger_ui_bundle

    app = api._app
    assets = Blueprint("docs_assets", __name__)

    @assets.get("/docs/assets/<path:filename>")
    def docs_asset(filename: str):
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)

    app.register_blueprint(assets)
