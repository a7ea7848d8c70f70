"""The model catalog: every Wan model's inputs, outputs and parameters, read from models.yaml.

Code asks the catalog questions ("which outputs does this step produce with these params?")
instead of branching on model names.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal, Mapping

import yaml

Kind = Literal["t2i", "edit", "i2v"]
OUTPUT_FIELDS = ("images", "video", "text")
INPUT_FIELDS = ("images", "image", "audio")


@dataclass(frozen=True)
class ParamSpec:
    """One request parameter: its type, default and allowed values."""

    name: str
    type: str
    default: Any = None
    enum: tuple[Any, ...] | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    tiers: tuple[str, ...] = ()
    affects_cost: bool = False
    modes: tuple[str, ...] = ()

    def applies_in(self, mode: str) -> bool:
        """Whether the parameter means anything in ``mode`` (``"default"`` when no mode is selected)."""
        return not self.modes or mode in self.modes

    def describe_allowed(self) -> str:
        """Human wording of the allowed values, for error messages and docs."""
        if self.enum is not None:
            return "one of " + ", ".join(str(value) for value in self.enum)
        if self.type == "boolean":
            return "true or false"
        if self.type == "size":
            tiers = " or ".join(self.tiers)
            return "'WIDTH*HEIGHT'" + (f" or {tiers}" if tiers else "")
        if self.minimum is not None and self.maximum is not None:
            return f"an integer from {self.minimum} to {self.maximum}"
        return f"a {self.type}"


@dataclass(frozen=True)
class InputSpec:
    """A media input slot: how many items it takes and their pixel limits."""

    name: str
    minimum: int = 0
    maximum: int = 1
    min_side: int | None = None
    max_side: int | None = None


@dataclass(frozen=True)
class OutputSpec:
    """An output slot; ``count_param`` names the param that sets the image count."""

    name: str
    count_param: str | None = None
    up_to: bool = False


@dataclass(frozen=True)
class Mode:
    """A parameter-selected variant (e.g. interleaved output) with its own inputs and outputs."""

    name: str
    when: Mapping[str, Any]
    inputs: Mapping[str, InputSpec]
    outputs: Mapping[str, OutputSpec]


@dataclass(frozen=True)
class ModelSpec:
    """Everything the catalog knows about one model."""

    name: str
    kind: Kind
    title: str
    aliases: tuple[str, ...]
    prompt_required: bool
    prompt_max_chars: int
    negative_prompt_max_chars: int
    inputs: Mapping[str, InputSpec]
    outputs: Mapping[str, OutputSpec]
    params: Mapping[str, ParamSpec]
    modes: tuple[Mode, ...] = ()
    provider_ids: Mapping[str, str] = field(default_factory=dict)

    def mode_for(self, params: Mapping[str, Any]) -> Mode | None:
        """The mode that ``params`` select, or None for the model's default behaviour."""
        for mode in self.modes:
            if all(params.get(key, self.params[key].default) == value for key, value in mode.when.items()):
                return mode
        return None

    def inputs_for(self, params: Mapping[str, Any]) -> Mapping[str, InputSpec]:
        """Input slots in effect for ``params``."""
        mode = self.mode_for(params)
        return mode.inputs if mode else self.inputs

    def outputs_for(self, params: Mapping[str, Any]) -> Mapping[str, OutputSpec]:
        """Output slots in effect for ``params``."""
        mode = self.mode_for(params)
        return mode.outputs if mode else self.outputs

    def image_count(self, params: Mapping[str, Any]) -> int:
        """How many images the step asks for (an upper bound where ``up_to`` is set)."""
        spec = self.outputs_for(params).get("images")
        if spec is None:
            return 0
        if spec.count_param is None:
            return 1
        return int(params.get(spec.count_param, self.params[spec.count_param].default))

    def with_defaults(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` completed with the documented defaults, so requests never rely on a service default."""
        mode = self.mode_name(params)
        completed = {
            name: spec.default
            for name, spec in self.params.items()
            if spec.default is not None and spec.applies_in(mode)
        }
        completed.update(params)
        return completed

    def mode_name(self, params: Mapping[str, Any]) -> str:
        """Name of the mode ``params`` select; ``"default"`` when none."""
        mode = self.mode_for(params)
        return mode.name if mode else "default"


def _input_specs(raw: Mapping[str, Any]) -> dict[str, InputSpec]:
    specs: dict[str, InputSpec] = {}
    for name, data in raw.items():
        data = data or {}
        if name == "images":
            minimum, maximum = int(data.get("min", 0)), int(data.get("max", 1))
        else:
            minimum, maximum = (1 if data.get("required") else 0), 1
        specs[name] = InputSpec(name, minimum, maximum, data.get("min_side"), data.get("max_side"))
    return specs


def _output_specs(raw: Mapping[str, Any]) -> dict[str, OutputSpec]:
    return {
        name: OutputSpec(name, (data or {}).get("count"), bool((data or {}).get("up_to", False)))
        for name, data in raw.items()
    }


def _param_spec(name: str, data: Mapping[str, Any]) -> ParamSpec:
    enum = data.get("enum")
    return ParamSpec(
        name=name,
        type=data["type"],
        default=data.get("default"),
        enum=tuple(enum) if enum is not None else None,
        minimum=data.get("min"),
        maximum=data.get("max"),
        tiers=tuple(data.get("tiers", ())),
        affects_cost=bool(data.get("cost", False)),
        modes=tuple(data.get("modes", ())),
    )


def _model_spec(name: str, data: Mapping[str, Any]) -> ModelSpec:
    modes = tuple(
        Mode(
            name=mode_name,
            when=mode["when"],
            inputs=_input_specs(mode.get("inputs", data.get("inputs", {}))),
            outputs=_output_specs(mode.get("outputs", data.get("outputs", {}))),
        )
        for mode_name, mode in (data.get("modes") or {}).items()
    )
    return ModelSpec(
        name=name,
        kind=data["kind"],
        title=data.get("title", name),
        aliases=tuple(data.get("aliases", ())),
        prompt_required=bool(data.get("prompt", {}).get("required", True)),
        prompt_max_chars=int(data.get("prompt", {}).get("max_chars", 2000)),
        negative_prompt_max_chars=int(data.get("negative_prompt", {}).get("max_chars", 500)),
        inputs=_input_specs(data.get("inputs") or {}),
        outputs=_output_specs(data.get("outputs") or {}),
        params={param: _param_spec(param, spec) for param, spec in (data.get("params") or {}).items()},
        modes=modes,
        provider_ids={provider: ids["model"] for provider, ids in (data.get("providers") or {}).items()},
    )


@dataclass(frozen=True)
class Catalog:
    """All known models, looked up by canonical name or alias."""

    models: Mapping[str, ModelSpec]
    _by_name: Mapping[str, str]

    def get(self, name: str) -> ModelSpec | None:
        """The model called ``name`` (canonical or alias), or None."""
        canonical = self._by_name.get(name.strip().lower())
        return self.models[canonical] if canonical else None

    def names(self) -> list[str]:
        """Canonical model names, in catalog order."""
        return list(self.models)

    def all_param_names(self) -> set[str]:
        """Every parameter name any model accepts."""
        return {param for model in self.models.values() for param in model.params}


@functools.cache
def load_catalog() -> Catalog:
    """The catalog shipped with wanflow (parsed once per process)."""
    text = resources.files("wanflow.catalog").joinpath("models.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)["models"]
    models = {name: _model_spec(name, data) for name, data in raw.items()}
    by_name: dict[str, str] = {}
    for name, model in models.items():
        for alias in (name, *model.aliases):
            by_name[alias.lower()] = name
    return Catalog(models, by_name)
