"""HTTP API: one module per resource. No torch here: operations and engines are described from
their registrations and the catalog."""

from __future__ import annotations

from flask import Blueprint, send_from_directory

from aiedit.api import (
    account,
    auth,
    billing,
    health,
    job_events,
    jobs,
    live,
    metrics,
    models,
    operations,
    privacy,
    security,
    styles,
)
from aiedit.auth.keys import KeyPolicy


def register(api) -> None:
    for module in (health, operations, models, styles, jobs, job_events, live, account,
                   billing, privacy):
        api.register_blueprint(module.blp)
    app = api._app
    app.register_blueprint(metrics.blp)  # Prometheus text, not JSON: kept out of OpenAPI
    services = app.extensions["aiedit"]
    policy = KeyPolicy(services.config, services.db)
    limits = security.RateLimits(services.config, _shared_limiters(app))
    security.init_app(app, policy)  # first: foreign hosts and origins are refused outright
    auth.init_app(app, policy, limits)
    security.init_rate_limits(app, limits)  # per verified owner, so after auth
    _serve_swagger_assets(api)


def _shared_limiters(app):
    """Hosted mode: request and failed-authentication buckets in Redis (several API processes
    must count one account's requests together); other modes count in the process."""
    config = app.extensions["aiedit"].config
    if not config.hosted or not config.broker_url:  # (tests run hosted code on one process)
        return None
    from aiedit.accounts.throttle import RedisRateLimiter, redis_for

    client = redis_for(app)
    return lambda name, per_minute: RedisRateLimiter(client, name, per_minute, 60.0)


def _serve_swagger_assets(api) -> None:
    """Swagger UI's files come from the swagger-ui-bundle package, so /docs works offline."""
    import swagger_ui_bundle

    app = api._app
    assets = Blueprint("docs_assets", __name__)

    @assets.get("/docs/assets/<path:filename>")
    def docs_asset(filename: str):
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)

    app.register_blueprint(assets)
