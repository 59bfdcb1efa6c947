"""Health, operations and models: what plugins read to build their UI."""

from aiedit.ops.base import registry


def test_health_answers_without_a_key(client):
    body = client.get("/v1/health").get_json()
    assert body["status"] == "ok"
    assert body["auth_required"] is False


def test_operations_lists_all_eight_with_params_schema(client):
    ops = {op["id"]: op for op in client.get("/v1/operations").get_json()["operations"]}
    assert set(ops) == {
        "generate", "edit", "inpaint", "outpaint", "upscale", "restore", "video", "preprocess"
    }
    kind = ops["preprocess"]["params_schema"]["properties"]["kind"]
    assert set(kind["enum"]) == {"canny", "scribble", "lineart", "depth", "pose"}
    strength = ops["inpaint"]["params_schema"]["properties"]["strength"]
    assert (strength["minimum"], strength["maximum"]) == (0.0, 1.0)
    assert ops["inpaint"]["inputs"] == {
        "image": "required",
        "mask": "optional",  # without one the whole image is refined
        "reference": "optional",
        "control": "optional",  # sent as parts control0 ... control7
    }
    assert ops["generate"]["inputs"]["image"] == "optional"  # with one, generate refines it
    assert ops["upscale"]["inputs"]["control"] == "unused"
    for op_id in ("generate", "inpaint"):
        props = ops[op_id]["params_schema"]["properties"]
        assert props["control"]["type"] == "array" and props["control"]["maxItems"] == 8
        assert props["count"]["maximum"] == 8, op_id
        assert (props["strength"]["minimum"], props["strength"]["maximum"]) == (0.0, 1.0)
    assert ops["upscale"]["region"] == "layer"
    assert ops["inpaint"]["limits"]["max_pixels"] > 0


def test_params_schema_comes_from_the_validating_schema(client):
    ops = {op["id"]: op for op in client.get("/v1/operations").get_json()["operations"]}
    for op_id, op in registry().items():
        published = set(ops[op_id]["params_schema"]["properties"])
        assert published == set(op.params().fields), op_id


def test_classic_models_are_the_defaults_with_nothing_downloaded(client):
    ops = {op["id"]: op for op in client.get("/v1/operations").get_json()["operations"]}
    assert ops["inpaint"]["default_model"] == "classic-telea"
    assert ops["outpaint"]["default_model"] == "classic-telea"
    assert ops["restore"]["default_model"] == "classic-denoise"
    assert ops["generate"]["default_model"] is None
    models = {m["id"]: m for m in client.get("/v1/models").get_json()["models"]}
    for model_id in ("classic-lanczos", "classic-telea", "classic-denoise"):
        assert models[model_id]["installed"] is True
    assert models[ops["upscale"]["default_model"]]["installed"] is True


def test_openapi_and_docs_are_served(client):
    spec = client.get("/openapi.json").get_json()
    assert "/v1/jobs" in spec["paths"]
    assert "multipart/form-data" in spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    parts = spec["components"]["schemas"]["JobSubmission"]["properties"]
    assert {"image", "mask", "reference", "control0", "control7"} <= set(parts)
    docs = client.get("/docs")
    assert docs.status_code == 200 and b"swagger" in docs.data.lower()
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_params_schemas_stand_alone_with_nested_items_inlined(client):
    """A plugin reads only /v1/operations: no `$ref` may point into a document it never gets."""
    import json

    ops = {op["id"]: op for op in client.get("/v1/operations").get_json()["operations"]}
    for op_id, op in ops.items():
        assert "$ref" not in json.dumps(op["params_schema"]), op_id
    control = ops["generate"]["params_schema"]["properties"]["control"]["items"]
    assert "reference" in control["properties"]["kind"]["enum"]
    assert set(control["required"]) == {"kind", "input"}
    lora = ops["inpaint"]["params_schema"]["properties"]["loras"]["items"]
    assert lora["properties"]["weight"]["maximum"] == 2.0
