"""The Flask application factory."""

from __future__ import annotations

import io

from flask import Flask, Request
from flask_smorest import Api

from aiedit import __version__
from aiedit.api.errors import ErrorSchema
from aiedit.config import Config
from aiedit.services import Services

SWAGGER_UI_URL = "/docs/assets/"  # served from the swagger-ui-bundle package (api/__init__.py)


class AieditApi(Api):
    ERROR_SCHEMA = ErrorSchema


class UploadSpool(io.RawIOBase):
    """An uploaded file held in memory. `take()` hands its bytes over without a copy (a
    BytesIO would copy them, or refuse to close while a view of them exists)."""

    def __init__(self):
        super().__init__()
        self._data = bytearray()
        self._pos = 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self._pos != len(self._data):
            raise io.UnsupportedOperation("an upload spool only appends")
        self._data += data
        self._pos = len(self._data)
        return len(data)

    def readinto(self, buffer) -> int:
        view = memoryview(self._data)[self._pos : self._pos + len(buffer)]
        size = len(view)
        buffer[:size] = view
        view.release()
        self._pos += size
        return size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._data)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytearray:
        """The file's bytes; the spool is empty afterwards."""
        data, self._data, self._pos = self._data, bytearray(), 0
        return data


class AieditRequest(Request):
    """Uploaded files stay in memory (the body size is already capped by max_upload_bytes), so
    a large image is not copied through a temporary file before it is decoded."""

    def _get_file_stream(
        self, total_content_length, content_type, filename=None, content_length=None
    ):
        return UploadSpool()


def create_app(
    config: Config | None = None, services: Services | None = None, start: bool = True
) -> Flask:
    """Build the app. `start=False` leaves the workers stopped (for tools and tests)."""
    config = config or Config.load()
    app = Flask("aiedit")
    app.request_class = AieditRequest
    if config.proxy_hops > 0:  # the client's address as the trusted proxies saw it
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.proxy_hops,
                                x_proto=config.proxy_hops)
    app.config.update(
        API_TITLE="aiedit",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=SWAGGER_UI_URL,
        MAX_CONTENT_LENGTH=config.max_upload_bytes,
        MAX_FORM_MEMORY_SIZE=config.max_upload_bytes,
        TESTING=config.testing,
        API_SPEC_OPTIONS={
            "info": {
                "description": "AI image operations for GIMP, Krita and "
                "Photoshop. See docs/http-api.md."
            }
        },
    )
    services = services or Services.build(config)
    app.extensions["aiedit"] = services

    api = AieditApi(app)
    from aiedit.api import errors, register

    register(api)
    errors.init_app(app)
    from aiedit.web import admin, privacy

    app.register_blueprint(admin.blp)  # HTML pages: not in the OpenAPI document
    app.register_blueprint(privacy.blp)  # /privacy, from the real settings
    if config.hosted:
        from aiedit.web import account

        account.init_app(app)  # people's account pages at /account
    if start:
        services.start()
    return app


def services_of(app: Flask) -> Services:
    return app.extensions["aiedit"]
