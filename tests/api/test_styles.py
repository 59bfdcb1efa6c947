"""Style presets: listed, extended by a user file, refused when unknown or misapplied."""

from __future__ import annotations

import dataclasses

import pytest

from aiedit.app import create_app, services_of
from aiedit.styles import StyleBook, StyleError
from tests.helpers import noise_image, png_bytes, submit

USER_STYLES = '''
[[style]]
id = "mine"
name = "Mine"
model = "classic-telea"
prompt = "{prompt}, in my style"
params = { feather = 2 }
operations = ["inpaint"]

[[style]]
id = "photo"
name = "My photo"
prompt = "my photo of {prompt}"
'''


def test_styles_are_listed_with_their_templates(client):
    styles = {s["id"]: s for s in client.get("/v1/styles").get_json()["styles"]}
    assert {"photo", "cinematic", "illustration", "pixel-art", "fast-sdxl"} <= set(styles)
    pixel = styles["pixel-art"]
    assert "{prompt}" in pixel["prompt"] and pixel["model"] == "sdxl-base"
    assert pixel["loras"] == [{"id": "lora-pixel-art-xl", "weight": 1.0}]
    assert pixel["operations"] == ["generate", "inpaint"]
    assert "/v1/styles" in client.get("/openapi.json").get_json()["paths"]


def test_a_user_file_adds_and_replaces_styles(config, tmp_path):
    path = tmp_path / "styles.toml"
    path.write_text(USER_STYLES)
    app = create_app(dataclasses.replace(config, styles_file=str(path)))
    try:
        styles = {s["id"]: s for s in app.test_client().get("/v1/styles").get_json()["styles"]}
    finally:
        services_of(app).stop()
    assert styles["mine"]["params"] == {"feather": 2}
    assert styles["photo"]["prompt"] == "my photo of {prompt}"
    assert "cinematic" in styles


def test_style_expands_into_the_params():
    book = StyleBook.load()
    params = book.get("pixel-art").apply(
        {"prompt": "a knight", "negative_prompt": "text", "guidance": 3.0,
         "loras": [{"id": "other", "weight": 0.5}]}
    )
    assert params["prompt"] == "pixel art, a knight, 16-bit game sprite, limited palette"
    assert params["negative_prompt"] == "blurry, photo, smooth gradients, text"
    assert params["guidance"] == 3.0, "the request's own params win"
    assert params["loras"] == [{"id": "lora-pixel-art-xl", "weight": 1.0},
                               {"id": "other", "weight": 0.5}]


@pytest.mark.parametrize(
    "text, problem",
    [
        ('[[style]]\nid = "x"\nprompt = "no placeholder"\n', "{prompt}"),
        ('[[style]]\nid = "x"\ncolour = "red"\n', "unknown key"),
        ('[[style]]\nid = "x"\nloras = ["a"]\n', "loras"),
        ("[[style]\n", "styles file"),
    ],
)
def test_a_bad_styles_file_says_what_is_wrong(tmp_path, text, problem):
    path = tmp_path / "styles.toml"
    path.write_text(text)
    with pytest.raises(StyleError, match=problem.replace("{", r"\{").replace("}", r"\}")):
        StyleBook.load(path)


@pytest.mark.parametrize(
    "operation, style, code",
    [
        ("inpaint", "no-such-style", "unknown_style"),
        ("upscale", "photo", "style_wrong_operation"),
    ],
)
def test_bad_style_requests_are_refused(client, operation, style, code):
    resp = submit(client, operation, {"image": png_bytes(noise_image(32, 32))}, style=style)
    assert resp.status_code == 422 and resp.get_json()["code"] == code, resp.get_json()
