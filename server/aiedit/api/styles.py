"""Style presets a request may name (`"style": "<id>"`)."""

from __future__ import annotations

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields

blp = Blueprint("styles", __name__, url_prefix="/v1", description="Style presets")


class StyleLoraSchema(Schema):
    id = fields.String(required=True)
    weight = fields.Float()


class StyleSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    model = fields.String(allow_none=True, required=True,
                          metadata={"description": "Used when the request names no model"})
    prompt = fields.String(required=True,
                           metadata={"description": "Template; {prompt} is the user's words"})
    negative_prompt = fields.String(required=True)
    loras = fields.List(fields.Nested(StyleLoraSchema), required=True)
    params = fields.Dict(required=True, metadata={"description": "Defaults under the request's"})
    operations = fields.List(fields.String(), required=True)


class StyleListSchema(Schema):
    styles = fields.List(fields.Nested(StyleSchema), required=True)


@blp.route("/styles")
@blp.response(200, StyleListSchema)
def list_styles():
    """Every style preset: built-in ones and the user's styles file"""
    styles = current_app.extensions["aiedit"].styles
    return {"styles": [s.describe() for s in styles or []]}
