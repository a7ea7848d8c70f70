"""Human documentation of the catalog, generated from it (``wanflow models``, docs/models.md)."""

from __future__ import annotations

from typing import Any

from wanflow.catalog.loader import Catalog, load_catalog
from wanflow.catalog.pricing import list_price
from wanflow.catalog.rules import mode_condition
from wanflow.catalog.spec import ModelSpec, ParamSpec


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "–" if value is None else str(value)


def _param_row(model: ModelSpec, spec: ParamSpec, mode: str | None = None) -> str:
    notes = []
    if spec.affects_cost:
        notes.append("affects cost")
    if spec.modes:
        notes.append("only " + mode_condition(model, spec.modes))
    if spec.effective_only_with:
        notes.append("needs " + ", ".join(f"{k}={_value(v)}" for k, v in spec.effective_only_with.items()))
    if spec.options:
        notes.append("documented options " + ", ".join(map(str, spec.options)))
    if spec.disputed:
        notes.append("disputed range warns")
    code = spec.code or ", ".join(f"{k} {v}" for k, v in spec.codes.items())
    if code:
        notes.append(f"codes: {code}")
    name = f"{spec.name} ({mode})" if mode else spec.name
    return f"| `{name}` | {spec.type} | {spec.describe_allowed()} | {_value(spec.default)} | {'; '.join(notes)} |"


def model_markdown(model: ModelSpec, catalog: Catalog) -> str:
    """One model's section."""
    lines = [f"## `{model.name}`", "", f"{model.title}. Kind: **{model.kind}**."]
    if model.aliases:
        lines.append("Aliases: " + ", ".join(f"`{alias}`" for alias in model.aliases) + ".")
    providers = ", ".join(f"{name} (`{ids.model}`)" for name, ids in model.providers.items())
    lines += [f"Providers: {providers}, and `local` previews.", ""]
    prompt = f"prompt up to {model.prompt.max_chars} characters" + ("" if model.prompt.required else " (optional)")
    lines.append(f"- Text: {prompt}; negative_prompt up to {model.negative_prompt.max_chars}. Longer text is truncated by the service; wanflow warns (error with `--strict`).")
    for slot in model.inputs.values():
        rules = catalog.media[slot.media]
        count = f"{slot.minimum}–{slot.maximum}" if slot.name == "images" else ("required" if slot.minimum else "optional")
        sides = f", {slot.min_side}–{slot.max_side} px per side" if slot.min_side else ""
        lines.append(f"- Input `{slot.name}`: {count}; {', '.join(f.split('/')[1] for f in rules.formats)}; "
                     f"≤ {rules.max_bytes // 1048576} MB{sides}" + ("; no transparency" if not rules.alpha else "")
                     + (f"; {rules.min_seconds:g}–{rules.max_seconds:g} s" if rules.min_seconds else ""))
    lines.append("- Outputs: " + ", ".join(f"`{name}`" for name in model.outputs))
    for mode in model.modes:
        switches = ", ".join(f"`{k}: {_value(v)}`" for k, v in mode.when.items())
        inputs = "; ".join(f"`{s.name}` {s.minimum}–{s.maximum}" for s in mode.inputs.values())
        lines.append(f"- Mode `{mode.name}` ({switches}): inputs {inputs}; outputs " + ", ".join(f"`{o}`" for o in mode.outputs))
    if model.price:
        defaults = model.with_defaults({})
        lines.append(f"- Estimated price with defaults: ${list_price(model, defaults).usd:.2f} ({list_price(model, defaults).basis}); public list prices, not from the API documents.")
    lines += ["", "| param | type | allowed | default | notes |", "|---|---|---|---|---|"]
    for spec in model.params.values():
        lines.append(_param_row(model, spec))
    for mode in model.modes:
        for spec in mode.params.values():
            lines.append(_param_row(model, spec, mode.name))
    seed_code = f" (code {model.seed_code})" if model.seed_code else ""
    lines.append(f"| `seed` | integer | 0 to 2147483647{seed_code} | derived | set with the step's `seed:` |")
    return "\n".join(lines) + "\n"


def models_markdown() -> str:
    """The whole docs/models.md page."""
    catalog = load_catalog()
    header = [
        "# Models",
        "",
        "Generated from `src/wanflow/catalog/models.yaml` by `wanflow models --markdown`; do not edit by hand.",
        "",
        "Shared media rules: images are JPEG, PNG (no transparency), BMP or WEBP up to 10 MB; audio is",
        "wav or mp3, 3–30 s, up to 15 MB. Inputs that break a model's pixel bounds, transparency or size",
        "rule are conformed (resized keeping the aspect ratio, flattened, re-encoded) unless the step",
        "says `conform: false`.",
        "",
    ]
    return "\n".join(header) + "\n".join(model_markdown(model, catalog) for model in catalog.models.values())


def models_summary() -> str:
    """The short listing ``wanflow models`` prints."""
    catalog = load_catalog()
    lines = []
    for model in catalog.models.values():
        lines.append(f"{model.name:<20} {model.kind:<5} {model.title}")
        lines.append(f"{'':<20} aliases: {', '.join(model.aliases) or '-'}")
        for spec in model.params.values():
            cost = "  $" if spec.affects_cost else ""
            lines.append(f"{'':<22}{spec.name:<18} default {_value(spec.default):<10} {spec.describe_allowed()}{cost}")
        lines.append("")
    lines.append("$ = affects cost. Details: wanflow models MODEL, or docs/models.md")
    return "\n".join(lines) + "\n"


def models_json() -> dict[str, Any]:
    """The catalog as JSON data (for tools)."""
    catalog = load_catalog()
    result: dict[str, Any] = {}
    for model in catalog.models.values():
        result[model.name] = {
            "kind": model.kind,
            "title": model.title,
            "aliases": list(model.aliases),
            "prompt_max_chars": model.prompt.max_chars,
            "negative_prompt_max_chars": model.negative_prompt.max_chars,
            "inputs": {s.name: {"min": s.minimum, "max": s.maximum, "media": s.media, "min_side": s.min_side, "max_side": s.max_side}
                       for s in model.inputs.values()},
            "outputs": list(model.outputs),
            "params": {
                p.name: {"type": p.type, "default": p.default, "allowed": p.describe_allowed(), "affects_cost": p.affects_cost}
                for p in model.params.values()
            },
            "providers": {name: ids.model for name, ids in model.providers.items()},
        }
    return result
