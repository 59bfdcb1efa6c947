"""Tiny random diffusers pipelines in a Hugging Face cache, found by hub id with the hub offline.

The cache is built once and kept under ~/.cache/aiedit/tiny-models/<key> (the key changes with
the library versions and the fixture code), so reruns start at once. Jobs go through the real
catalog -> engine -> `from_pretrained` path: a user catalog file lists `tiny/...` repos."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from aiedit.app import create_app, services_of
from aiedit.config import Config
from tests.fixtures.tiny_server import TINY_CATALOG, ensure_tiny_hub

os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for the hub, whatever the caller's shell says


def _use_hub_cache(path: Path) -> str | None:
    previous = os.environ.get("HF_HUB_CACHE")
    os.environ["HF_HUB_CACHE"] = str(path)
    return previous


def _restore_hub_cache(previous: str | None) -> None:
    if previous is None:
        os.environ.pop("HF_HUB_CACHE", None)
    else:
        os.environ["HF_HUB_CACHE"] = previous


@pytest.fixture(scope="session")
def tiny_hub() -> Path:
    """A HF hub cache holding every tiny pipeline as repo `tiny/<name>`; HF_HUB_CACHE points
    at it for the session."""
    hub = ensure_tiny_hub()
    previous = _use_hub_cache(hub)
    yield hub
    _restore_hub_cache(previous)


@pytest.fixture
def scratch_hub(tmp_path, tiny_hub):
    """A private copy of the tiny cache for tests that delete or damage files."""
    hub = tmp_path / "hub"
    # another process may be building a pipeline there (a `.partial` folder): not ours to copy
    shutil.copytree(tiny_hub, hub, symlinks=True, ignore=shutil.ignore_patterns("*.partial"))
    previous = _use_hub_cache(hub)
    yield hub
    _restore_hub_cache(previous)


@pytest.fixture(scope="session")
def diffusion_app(tiny_hub, tmp_path_factory):
    """One server app for the session, so models stay warm between tests as they would."""
    config = Config(
        data_dir=tmp_path_factory.mktemp("diffusion") / "data",
        testing=True,
        catalog_file=str(TINY_CATALOG),
        devices=["cpu"],
    )
    app = create_app(config)
    yield app
    services_of(app).stop()


@pytest.fixture
def dclient(diffusion_app):
    return diffusion_app.test_client()


@pytest.fixture
def dservices(diffusion_app):
    return services_of(diffusion_app)
