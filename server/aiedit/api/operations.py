"""Operations, with the JSON Schema of their parameters, so plugins build their UI from the
server."""

from __future__ import annotations

from functools import cache

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from aiedit.api.models import ModelSchema, describe
from aiedit.billing import pricing
from aiedit.billing.settings import Rates
from aiedit.engines import installed_for
from aiedit.ops.base import INPUT_NAMES, registry

blp = Blueprint(
    "operations", __name__, url_prefix="/v1", description="What the server can do, and how to ask"
)


class LimitsSchema(Schema):
    max_pixels = fields.Integer(required=True)
    max_side = fields.Integer(required=True)
    max_output_pixels = fields.Integer(required=True)
    max_upload_bytes = fields.Integer(required=True)


class OperationSchema(Schema):
    id = fields.String(required=True)
    version = fields.Integer(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    region = fields.String(required=True, metadata={"description": "selection or layer"})
    inputs = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    input_formats = fields.List(
        fields.String(validate=validate.OneOf(["rgba8", "rgba16"])),
        required=True,
        metadata={
            "description": "Pixel formats the `image` part may come in: rgba8 always; rgba16 "
            "(16-bit sRGB RGBA, as raw little-endian uint16 or a 16-bit PNG) where the "
            "operation keeps 16 bits, and then its results are 16-bit too"
        },
    )
    params_schema = fields.Dict(required=True, metadata={"description": "JSON Schema"})
    models = fields.List(fields.Nested(ModelSchema), required=True)
    default_model = fields.String(required=True, allow_none=True)
    limits = fields.Nested(LimitsSchema, required=True)
    pricing = fields.Dict(
        required=True,
        metadata={"description": "How a job's price in credits is computed (hosted mode "
                  "charges it; POST /v1/quotes prices a job): rule, units, minimum, "
                  "reference_steps, rates (credits per unit, per model)"},
    )


class OperationListSchema(Schema):
    operations = fields.List(fields.Nested(OperationSchema), required=True)


@cache
def params_json_schema(op_id: str) -> dict:
    """The JSON Schema of an operation's params, generated from the schema that validates them."""
    plugin = MarshmallowPlugin()
    spec = APISpec("params", "1", "3.0.3", plugins=[plugin])
    schema = plugin.converter.schema2jsonschema(registry()[op_id].params)
    schema["additionalProperties"] = False
    components = spec.to_dict().get("components", {}).get("schemas", {})
    return _inline(schema, components)


def _inline(node, components: dict, seen: tuple = ()):
    """The schema with every `$ref` to a nested schema (control items, LoRA items) replaced by
    that schema, so each operation's JSON Schema stands alone."""
    if isinstance(node, list):
        return [_inline(item, components, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        if name in seen or name not in components:
            raise ValueError(f"params schema: cannot inline {ref}")
        return _inline(dict(components[name]), components, (*seen, name))
    return {key: _inline(value, components, seen) for key, value in node.items()}


def describe_operation(op, catalog, config, rates=None) -> dict:
    installed = installed_for(catalog, op.id)
    default = installed[0].id if installed else None
    models = []
    for entry in catalog.for_operation(op.id):
        info = describe(entry)
        info["default"] = entry.id == default
        models.append(info)
    return {
        "id": op.id,
        "version": op.version,
        "title": op.title,
        "description": op.description,
        "region": op.region,
        "inputs": {name: op.input_mode(name) for name in INPUT_NAMES},
        "input_formats": list(op.input_formats),
        "params_schema": params_json_schema(op.id),
        "models": models,
        "default_model": default,
        "limits": {
            "max_pixels": config.max_pixels,
            "max_side": config.max_side,
            "max_output_pixels": config.max_output_pixels,
            "max_upload_bytes": config.max_upload_bytes,
        },
        "pricing": pricing.describe(op, catalog, rates or Rates()),
    }


@blp.route("/operations")
@blp.response(200, OperationListSchema)
def list_operations():
    """Every operation, its parameters (JSON Schema), models and limits"""
    services = current_app.extensions["aiedit"]
    return {
        "operations": [
            describe_operation(op, services.catalog, services.config, services.billing.rates)
            for op in registry().values()
        ]
    }
