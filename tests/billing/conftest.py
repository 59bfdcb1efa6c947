"""Hosted-mode apps in this process: the hosted API and billing code over the embedded queue
(modes differ only in transport), on SQLite, or PostgreSQL with `--db postgresql`. The studio
suite runs the same code in real gunicorn and worker processes."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest

from aiedit.app import create_app
from aiedit.auth.keys import create_key
from aiedit.auth.users import create_user
from aiedit.billing import ledger
from aiedit.config import Config
from aiedit.services import Services
from tests.helpers import noise_image, png_bytes


class Hosted:
    def __init__(self, app):
        self.app = app
        self.services = app.extensions["aiedit"]
        self.db = self.services.db
        self.client = app.test_client()

    def user(self, name: str, credits: int = 0, role: str = "member") -> dict:
        """A user with one key and `credits` granted; returns its Authorization header."""
        create_user(self.db, name, role)
        _, key = create_key(self.db, f"{name}-key", user=name)
        if credits:
            ledger.grant(self.db, self.account_id(name), credits, "test credits")
        return {"Authorization": f"Bearer {key}"}

    def account_id(self, name: str) -> str:
        return ledger.ensure_account(self.db, name).id

    def balance(self, name: str) -> int:
        with self.db.session() as s:
            return ledger.balance(s, self.account_id(name))

    def rows(self, name: str) -> list:
        with self.db.session() as s:
            return ledger.entries(s, self.account_id(name))

    def submit(self, headers, operation="upscale", model="classic-lanczos", size=32, client=None,
               **params):
        request = {"operation": operation, "model": model, "params": params}
        data = {
            "request": json.dumps(request),
            "image": (io.BytesIO(png_bytes(noise_image(size, size))), "image.png"),
        }
        return (client or self.client).post(
            "/v1/jobs", data=data, headers=headers, content_type="multipart/form-data"
        )


@pytest.fixture
def hosted_factory(tmp_path, models_dir, database_for):
    apps = []

    def make(start: bool = True, **settings) -> Hosted:
        data_dir = tmp_path / f"hosted{len(apps)}"
        config = Config(data_dir=data_dir, testing=True, models_dir=str(models_dir),
                        database_url=database_for(data_dir) or "", rate_limit_per_minute=0,
                        **settings)
        services = Services.build(config)
        if start:
            services.start()
        services.config = dataclasses.replace(config, mode="hosted", **settings)
        app = create_app(services.config, services, start=False)
        apps.append(services)
        return Hosted(app)

    yield make
    for services in apps:
        services.stop()


@pytest.fixture
def hosted(hosted_factory) -> Hosted:
    return hosted_factory()
