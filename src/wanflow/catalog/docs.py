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
    notes = ["required"] if spec.required else []
    if spec.affects_cost:
        notes.append("affects cost")
    if spec.modes:
        notes.append("only " + mode_condition(model, spec.modes))
    for value, needs in spec.requires.items():
        notes.append(f"{value} needs " + ", ".join(f"{k}={_value(v)}" for k, v in needs.items()))
    if spec.from_input:
        notes.append(f"set from the length of `{spec.from_input}`, not sent")
    elif not spec.send:
        notes.append("fixed by the model, not sent")
    if spec.effective_only_with:
        notes.append("needs " + ", ".join(f"{k}={_value(v)}" for k, v in spec.effective_only_with.items()))
    if spec.with_inputs:
        narrow = spec.with_inputs
        notes.append(f"with {narrow['input']}: " + " / ".join(narrow.get("tiers", ())) + " or W*H up to "
                     + f"{round(narrow['pixels'][1] ** 0.5)}*{round(narrow['pixels'][1] ** 0.5)}" if "pixels" in narrow else "")
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
    providers = ", ".join(f"{name} (`{ids.model}`" + (f" at `{ids.path}`" if ids.path else "") + ")"
                          for name, ids in model.providers.items())
    lines += [f"Providers: {providers}, and `local` previews.", ""]
    prompt = f"prompt up to {model.prompt.max_chars} characters" + ("" if model.prompt.required else " (optional)")
    if model.prompt.max_chars == 0:
        lines.append("- Text: none (the model has no prompt field; a `prompt:` is an error).")
    else:
        lines.append(f"- Text: {prompt}; negative_prompt up to {model.negative_prompt.max_chars}. Longer text is truncated by the service; wanflow warns (error with `--strict`).")
    if model.prompt.names:
        named, word = model.prompt.names
        lines.append(f"- The prompt calls the `{named}` {word}1, {word}2, ... in their order; a name past their count is an error.")
    for slot in model.inputs.values():
        rules = catalog.media[slot.rules_key]
        count = f"{slot.minimum}–{slot.maximum}" if slot.many else ("required" if slot.minimum else "optional")
        sides = f", {slot.min_side}–{slot.max_side} px per side" if slot.min_side else ""
        lines.append(f"- Input `{slot.name}`: {count}; {', '.join(f.split('/')[1] for f in rules.formats)}; "
                     f"≤ {rules.max_bytes // 1048576} MB{sides}" + ("; no transparency" if not rules.alpha else "")
                     + (f"; {rules.min_seconds:g}–{rules.max_seconds:g} s" if rules.min_seconds else ""))
    lines.append("- Outputs: " + ", ".join(f"`{name}`" for name in model.outputs))
    for mode in model.modes:
        switches = ", ".join(f"`{k}: {_value(v)}`" for k, v in mode.when.items())
        inputs = "; ".join(f"`{s.name}` " + (f"{s.minimum}–{s.maximum}" if s.many else "required" if s.minimum else "optional")
                           for s in mode.inputs.values())
        groups = "".join(f"; at least one of {', '.join(f'`{name}`' for name in group)}" for group in mode.any_of)
        lines.append(f"- Mode `{mode.name}` ({switches}): inputs {inputs or 'none'}{groups}; outputs "
                     + ", ".join(f"`{o}`" for o in mode.outputs))
    if model.price:
        defaults = model.with_defaults({})
        lines.append(f"- Estimated price with defaults: ${list_price(model, defaults).usd:.2f} ({list_price(model, defaults).basis}); "
                     + (f"checked against public material: {model.price.source}." if model.price.source else
                        "**an estimate**: not verified against public material (override in wanflow.toml)."))
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
        "wav or mp3, 3–30 s, up to 15 MB; reference clips are MP4 or MOV, 2–30 s, up to 100 MB. Inputs that break a model's pixel bounds, transparency or size",
        "rule are conformed (resized keeping the aspect ratio, flattened, re-encoded) unless the step",
        "says `conform: false`.",
        "",
        "Prices: the API documents carry none. Each model says whether its figures were checked against",
        "public material (and which) or are **estimates**; every figure can be replaced in wanflow.toml",
        "(`[prices.\"<model>\"]`), and the run record marks costs as estimated unless the service reports them.",
        "",
    ]
    return "\n".join(header) + "\n".join(model_markdown(model, catalog) for model in catalog.models.values())


KIND_TITLES = {
    "t2i": "text-to-image", "edit": "image editing", "i2v": "image-to-video (first frame)",
    "t2v": "text-to-video", "kf2v": "first and last frame to video", "r2v": "reference-to-video",
    "vace": "video editing functions (VACE)", "videoedit": "video editing", "s2v": "speech-to-video",
    "animate": "animate a character from a driving video",
}


def models_summary() -> str:
    """The listing ``wanflow models`` prints: every model by kind, with its services and default price."""
    catalog = load_catalog()
    lines = []
    for kind, title in KIND_TITLES.items():
        models = [model for model in catalog.models.values() if model.kind == kind]
        if not models:
            continue
        lines.append(f"{title} ({kind})")
        for model in models:
            services = ", ".join(f"{name} {ids.model}" for name, ids in model.providers.items())
            price = list_price(model, model.with_defaults({}))
            lines.append(f"  {model.name:<20} {services:<48} ~${price.usd:.2f} ({price.basis})")
        lines.append("")
    lines.append("Prices are estimates with each model's defaults (public list prices; override in wanflow.toml).")
    lines.append("Every model also runs on `local` (free previews). Details: wanflow models MODEL, or docs/models.md")
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
            "inputs": {s.name: {"min": s.minimum, "max": s.maximum, "media": s.media, "min_side": s.min_side,
                                "max_side": s.max_side, "list": s.many} for s in model.inputs.values()},
            "outputs": list(model.outputs),
            "params": {
                p.name: {"type": p.type, "default": p.default, "allowed": p.describe_allowed(), "affects_cost": p.affects_cost}
                for p in model.params.values()
            },
            "providers": {name: ids.model for name, ids in model.providers.items()},
            "services": {
                name: {"model": ids.model, "path": ids.path,
                       "fields": {slot: ids.fields.get(slot, slot) for slot in model.inputs} if ids.shape == "fields" else {}}
                for name, ids in model.providers.items()
            },
            "estimated_usd": list_price(model, model.with_defaults({})).usd,
        }
    return result
