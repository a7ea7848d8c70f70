"""Cost estimates from the catalog's price table (public list prices, overridable in wanflow.toml).

The documents carry no prices; the defaults are public figures and every number this module
returns is an estimate. ``[prices."<model>"]`` in wanflow.toml replaces ``usd`` or ``usd_by``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wanflow._exceptions import UsageError
from wanflow.catalog.spec import ModelSpec, PriceSpec

FREE_PROVIDERS = frozenset({"local", "op"})  # op: local media operations (op: steps)


@dataclass(frozen=True)
class Estimate:
    """An estimated price and how it was computed (``2 images x $0.03``)."""

    usd: float
    basis: str


def _price_for(model: ModelSpec, overrides: Mapping[str, Any]) -> PriceSpec | None:
    price = model.price
    override = overrides.get(model.name)
    if price is None or not override:
        return price
    if not isinstance(override, Mapping):
        raise UsageError(f"wanflow.toml [prices.\"{model.name}\"] must be a table with usd or usd_by")
    usd = override.get("usd", price.usd)
    usd_by = override.get("usd_by", price.usd_by)
    try:
        usd = float(usd) if usd is not None else None
        usd_by = {param: {str(k): float(v) for k, v in values.items()} for param, values in usd_by.items()}
    except (TypeError, ValueError, AttributeError):
        raise UsageError(f"wanflow.toml [prices.\"{model.name}\"]: prices must be numbers") from None
    return PriceSpec(price.per, price.count_param, usd, usd_by, price.mode_counts, "wanflow.toml [prices]")


def list_price(model: ModelSpec, params: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Estimate:
    """What the request would cost on a paid Wan provider, whoever runs it."""
    if model.open_weights is not None:
        return Estimate(0.0, "free: open weights on your own hardware")
    price = _price_for(model, overrides or {})
    if price is None:
        return Estimate(0.0, "no price known")
    count_param = price.mode_counts.get(model.mode_name(params), price.count_param)
    count = int(params.get(count_param, 1))
    unit = price.usd
    label = ""
    for param, table in price.usd_by.items():
        # A video priced by resolution tier may ask for it as a W*H size of that tier.
        value = str(params[param] if param in params else model.resolution_tier(params) if param == "resolution" else None)
        if value in table:
            unit, label = table[value], f" at {value}"
        elif table and unit is None:  # not known yet (a required param not given): never guess low
            dearest = max(table, key=lambda key: table[key])
            unit, label = table[dearest], f" at up to {dearest}"
    if unit is None:
        return Estimate(0.0, "no price known")
    noun = {"image": "image", "second": "s"}.get(price.per, price.per)
    plural = "s" if price.per == "image" and count != 1 else ""
    basis, usd = f"{count} {noun}{plural}{label} x ${unit:g}", count * unit
    if model.precheck is not None:  # run before every paid create (s2v's face check)
        basis, usd = f"{basis} + {model.precheck.model} check ${model.precheck.usd:g}", usd + model.precheck.usd
    return Estimate(round(usd, 6), basis)


def estimate(model: ModelSpec, params: Mapping[str, Any], provider: str, overrides: Mapping[str, Any] | None = None) -> Estimate:
    """The estimated cost of running the request on ``provider`` (free providers cost 0)."""
    if model.kind == "op":
        return Estimate(0.0, "a local operation: free")
    paid = list_price(model, params, overrides)
    if provider in FREE_PROVIDERS:
        return Estimate(0.0, f"free on {provider}; ~${paid.usd:.2f} on a paid provider")
    return paid
