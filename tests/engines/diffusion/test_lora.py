"""LoRAs through the HTTP jobs API: a tiny peft LoRA for the tiny SDXL UNet, from the hub cache
(catalog entry) and from the LoRA folder (AIEDIT_LORA_DIR)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from aiedit.app import create_app, services_of
from aiedit.config import Config
from aiedit.engines.catalog import Catalog
from aiedit.engines.lora import base_of
from tests.engines.diffusion.test_jobs_api import fetch, run_job
from tests.fixtures import tiny_diffusion
from tests.fixtures.tiny_server import TINY_CATALOG
from tests.helpers import submit

pytestmark = pytest.mark.ml
REGION = {"x": 0, "y": 0, "width": 32, "height": 32}


def generate(client, loras=None, model="tiny-sdxl"):
    params = {"prompt": "a tree", "seed": 5}
    if loras is not None:
        params["loras"] = loras
    job = run_job(client, "generate", model=model, region=REGION, params=params)
    return fetch(client, job["results"][0])


def lora_file(hub) -> str:
    return str(hub / "models--tiny--lora-sdxl" / "snapshots" / tiny_diffusion.REVISION
               / "pytorch_lora_weights.safetensors")


def test_a_lora_changes_the_output_and_unloading_restores_it(dclient):
    before = generate(dclient)
    with_lora = generate(dclient, [{"id": "tiny-lora-sdxl", "weight": 1.0}])
    assert np.abs(with_lora.astype(int) - before.astype(int)).mean() > 1.0
    half = generate(dclient, [{"id": "tiny-lora-sdxl", "weight": 0.5}])
    assert not np.array_equal(half, with_lora), "the weight scales it"
    assert np.array_equal(generate(dclient, [{"id": "tiny-lora-sdxl", "weight": 0.0}]), before)
    assert np.array_equal(generate(dclient), before), "a job without LoRA after one with it"
    assert np.array_equal(generate(dclient, [{"id": "tiny-lora-sdxl"}]), with_lora), "cached"


def test_models_list_loras_with_their_base(dclient):
    models = {m["id"]: m for m in dclient.get("/v1/models").get_json()["models"]}
    lora = models["tiny-lora-sdxl"]
    assert (lora["engine"], lora["base"], lora["installed"]) == ("lora", "sdxl", True)
    assert models["tiny-sdxl"]["base"] == "sdxl" and models["tiny-flux"]["base"] == "flux"


@pytest.mark.parametrize(
    "model, loras, code",
    [
        ("tiny-flux", [{"id": "tiny-lora-sdxl"}], "lora_does_not_fit"),
        ("tiny-sdxl", [{"id": "no-such-lora"}], "unknown_lora"),
        ("tiny-sdxl", [{"id": "tiny-sdxl"}], "unknown_lora"),
        ("tiny-sdxl", [{"id": "tiny-lora-sdxl"}, {"id": "tiny-lora-sdxl"}], "lora_repeated"),
        ("tiny-sdxl", [{"id": "tiny-lora-sdxl", "weight": 3}], "invalid_params"),
    ],
)
def test_bad_loras_are_refused_before_queueing(dclient, model, loras, code):
    before = len(dclient.get("/v1/jobs?page_size=100").get_json())
    resp = submit(dclient, "generate", model=model, region=REGION,
                  params={"prompt": "x", "loras": loras})
    assert resp.status_code == 422 and resp.get_json()["code"] == code, resp.get_json()
    assert len(dclient.get("/v1/jobs?page_size=100").get_json()) == before


def test_lora_folder_files_are_models_and_run(dclient, tiny_hub, tmp_path):
    folder = tmp_path / "loras"
    folder.mkdir()
    shutil.copy(lora_file(tiny_hub), folder / "my style.safetensors")
    (folder / "old.ckpt").write_bytes(b"pickles are never read")
    (folder / "broken.safetensors").write_bytes(b"\x01")
    catalog = Catalog.load(TINY_CATALOG, lora_dir=folder)
    assert catalog.get("lora:my-style").family == "sdxl"
    assert catalog.get("lora:broken").family is None
    assert catalog.get("lora:old") is None
    assert base_of(folder / "my style.safetensors") == "sdxl"

    app = create_app(Config(data_dir=tmp_path / "data", testing=True, devices=["cpu"],
                            catalog_file=str(TINY_CATALOG), lora_dir=str(folder)))
    try:
        client = app.test_client()
        from_folder = generate(client, [{"id": "lora:my-style"}])
        assert np.array_equal(from_folder, generate(dclient, [{"id": "tiny-lora-sdxl"}]))
        resp = submit(client, "generate", model="tiny-sdxl", region=REGION,
                      params={"prompt": "x", "loras": [{"id": "lora:broken"}]})
        assert resp.status_code == 422 and resp.get_json()["code"] == "lora_does_not_fit"
    finally:
        services_of(app).stop()
