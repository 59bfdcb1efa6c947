"""Control layers, shared by the operations that draw (generate, inpaint): each item of
`params.control` names an uploaded part (`control0` ...) holding a control map, or a picture to
turn into one (`preprocess`), and the ControlNet that follows it with a strength and a share of
the denoising schedule. A `reference` item is a picture whose look steers the result through
the base model's IP-Adapter instead (any size; `preprocess` does not apply to it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from aiedit.engines import installed_for
from aiedit.ops.base import MAX_CONTROLS, Float, OpContext, OperationError

KINDS = ("scribble", "lineart", "canny", "depth", "pose", "reference")
CLASSIC_MAPS = ("canny", "scribble")  # made without weights (ops.preprocess.classic_map)


class ControlItem(Schema):
    kind = fields.String(
        required=True,
        validate=validate.OneOf(KINDS),
        metadata={"description": "What the control image shows: " + ", ".join(KINDS)},
    )
    input = fields.String(
        required=True,
        validate=validate.OneOf([f"control{i}" for i in range(MAX_CONTROLS)]),
        metadata={"description": "The file part holding it (control0 ... control7), the "
                                 "same size as the image (the region)"},
    )
    strength = Float(
        load_default=1.0,
        validate=validate.Range(0.0, 2.0),
        metadata={"description": "How strongly it steers (ControlNet conditioning scale); "
                                 "0 = no effect (the control is skipped)"},
    )
    start = Float(
        load_default=0.0,
        validate=validate.Range(0.0, 1.0),
        metadata={"description": "Share of the schedule where it starts to steer"},
    )
    end = Float(
        load_default=1.0,
        validate=validate.Range(0.0, 1.0),
        metadata={"description": "Share of the schedule where it stops"},
    )
    preprocess = fields.Boolean(
        load_default=False,
        metadata={"description": "The input is a picture: make the map from it first (as the "
                                 "preprocess operation does, default settings)"},
    )
    model = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(1, 128),
        metadata={"description": "A ControlNet (or, for `reference`, an IP-Adapter) id from "
                                 "/v1/models; empty for the installed one that fits the kind "
                                 "and the base model"},
    )

    @validates_schema
    def _span(self, data, **kwargs):
        if data.get("start", 0.0) >= data.get("end", 1.0):
            raise ValidationError("start must be below end", "start")


def control_field() -> fields.List:
    return fields.List(
        fields.Nested(ControlItem),
        load_default=list,
        validate=validate.Length(max=MAX_CONTROLS),
        metadata={"description": "Control layers (ControlNets); each names a file part"},
    )


# --- before queueing ----------------------------------------------------------------------------


def check(params: dict, sizes: dict, entry, catalog) -> None:
    """Refuse what cannot run: parts missing, unused or of another size, kinds no installed
    ControlNet for this base model follows, pictures no installed detector can map."""
    items = params.get("control") or []
    named = [item["input"] for item in items]
    if len(set(named)) != len(named):
        raise OperationError("control_input_reused", "control: each item needs its own part")
    unused = sorted({name for name in sizes if name.startswith("control")} - set(named))
    if unused:
        raise OperationError(
            "control_input_unused",
            f"{', '.join(unused)}: sent, but no control item names it as its input",
        )
    if sum(item["kind"] == "reference" for item in items) > 1:
        raise OperationError("control_reference_repeated",
                             "control: one reference item at most (one IP-Adapter image)")
    for index, item in enumerate(items):
        where = f"control[{index}] ({item['kind']})"
        if item["input"] not in sizes:
            raise OperationError(
                "control_input_missing", f"{where}: no file part {item['input']} was sent"
            )
        if item["kind"] == "reference":
            ip_adapter_for(item, entry, catalog, where)
            continue
        if sizes[item["input"]] != sizes["image"]:
            w, h = sizes[item["input"]]
            raise OperationError(
                "control_size_mismatch",
                f"{where}: {item['input']} is {w}x{h} but the region is "
                f"{sizes['image'][0]}x{sizes['image'][1]}; send the same region of the layer",
            )
        controlnet_for(item, entry, catalog)
        if item["preprocess"] and item["kind"] not in CLASSIC_MAPS:
            detector_for(item["kind"], catalog, where)


def controlnet_for(item: dict, entry, catalog):
    """The ControlNet entry for `item` on base model `entry` (named, or the preferred installed
    one that follows the kind and fits the base)."""
    kind, family = item["kind"], entry.family
    if item.get("model"):
        chosen = catalog.get(item["model"])
        if chosen is None or chosen.engine != "controlnet":
            raise OperationError(
                "unknown_model", f"control: {item['model']!r} is no ControlNet in /v1/models"
            )
        if kind not in chosen.kinds or chosen.family != family:
            raise OperationError(
                "control_model_does_not_fit",
                f"control: {chosen.id} follows {', '.join(chosen.kinds)} maps for "
                f"{chosen.family} models; this is a {kind} map for {entry.id} ({family})",
            )
        return chosen
    for candidate in installed_for(catalog, "control"):
        if kind in candidate.kinds and candidate.family == family:
            return candidate
    known = [e.id for e in catalog.for_operation("control")
             if kind in e.kinds and e.family == family]
    raise OperationError(
        "no_controlnet",
        f"control: no installed ControlNet follows {kind} maps for {entry.id} "
        f"({family or 'unknown family'})"
        + (f"; install one with `aiedit models pull {known[0]}`" if known else ""),
    )


def ip_adapter_for(item: dict, entry, catalog, where: str = "control"):
    """The IP-Adapter entry for a reference item on base model `entry` (named, or the preferred
    installed one that fits the base)."""
    family = entry.family
    if item.get("model"):
        chosen = catalog.get(item["model"])
        if chosen is None or chosen.engine != "ip_adapter":
            raise OperationError(
                "unknown_model", f"{where}: {item['model']!r} is no IP-Adapter in /v1/models"
            )
        if chosen.family != family:
            raise OperationError(
                "control_model_does_not_fit",
                f"{where}: {chosen.id} is for {chosen.family} models; {entry.id} is "
                f"{family or 'of unknown base'}",
            )
        return chosen
    for candidate in installed_for(catalog, "reference"):
        if candidate.family == family:
            return candidate
    known = [e.id for e in catalog.for_operation("reference") if e.family == family]
    raise OperationError(
        "control_unsupported",
        f"{where}: no installed IP-Adapter fits {entry.id} ({family or 'unknown family'}), so "
        "it takes no reference picture"
        + (f"; install one with `aiedit models pull {known[0]}`" if known
           else "; the edit operation's models take a `reference` part of their own"),
    )


def detector_for(kind: str, catalog, where: str = "control"):
    for candidate in installed_for(catalog, "preprocess"):
        if kind in candidate.kinds:
            return candidate
    raise OperationError(
        "no_detector",
        f"{where}: preprocess needs a {kind} detector and none is installed "
        "(see `aiedit models list`), or send the map itself",
    )


# --- running ------------------------------------------------------------------------------------


@dataclass
class Controls:
    """The generic model arguments for the active controls (none when empty)."""

    kwargs: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.kwargs)


def prepare(ctx: OpContext, work: tuple[int, int], box=None) -> Controls:
    """Load the ControlNets, make maps from pictures where asked, cut them to `box` (x0, y0,
    x1, y1: the part of the region the model sees) and size them to `work`. Items with
    strength 0 are left out: they would not steer."""
    import numpy as np

    from aiedit.engines.diffusion import to_pil

    entry, catalog = ctx.model.entry, ctx.catalog
    active = [item for item in ctx.params.get("control") or [] if item["strength"] > 0]
    items = [item for item in active if item["kind"] != "reference"]
    kwargs: dict[str, Any] = {}
    for item in active:
        if item["kind"] == "reference":
            adapter = ctx.load(ip_adapter_for(item, entry, catalog).id).obj
            kwargs |= {
                "ip_adapter": adapter,
                "ip_adapter_image": to_pil(np.asarray(ctx.inputs[item["input"]])),
                "ip_adapter_span": (item["strength"], item["start"], item["end"]),
            }
    if not items:
        return Controls(kwargs)
    nets, images, modes = [], [], []
    for item in items:
        net_entry = controlnet_for(item, entry, catalog)
        nets.append(ctx.load(net_entry.id).obj)
        pixels = np.asarray(ctx.inputs[item["input"]])
        if item["preprocess"]:
            pixels = make_map(ctx, item["kind"], pixels, catalog)
        if box is not None:
            x0, y0, x1, y1 = box
            pixels = pixels[y0:y1, x0:x1]
        images.append(to_pil(pixels, work))
        modes.append(net_entry.options.get("modes", {}).get(item["kind"]))
    one = len(items) == 1

    def pick(values):
        return values[0] if one else values

    kwargs |= {
        "controlnet": pick(nets),
        "control": pick(images),
        "control_scale": pick([item["strength"] for item in items]),
        "control_start": pick([item["start"] for item in items]),
        "control_end": pick([item["end"] for item in items]),
    }
    if any(mode is not None for mode in modes):
        kwargs["control_mode"] = pick(modes)
    return Controls(kwargs)


def make_map(ctx: OpContext, kind: str, pixels, catalog):
    from aiedit.ops.preprocess import PreprocessParams, classic_map

    params = PreprocessParams().load({"kind": kind})
    if kind in CLASSIC_MAPS:
        return classic_map(kind, pixels, params)
    detector = ctx.load(detector_for(kind, catalog).id)
    return detector.obj.run(pixels, params)
