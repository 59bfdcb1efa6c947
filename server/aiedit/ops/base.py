"""What an operation is: an id and version, a params schema, the inputs it takes, a cost, and a
`run(ctx)` that turns inputs into outputs. Operations register themselves with `@operation`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marshmallow import Schema, fields, validate

# Re-exported: operations take these from here.
from aiedit.errors import Canceled as Canceled
from aiedit.errors import OperationError as OperationError

if TYPE_CHECKING:
    import numpy as np

    from aiedit.engines.cache import LoadedModel

REQUIRED, OPTIONAL, UNUSED = "required", "optional", "unused"
# the pixel formats an operation's `image` may come in (raw uploads, or decoded files): 8-bit
# only, or also 16-bit sRGB RGBA, which the operation then keeps to its result
RGBA8, RGBA16 = "rgba8", "rgba16"
DEEP = (RGBA8, RGBA16)
INPUT_NAMES = ("image", "mask", "reference", "control")
MAX_CONTROLS = 8
# the file parts a job may carry: the control group is sent as parts control0, control1, ...
PART_NAMES = ("image", "mask", "reference", *(f"control{i}" for i in range(MAX_CONTROLS)))


def input_group(part: str) -> str:
    """The input a file part belongs to: `control3` -> `control`, `image` -> `image`."""
    return "control" if part.startswith("control") else part


@dataclass(frozen=True)
class Region:
    x: int
    y: int
    width: int
    height: int


@dataclass
class ImageOutput:
    pixels: np.ndarray  # H x W x 4 RGBA: uint8, or uint16 when the input image was 16-bit
    dx: int = 0  # offset relative to the job's region
    dy: int = 0
    seed: int | None = None


@dataclass
class VideoOutput:
    mp4: bytes
    width: int
    height: int
    fps: float
    frames: int
    seed: int | None = None


Output = ImageOutput | VideoOutput


PREVIEW_EVERY_S = 0.5  # at most one step preview this often
PREVIEW_BUDGET = 0.03  # previews may take at most this share of a job's running time


class Progress:
    """Progress reporting and cancellation for one running job; optionally a sink for step
    previews (low-resolution RGB pictures of the work in progress)."""

    def __init__(
        self,
        report: Callable[[int, int, str], None],
        canceled: Callable[[], bool],
        preview: Callable[[int, np.ndarray], None] | None = None,
    ):
        self._report = report
        self._canceled = canceled
        self._preview = preview
        self._preview_started = time.monotonic()
        self._preview_last = 0.0
        self._preview_spent = 0.0

    def wants_preview(self) -> bool:
        """Is a step preview due? At most one every PREVIEW_EVERY_S, and only while previews
        have cost less than PREVIEW_BUDGET of the time so far (so they never slow a job by
        more than a few per cent, however slow the decoder is)."""
        if self._preview is None:
            return False
        now = time.monotonic()
        if now - self._preview_last < PREVIEW_EVERY_S:
            return False
        return self._preview_spent <= PREVIEW_BUDGET * (now - self._preview_started)

    def preview(self, step: int, pixels: np.ndarray, cost_s: float) -> None:
        """Hand over a preview (H x W x 3 uint8) of `step` that took `cost_s` to make."""
        started = time.monotonic()
        if self._preview is not None:
            self._preview(step, pixels)  # encoding and storing count against the budget too
        self._preview_last = time.monotonic()
        self._preview_spent += cost_s + self._preview_last - started

    def __call__(self, step: int, total: int, stage: str) -> None:
        """Report `step` of `total` in `stage`; raises Canceled if the job was canceled."""
        self.check()
        self._report(step, total, stage)

    def check(self) -> None:
        if self._canceled():
            raise Canceled()


@dataclass
class OpContext:
    """Everything an operation gets: its params, decoded inputs, the model and a progress handle."""

    params: dict[str, Any]
    inputs: dict[str, np.ndarray]
    region: Region
    model: LoadedModel
    progress: Progress
    device: str = "cpu"
    # loads another catalog model on this job's device (ControlNets, detectors), with progress
    load: Callable[[str], LoadedModel] | None = None
    catalog: Any = None  # the model catalog, to pick those extra models
    scratch_dir: Path | None = None  # the job's folder, for big intermediate files (None: temp)


@dataclass(frozen=True)
class Operation:
    id: str
    version: int
    title: str
    description: str
    params: type[Schema]
    inputs: dict[str, str]
    region: str
    cost: Callable[[dict, dict[str, tuple[int, int]]], float]
    run: Callable[[OpContext], list[Output]]
    # (params, sizes, config, model entry, catalog): raises OperationError to refuse before
    # queueing
    validate: Callable[[dict, dict[str, tuple[int, int]], Any, Any, Any], None] | None = None
    # (params, model entry) -> why the model cannot serve these params, or None; the API picks
    # the default model among those that fit and refuses a named one that does not
    model_fits: Callable[[dict, Any], str | None] | None = None
    # params -> ids of other catalog models the job will load (a refine pass's model): the API
    # checks each can run here, and the job runs where models run, not in the classic lane
    extra_models: Callable[[dict], list[str]] | None = None
    # the formats the `image` input may come in; with RGBA16 a 16-bit image reaches run() as
    # uint16 and the operation returns uint16 results
    input_formats: tuple[str, ...] = (RGBA8,)

    @property
    def deep(self) -> bool:
        return RGBA16 in self.input_formats

    def input_mode(self, name: str) -> str:
        return self.inputs.get(input_group(name), UNUSED)


_registry: dict[str, Operation] = {}


def operation(
    id: str,
    *,
    version: int,
    title: str,
    params: type[Schema],
    inputs: dict[str, str],
    region: str = "selection",
    cost: Callable | None = None,
    validate: Callable | None = None,
    model_fits: Callable | None = None,
    input_formats: tuple[str, ...] = (RGBA8,),
    extra_models: Callable | None = None,
):
    """Register the decorated `run(ctx)` as operation `id`."""

    def register(run: Callable[[OpContext], list[Output]]):
        if id in _registry:
            raise ValueError(f"operation {id!r} registered twice")
        _registry[id] = Operation(
            id=id,
            version=version,
            title=title,
            description=(run.__doc__ or "").strip(),
            params=params,
            inputs=inputs,
            region=region,
            cost=cost or megapixel_cost,
            run=run,
            validate=validate,
            model_fits=model_fits,
            input_formats=tuple(input_formats),
            extra_models=extra_models,
        )
        return run

    return register


def registry() -> dict[str, Operation]:
    import aiedit.ops  # noqa: F401  (imports every operation module)

    return _registry


def megapixel_cost(params: dict, sizes: dict[str, tuple[int, int]]) -> float:
    """One unit per started megapixel of the main input (at least one)."""
    width, height = sizes.get("image", (1024, 1024))
    return float(max(1, -(-width * height // 1_000_000)))


class Float(fields.Float):
    """A number sent as a JSON number: no "2" strings, no booleans, no NaN (the API refuses to
    guess what a string meant)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_nan", False)
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Integer(fields.Integer):
    """An integer sent as a JSON number (no strings, no 2.0)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("strict", True)
        super().__init__(**kwargs)


# Parameter fields shared by several operations.
def prompt_field(required: bool = False) -> fields.String:
    extra = {"required": True} if required else {"load_default": ""}
    return fields.String(
        validate=validate.Length(min=1 if required else 0, max=4000),
        metadata={"description": "What to draw or change, in words."},
        **extra,
    )


def negative_prompt_field() -> fields.String:
    return fields.String(
        load_default="",
        validate=validate.Length(max=4000),
        metadata={"description": "What to avoid."},
    )


def seed_field() -> fields.Integer:
    return Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(0, 2**32 - 1),
        metadata={"description": "Random seed; empty for a new one each time."},
    )


def steps_field(default: int | None = None) -> fields.Integer:
    return Integer(
        load_default=default,
        allow_none=True,
        validate=validate.Range(1, 150),
        metadata={"description": "Denoising steps; empty for the model's default."},
    )


def guidance_field() -> fields.Float:
    return Float(
        load_default=None,
        allow_none=True,
        allow_nan=False,
        validate=validate.Range(0.0, 30.0),
        metadata={"description": "Guidance scale; empty for the model's default."},
    )


MAX_COUNT = 8


def count_field() -> fields.Integer:
    return Integer(
        load_default=1,
        validate=validate.Range(1, MAX_COUNT),
        metadata={"description": "How many variations, each with its own seed (seed, seed+1, "
                                 "... when a seed is given)"},
    )


def strength_field(description: str | None = None) -> fields.Float:
    return Float(
        load_default=1.0,
        validate=validate.Range(0.0, 1.0),
        metadata={
            "description": description
            or "With an image: how much may change (0 keeps it, 1 replaces it)"
        },
    )
