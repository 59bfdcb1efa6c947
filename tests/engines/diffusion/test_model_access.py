"""Who may make the server download a model, what counts as installed, and what /v1/models tells
about licences: jobs for a model that is not downloaded are refused (409, with the pull command)
unless an admin submits them with auto-download on; a half-downloaded pipeline is not installed."""

from __future__ import annotations

import json
import shutil

import pytest

from aiedit.app import create_app, services_of
from aiedit.auth.keys import create_key
from aiedit.config import Config
from aiedit.engines import diffusion, downloads, is_installed
from aiedit.engines.catalog import Catalog, CatalogError
from tests.engines.diffusion.conftest import TINY_CATALOG
from tests.helpers import submit

pytestmark = pytest.mark.ml
GENERATE = {"params": {"prompt": "a red square", "width": 64, "height": 64}}


def entry(model_id: str):
    return Catalog.load(TINY_CATALOG).get(model_id)


@pytest.fixture
def make_app(tmp_path, tiny_hub):
    apps = []

    def make(**settings):
        config = Config(data_dir=tmp_path / f"data{len(apps)}", testing=True,
                        catalog_file=str(TINY_CATALOG), devices=["cpu"], **settings)
        app = create_app(config)
        apps.append(app)
        return app

    yield make
    for app in apps:
        services_of(app).stop()


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def keys(app) -> tuple[dict, dict]:
    db = services_of(app).db
    return bearer(create_key(db, "user", "user")[1]), bearer(create_key(db, "admin", "admin")[1])


def test_a_user_cannot_start_a_download_and_is_told_the_pull_command(make_app):
    app = make_app()
    user, admin = keys(app)
    client = app.test_client()
    resp = submit(client, "generate", model="tiny-not-downloaded", headers=user, **GENERATE)
    assert resp.status_code == 409, resp.get_json()
    body = resp.get_json()
    assert body["code"] == "model_not_installed"
    assert "aiedit models pull tiny-not-downloaded" in body["message"]
    # a server with keys does not download on first use unless configured to, even for admins
    resp = submit(client, "generate", model="tiny-not-downloaded", headers=admin, **GENERATE)
    assert resp.status_code == 409 and "AIEDIT_AUTO_DOWNLOAD" in resp.get_json()["message"]
    assert client.get("/v1/jobs", headers=admin).get_json() == []  # nothing was queued
    installed = submit(client, "generate", model="tiny-sdxl", headers=user, **GENERATE)
    assert installed.status_code == 202, installed.get_json()


def test_auto_download_lets_only_admins_trigger_a_download(make_app):
    app = make_app(auto_download=True)
    user, admin = keys(app)
    client = app.test_client()
    resp = submit(client, "generate", model="tiny-not-downloaded", headers=user, **GENERATE)
    assert resp.status_code == 409 and resp.get_json()["code"] == "model_not_installed"
    resp = submit(client, "generate", model="tiny-not-downloaded", headers=admin, **GENERATE)
    assert resp.status_code == 202, resp.get_json()


def test_a_keyless_personal_server_downloads_on_first_use_unless_told_not_to(make_app):
    client = make_app().test_client()
    resp = submit(client, "generate", model="tiny-not-downloaded", **GENERATE)
    assert resp.status_code == 202, resp.get_json()
    client = make_app(auto_download=False).test_client()
    resp = submit(client, "generate", model="tiny-not-downloaded", **GENERATE)
    assert resp.status_code == 409 and resp.get_json()["code"] == "model_not_installed"


def test_auto_download_setting_is_read_from_the_environment():
    assert Config.load(environ={"AIEDIT_AUTO_DOWNLOAD": "false"}).auto_download is False
    assert Config.load(environ={"AIEDIT_AUTO_DOWNLOAD": "on"}).auto_download is True
    assert Config.load(environ={}).auto_download is None
    with pytest.raises(ValueError, match="auto_download"):
        Config.load(environ={"AIEDIT_AUTO_DOWNLOAD": "maybe"})


def test_models_show_the_licence_notice_of_non_commercial_models(make_app):
    models = {m["id"]: m for m in make_app().test_client().get("/v1/models").get_json()["models"]}
    notice = models["tiny-flux-kontext"]["licence_notice"]
    assert "non-commercial use only" in notice
    assert models["tiny-sdxl"]["licence_notice"] is None
    assert models["tiny-sdxl"]["available"] and models["tiny-sdxl"]["unavailable_reason"] is None
    builtin = Catalog.load()
    for model_id in ("codeformer", "flux1-fill-dev", "sdxl-turbo"):
        assert "non-commercial" in builtin.get(model_id).licence_notice
    assert builtin.get("sdxl-base").licence_notice is None


# --- what counts as installed ------------------------------------------------------------------


def snapshot(model_id: str):
    return diffusion.local_folder(entry(model_id))


def test_a_pipeline_whose_weights_are_missing_is_not_installed(scratch_hub, make_app):
    folder = snapshot("tiny-sdxl")
    assert is_installed(entry("tiny-sdxl"))
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.unlink()  # cut off after the configs, before the unet's weights
    assert not is_installed(entry("tiny-sdxl"))
    models = {m["id"]: m for m in make_app().test_client().get("/v1/models").get_json()["models"]}
    assert models["tiny-sdxl"]["installed"] is False
    assert "incomplete" in diffusion.verify(entry("tiny-sdxl"))[0]


def test_a_truncated_weights_file_is_not_installed(scratch_hub):
    weights = snapshot("tiny-flux") / "vae" / "diffusion_pytorch_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert not is_installed(entry("tiny-flux"))


def test_pickled_weights_alone_do_not_count_only_safetensors_load(scratch_hub):
    component = snapshot("tiny-sdxl") / "vae"
    (component / "diffusion_pytorch_model.safetensors").rename(
        component / "diffusion_pytorch_model.bin"
    )
    assert not is_installed(entry("tiny-sdxl"))


def test_sharded_weights_count_only_with_every_shard(scratch_hub):
    component = snapshot("tiny-sdxl") / "unet"
    whole = component / "diffusion_pytorch_model.safetensors"
    shard = component / "diffusion_pytorch_model-00001-of-00002.safetensors"
    shutil.copyfile(whole, shard)
    whole.unlink()
    index = {"weight_map": {"a": shard.name, "b": "diffusion_pytorch_model-00002-of-00002"
                                                 ".safetensors"}}
    (component / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    assert not downloads.weights_complete(component)
    shutil.copyfile(shard, component / index["weight_map"]["b"])
    assert downloads.weights_complete(component)


def test_hub_entries_must_pin_a_revision(tmp_path):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text('[[model]]\nid = "x"\noperations = ["generate"]\nengine = "diffusion"\n'
                       'source = { repo = "someone/x", pipeline = "FluxPipeline" }\n')
    with pytest.raises(CatalogError, match="pins no revision"):
        Catalog.load(catalog)
    assert entry("tiny-sdxl").revision == "0" * 39 + "1"
    for model in Catalog.load():
        if "repo" in model.source:
            assert model.revision, model.id
