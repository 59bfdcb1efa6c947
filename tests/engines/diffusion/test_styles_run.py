"""A style is its expansion: the same job written out by hand gives the same pixels."""

from __future__ import annotations

import numpy as np
import pytest

from aiedit.app import create_app, services_of
from aiedit.config import Config
from tests.engines.diffusion.test_jobs_api import fetch, run_job
from tests.fixtures.tiny_server import TINY_CATALOG

pytestmark = pytest.mark.ml
REGION = {"x": 0, "y": 0, "width": 32, "height": 32}


def pixels(client, **request):
    job = run_job(client, "generate", region=REGION, **request)
    return job, fetch(client, job["results"][0])


def test_a_built_in_style_equals_its_expansion(dclient):
    _, styled = pixels(dclient, model="tiny-sdxl", style="cinematic",
                       params={"prompt": "a tree", "seed": 4})
    _, by_hand = pixels(dclient, model="tiny-sdxl", params={
        "prompt": "cinematic film still of a tree, shallow depth of field, film grain, "
                  "moody lighting",
        "negative_prompt": "cartoon, illustration, flat lighting, oversaturated",
        "seed": 4})
    assert np.array_equal(styled, by_hand)
    _, plain = pixels(dclient, model="tiny-sdxl", params={"prompt": "a tree", "seed": 4})
    assert not np.array_equal(styled, plain)


def test_a_user_style_brings_its_model_loras_and_params(tmp_path):
    styles = tmp_path / "styles.toml"
    styles.write_text('''
[[style]]
id = "tiny-look"
model = "tiny-sdxl"
prompt = "{prompt}, tiny look"
loras = [{ id = "tiny-lora-sdxl", weight = 0.7 }]
params = { steps = 3 }
''')
    app = create_app(Config(data_dir=tmp_path / "data", testing=True, devices=["cpu"],
                            catalog_file=str(TINY_CATALOG), styles_file=str(styles)))
    try:
        client = app.test_client()
        job, styled = pixels(client, style="tiny-look", params={"prompt": "a hut", "seed": 9})
        assert job["model"] == "tiny-sdxl"
        _, by_hand = pixels(client, model="tiny-sdxl", params={
            "prompt": "a hut, tiny look", "seed": 9, "steps": 3,
            "loras": [{"id": "tiny-lora-sdxl", "weight": 0.7}]})
        assert np.array_equal(styled, by_hand)
    finally:
        services_of(app).stop()
