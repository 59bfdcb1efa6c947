"""Prices in credits, in one place: from the operation's size measure (`op.cost`: megapixels,
images x megapixels, output megapixels, frames), the model (a rate per model or per engine) and
the denoising steps.

    credits = max(minimum, ceil(units x rate x steps / reference_steps))

`rate` is the highest of the models the job runs (its model, and a `refine_model`). `steps`
counts only for operations with a `steps` parameter (the model's default when the request
leaves it empty); for the others the factor is 1."""

from __future__ import annotations

import math
from dataclasses import dataclass

from aiedit.billing.settings import Rates

RULE = "max(minimum, ceil(units * rate * steps / reference_steps))"


@dataclass(frozen=True)
class Quote:
    credits: int
    units: float
    rate: float
    steps_factor: float

    def as_json(self) -> dict:
        return {
            "credits": self.credits,
            "units": self.units,
            "rate": self.rate,
            "steps_factor": round(self.steps_factor, 4),
        }


def quote(op, entry, params: dict, sizes: dict[str, tuple[int, int]], rates: Rates,
          catalog=None) -> Quote:
    """The price of running `op` with the model `entry` on these loaded params and input sizes
    (width, height). A job that also runs another model named in its params (`refine_model`:
    a diffusion pass over an upscale) pays the highest rate of the models it runs."""
    units = float(op.cost(params, sizes))
    rate = max(rates.rate(m.id, m.engine) for m in [entry, *_extra_models(op, params, catalog)])
    factor = steps_factor(op, entry, params, rates)
    credits = max(rates.minimum, math.ceil(round(units * rate * factor, 6)))
    return Quote(credits=credits, units=units, rate=rate, steps_factor=factor)


def _extra_models(op, params: dict, catalog) -> list:
    """The other catalog models the job runs (`op.extra_models`, e.g. an upscale's refine)."""
    if catalog is None or op.extra_models is None:
        return []
    return [e for e in map(catalog.get, op.extra_models(params)) if e is not None]


def steps_factor(op, entry, params: dict, rates: Rates) -> float:
    if "steps" not in op.params().fields:
        return 1.0
    steps = params.get("steps") or entry.defaults.get("steps") or rates.reference_steps
    return steps / rates.reference_steps


def describe(op, catalog, rates: Rates) -> dict:
    """The pricing rule of an operation, as `/v1/operations` shows it."""
    uses_steps = "steps" in op.params().fields
    units = (op.cost.__doc__ or "").strip() or "a fixed amount per job"
    return {
        "rule": RULE if uses_steps else "max(minimum, ceil(units * rate))",
        "units": units,
        "minimum": rates.minimum,
        "reference_steps": rates.reference_steps if uses_steps else None,
        "rates": {
            entry.id: rates.rate(entry.id, entry.engine)
            for entry in catalog.for_operation(op.id)
        },
    }

