"""Build the typed catalog views (``wanflow.catalog.spec``) from models.yaml's mappings: models and media rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wanflow.catalog.spec import (
    MediaRules,
    Mode,
    ModelSpec,
    PreCheck,
    PriceSpec,
    ProviderModel,
    TextSpec,
    parse_inputs,
    parse_outputs,
    parse_param,
)


def parse_model(name: str, data: Mapping[str, Any]) -> ModelSpec:
    """Build a ModelSpec from its YAML mapping."""
    modes = tuple(
        Mode(
            name=mode_name,
            when=mode["when"],
            inputs=parse_inputs(mode.get("inputs", data.get("inputs", {}))),
            outputs=parse_outputs(mode.get("outputs", data.get("outputs", {}))),
            params={param: parse_param(param, spec) for param, spec in (mode.get("params") or {}).items()},
            any_of=tuple(tuple(group) for group in mode.get("any_of", ())),
            exclusive=tuple(tuple(group) for group in mode.get("exclusive", ())),
        )
        for mode_name, mode in (data.get("modes") or {}).items()
    )
    prompt = data.get("prompt", {})
    negative = data.get("negative_prompt", {})
    price = data.get("price")
    return ModelSpec(
        name=name,
        kind=data["kind"],
        title=data.get("title", name),
        aliases=tuple(data.get("aliases", ())),
        prompt=TextSpec(bool(prompt.get("required", True)), int(prompt.get("max_chars", 2000)), prompt.get("code"),
                        (prompt["names"]["input"], prompt["names"]["word"]) if "names" in prompt else None),
        negative_prompt=TextSpec(False, int(negative.get("max_chars", 500)), negative.get("code")),
        seed_code=data.get("seed_code"),
        inputs=parse_inputs(data.get("inputs") or {}),
        outputs=parse_outputs(data.get("outputs") or {}),
        params={param: parse_param(param, spec) for param, spec in (data.get("params") or {}).items()},
        modes=modes,
        price=PriceSpec(
            per=price["per"],
            count_param=price["count"],
            usd=price.get("usd"),
            usd_by=price.get("usd_by", {}),
            mode_counts={mode: spec["count"] for mode, spec in price.get("modes", {}).items()},
            source=str(price.get("source", "")),
        ) if price else None,
        providers={
            provider: ProviderModel(
                ids["model"], ids.get("path"), ids.get("shape", "messages"),
                ids.get("negative_prompt_in", "parameters"), ids.get("result"),
                ids.get("fields", {}),
                {name: tuple(aliases) for name, aliases in (ids.get("aliases") or {}).items()},
                tuple(ids.get("input_params", ())),
                tuple(ids.get("regions", ())),
                ids.get("concurrent"),
            )
            for provider, ids in (data.get("providers") or {}).items()
        },
        precheck=PreCheck(**data["precheck"]) if data.get("precheck") else None,
        any_of=tuple(tuple(group) for group in data.get("any_of", ())),
        exclusive=tuple(tuple(group) for group in data.get("exclusive", ())),
    )


def parse_media(raw: Mapping[str, Any]) -> dict[str, MediaRules]:
    """Build the shared media rules."""
    return {
        name: MediaRules(
            kind=data.get("kind", name),
            formats=tuple(data["formats"]),
            max_bytes=int(data["max_bytes"]),
            alpha=bool(data.get("alpha", True)),
            min_seconds=data.get("min_seconds"),
            max_seconds=data.get("max_seconds"),
        )
        for name, data in raw.items()
    }
