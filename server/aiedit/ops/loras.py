"""LoRAs, shared by the operations that draw (generate, inpaint): `params.loras` lists LoRA
models (catalog entries or files of the LoRA folder) with a weight each."""

from __future__ import annotations

import re
from contextlib import contextmanager

from marshmallow import Schema, fields, validate

from aiedit.ops.base import Float, OpContext, OperationError

MAX_LORAS = 4


class LoraItem(Schema):
    id = fields.String(
        required=True,
        validate=validate.Length(1, 200),
        metadata={"description": "A LoRA id from /v1/models (engine `lora`)"},
    )
    weight = Float(
        load_default=1.0,
        validate=validate.Range(-2.0, 2.0),
        metadata={"description": "How strongly it applies; 0 = not at all (it is skipped)"},
    )


def loras_field() -> fields.List:
    return fields.List(
        fields.Nested(LoraItem),
        load_default=list,
        validate=validate.Length(max=MAX_LORAS),
        metadata={"description": "LoRAs to apply, each fitting the model's base"},
    )


def check(params: dict, entry, catalog) -> None:
    """Every LoRA is known and fits the model's base weights; none twice."""
    ids = [item["id"] for item in params.get("loras") or []]
    if len(set(ids)) != len(ids):
        raise OperationError("lora_repeated", "loras: each LoRA may appear once")
    for item in params.get("loras") or []:
        lora_entry(item["id"], entry, catalog)


def lora_entry(lora_id: str, entry, catalog):
    lora = catalog.get(lora_id)
    if lora is None or lora.engine != "lora":
        raise OperationError(
            "unknown_lora", f"loras: no LoRA {lora_id!r}; GET /v1/models lists them (engine lora)"
        )
    if lora.family is None or lora.family != entry.family:
        raise OperationError(
            "lora_does_not_fit",
            f"loras: {lora_id} is for {lora.family or 'an unknown base'} models, but "
            f"{entry.id} is {entry.family or 'of unknown base'}; pick a LoRA made for it",
        )
    return lora


@contextmanager
def active(ctx: OpContext):
    """The job's LoRAs are active inside the block and switched off after it, so no other job
    on the same pipeline sees them. Weight-0 LoRAs are skipped."""
    from aiedit.engines import lora as lora_engine

    model = ctx.model.obj
    wanted = []
    for item in ctx.params.get("loras") or []:
        if item["weight"] == 0:
            continue
        lora = lora_entry(item["id"], ctx.model.entry, ctx.catalog)
        stage = f"downloading {lora.id}"
        lora_engine.prepare(lora, lambda done, total, stage=stage: ctx.progress(done, total, stage))
        adapter = "lora_" + re.sub(r"\W", "_", lora.id)
        wanted.append((adapter, lora_engine.weights_file(lora), item["weight"]))
    model.use_loras(wanted)
    try:
        yield
    finally:
        if wanted:
            model.use_loras([])
