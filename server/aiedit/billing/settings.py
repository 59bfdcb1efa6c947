"""Billing settings: the pricing rates, and the credit packs and monthly plans sold through
Stripe (each a Stripe price id and the credits it buys). The built-in `billing.toml` holds the
rates and no packs; `billing_file` (AIEDIT_BILLING_FILE) replaces what it names."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path


class BillingSettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Item:
    """A credit pack (paid once) or a plan (paid monthly, credits each period)."""

    id: str
    kind: str  # pack | plan
    price: str  # the Stripe price id
    credits: int
    title: str = ""


@dataclass(frozen=True)
class Rates:
    """credits = max(minimum, ceil(units x rate x steps / reference_steps)); see pricing.py."""

    minimum: int = 1
    reference_steps: int = 30
    default: float = 1.0
    engines: dict[str, float] = field(default_factory=dict)
    models: dict[str, float] = field(default_factory=dict)

    def rate(self, model_id: str, engine: str) -> float:
        if model_id in self.models:
            return self.models[model_id]
        return self.engines.get(engine, self.default)


@dataclass(frozen=True)
class BillingSettings:
    rates: Rates
    packs: dict[str, Item]
    plans: dict[str, Item]

    def item(self, kind: str, item_id: str) -> Item | None:
        return (self.packs if kind == "pack" else self.plans).get(item_id)

    def by_price(self, price_id: str) -> Item | None:
        return next(
            (i for i in [*self.packs.values(), *self.plans.values()] if i.price == price_id), None
        )

    @classmethod
    def load(cls, user_file: str | Path | None = None) -> BillingSettings:
        data = tomllib.loads(
            resources.files("aiedit").joinpath("billing.toml").read_text(encoding="utf-8")
        )
        if user_file:
            path = Path(user_file).expanduser()
            try:
                with open(path, "rb") as fh:
                    user = tomllib.load(fh)
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise BillingSettingsError(f"billing file {path}: {exc}") from None
            for section, value in user.items():
                if section == "pricing" and isinstance(value, dict):
                    data["pricing"] = {**data.get("pricing", {}), **value}
                else:
                    data[section] = value
        unknown = set(data) - {"pricing", "packs", "plans"}
        if unknown:
            raise BillingSettingsError(
                f"billing settings: unknown section(s) {', '.join(sorted(unknown))} "
                "(known: pricing, packs, plans)"
            )
        return cls(
            rates=_rates(data.get("pricing", {})),
            packs=_items(data.get("packs", {}), "pack"),
            plans=_items(data.get("plans", {}), "plan"),
        )


def _rates(raw: dict) -> Rates:
    try:
        rates = Rates(
            minimum=int(raw.get("minimum", 1)),
            reference_steps=int(raw.get("reference_steps", 30)),
            default=float(raw.get("default_rate", 1.0)),
            engines={k: float(v) for k, v in raw.get("engines", {}).items()},
            models={k: float(v) for k, v in raw.get("models", {}).items()},
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise BillingSettingsError(f"billing settings [pricing]: {exc}") from None
    if rates.minimum < 0 or rates.reference_steps < 1:
        raise BillingSettingsError(
            "billing settings [pricing]: minimum must be >= 0 and reference_steps >= 1"
        )
    if any(r < 0 for r in [rates.default, *rates.engines.values(), *rates.models.values()]):
        raise BillingSettingsError("billing settings [pricing]: rates must not be negative")
    return rates


def _items(raw: dict, kind: str) -> dict[str, Item]:
    items = {}
    for item_id, spec in raw.items():
        where = f"billing settings [{kind}s.{item_id}]"
        if not isinstance(spec, dict):
            raise BillingSettingsError(f"{where}: expected a table with price and credits")
        price, credits = spec.get("price"), spec.get("credits")
        if not isinstance(price, str) or not price:
            raise BillingSettingsError(f"{where}: price must be a Stripe price id (price_...)")
        if not isinstance(credits, int) or isinstance(credits, bool) or credits <= 0:
            raise BillingSettingsError(f"{where}: credits must be a positive whole number")
        items[item_id] = Item(item_id, kind, price, credits, str(spec.get("title", "")))
    return items
