"""Typed views of models.yaml: models, their params, inputs, outputs, modes, media rules and prices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# t2i text-to-image, edit image editing, i2v image-to-video, t2v text-to-video, kf2v first/last
# frame to video, r2v reference clips to video. The kind picks the preview renderer only: request
# shapes, input fields and rules are data.
Kind = Literal["t2i", "edit", "i2v", "t2v", "kf2v", "r2v", "vace", "s2v", "animate", "videoedit", "flf2v", "op"]
# vace: VACE editing functions (wan2.1-vace-plus, and open weights); s2v speech-to-video; animate a
# character from a driving clip; videoedit: instruction edit of a clip; flf2v: open weights only;
# op: a local media operation (wanflow.ops)
DEFAULT_MODE = "default"


@dataclass(frozen=True)
class ParamSpec:
    """One request parameter and every documented rule about it."""

    name: str
    type: str  # integer | boolean | string | size
    default: Any = None
    enum: tuple[Any, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    options: tuple[Any, ...] = ()  # documented preferred values; others in range only warn
    tiers: tuple[str, ...] = ()
    pixels: tuple[int, int] | None = None
    aspect: tuple[float, float] | None = None
    round_to: int | None = None
    disputed: Mapping[str, Any] = field(default_factory=dict)
    recommended: tuple[str, ...] = ()
    codes: Mapping[str, str] = field(default_factory=dict)
    code: str | None = None
    affects_cost: bool = False
    modes: tuple[str, ...] = ()
    outside_modes: str | None = None  # "error" or "warn" when set outside ``modes``
    outside_code: str | None = None
    warn_default: str | None = None
    effective_only_with: Mapping[str, Any] = field(default_factory=dict)
    aspect_from: str | None = None  # a tier size takes this input's aspect ("last_input": the last image)
    by_tier: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # video sizes W*H by resolution tier
    requires: Mapping[Any, Mapping[str, Any]] = field(default_factory=dict)  # value -> other params it needs
    fixed: bool = False  # the model has one value (kf2v's 5 s)
    send: bool = True  # false for a value the model fixes (kf2v's 5 s): checked and recorded, never sent
    required: bool = False  # the step must set it (VACE's ``function``)
    items: tuple[Any, ...] | None = None  # type list: the allowed values of each item
    same_length_as: str | None = None  # type list: as many items as this input has (VACE's obj_or_bg)
    at_most: Mapping[Any, int] = field(default_factory=dict)  # type list: an item value's largest count
    from_input: str | None = None  # set from this input's seconds, rounded up (s2v's duration is its audio's)
    # narrower rules while an input has items: {input, tiers, pixels} (2.7-image-pro: 4K only without images)
    with_inputs: Mapping[str, Any] = field(default_factory=dict)

    def applies_in(self, mode: str) -> bool:
        """Whether the parameter means anything in ``mode`` (``"default"`` when no mode is selected)."""
        return not self.modes or mode in self.modes

    def describe_allowed(self) -> str:
        """Human wording of the allowed values, for messages and docs."""
        if self.type == "list":
            return "a list of " + ", ".join(map(str, self.items or ())) + (
                f", one per item of {self.same_length_as}" if self.same_length_as else "")
        if self.fixed and self.minimum is not None:
            return f"{self.minimum} only (fixed by the model)"
        if self.by_tier:
            return "; ".join(f"{tier}: {', '.join(sizes)}" for tier, sizes in self.by_tier.items())
        if self.enum is not None:
            return "one of " + ", ".join(str(value) for value in self.enum)
        if self.type == "boolean":
            return "true or false"
        if self.type == "size":
            parts = ["'WIDTH*HEIGHT'"]
            if self.pixels:
                parts.append(f"total pixels {_pixels_text(self.pixels[0])} to {_pixels_text(self.pixels[1])}")
            if self.aspect:
                parts.append("aspect 1:4 to 4:1")
            text = ", ".join(parts)
            return text + (f"; or {' / '.join(self.tiers)}" if self.tiers else "")
        if self.minimum is not None and self.maximum is not None:
            if self.minimum == self.maximum:
                return f"exactly {self.minimum}"
            return f"{'a number' if self.type == 'number' else 'an integer'} from {self.minimum} to {self.maximum}"
        if self.minimum is not None:
            return f"{'a number' if self.type == 'number' else 'an integer'} of at least {self.minimum}"
        return f"a {self.type}"


def _pixels_text(pixels: int) -> str:
    side = round(pixels ** 0.5)
    return f"{side}*{side}" if side * side == pixels else f"{pixels:,}"


@dataclass(frozen=True)
class MediaRules:
    """Rules shared by every input of one media kind."""

    kind: str
    formats: tuple[str, ...]
    max_bytes: int
    alpha: bool = True
    min_seconds: float | None = None
    max_seconds: float | None = None


@dataclass(frozen=True)
class InputSpec:
    """A media input slot: how many items, which media, pixel limits."""

    name: str
    minimum: int = 0
    maximum: int = 1
    media: str = "image"
    min_side: int | None = None
    max_side: int | None = None
    code: str | None = None
    ignored_when: Mapping[str, Any] = field(default_factory=dict)
    many: bool = False  # a list in the DSL and the request (images, references)
    rules: str = ""  # the media rules entry that applies (default: the one named after ``media``)
    # Open weights run locally: their own media rules by kind, not the services' upload limits.
    # ``media`` may then name two kinds ("video or image": VACE's mask, a clip or one still).
    local_rules: Mapping[str, MediaRules] | None = None

    @property
    def rules_key(self) -> str:
        """Key of the catalog's media rules for this slot."""
        return self.rules or self.media

    def accepts(self, kind: str) -> bool:
        """Whether an item of media ``kind`` (``image``, ``video``) fits this slot."""
        return kind in self.media.split(" or ")


@dataclass(frozen=True)
class OutputSpec:
    """An output slot; ``count_param`` names the param that sets the image count."""

    name: str
    count_param: str | None = None
    up_to: bool = False


@dataclass(frozen=True)
class PriceSpec:
    """How a model is billed: ``usd`` (or ``usd_by`` a param's value) per unit, times ``count``."""

    per: str  # image | second
    count_param: str
    usd: float | None = None
    usd_by: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    mode_counts: Mapping[str, str] = field(default_factory=dict)
    source: str = ""  # the public material the figures were checked against; empty: an unverified estimate


@dataclass(frozen=True)
class Mode:
    """A parameter-selected variant (e.g. interleaved output) with its own inputs, outputs and params."""

    name: str
    when: Mapping[str, Any]
    inputs: Mapping[str, InputSpec]
    outputs: Mapping[str, OutputSpec]
    params: Mapping[str, ParamSpec]
    any_of: tuple[tuple[str, ...], ...] = ()  # input groups of which at least one must be given
    exclusive: tuple[tuple[str, ...], ...] = ()  # input groups of which at most one may be given


@dataclass(frozen=True)
class TextSpec:
    """Limits of a prompt field."""

    required: bool
    max_chars: int
    code: str | None = None
    names: tuple[str, str] | None = None  # (input, word): r2v prompts call references character1, character2, ...


@dataclass(frozen=True)
class ProviderModel:
    """How one service names and shapes a model's requests."""

    model: str
    path: str | None = None
    shape: str = "messages"
    negative_prompt_in: str = "parameters"
    result: str | None = None
    # shape ``fields``: the DSL input name -> the service's input field (``first_frame: first_frame_url``)
    fields: Mapping[str, str] = field(default_factory=dict)
    # other field names public clients send for the same input; the simulator accepts them too
    field_aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # params the service reads from ``input`` rather than ``parameters`` (VACE's ``function``)
    input_params: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()  # the only regions that serve the model (s2v: beijing); empty: every region
    concurrent: int | None = None  # the documented tasks at once per account, when lower than the service's


@dataclass(frozen=True)
class PreCheck:
    """A cheap synchronous check run before the paid create (s2v's face check): a failed one stops the step."""

    service: str  # the service that documents the check
    model: str
    path: str
    input: str  # the step input it checks
    field: str  # that input's field in the check's body
    passed: str  # the output field that says it passed
    usd: float


@dataclass(frozen=True)
class OpenWeights:
    """An open-weights release run by the ``diffusers`` provider: where its weights are and what
    it was trained at. ``source`` is a Hugging Face repo id or an absolute folder path;
    ``identity`` says which weights exactly (a folder's content hash, a repo's commit)."""

    source: str
    pipeline_class: str
    sizes: tuple[tuple[int, int], ...] = ()
    frames: tuple[int, ...] = ()
    identity: str | None = None

    @property
    def is_folder(self) -> bool:
        """Whether the weights are a saved pipeline folder (else a hub repo id)."""
        return self.source.startswith("/")


@dataclass(frozen=True)
class ModelSpec:
    """Everything the catalog knows about one model."""

    name: str
    kind: Kind
    title: str
    aliases: tuple[str, ...]
    prompt: TextSpec
    negative_prompt: TextSpec
    seed_code: str | None
    inputs: Mapping[str, InputSpec]
    outputs: Mapping[str, OutputSpec]
    params: Mapping[str, ParamSpec]
    modes: tuple[Mode, ...] = ()
    price: PriceSpec | None = None
    providers: Mapping[str, ProviderModel] = field(default_factory=dict)
    open_weights: OpenWeights | None = None
    precheck: PreCheck | None = None
    any_of: tuple[tuple[str, ...], ...] = ()  # as Mode.any_of, when no mode is selected
    exclusive: tuple[tuple[str, ...], ...] = ()

    @property
    def video(self) -> bool:
        """Whether the model makes a video (polling pace, duration learning, result checks)."""
        return "video" in self.outputs

    def resolution_tier(self, params: Mapping[str, Any]) -> str | None:
        """The resolution tier (``720P``) a video request asks for: its ``resolution``, or its size's tier."""
        if isinstance(params.get("resolution"), str):
            return str(params["resolution"])
        size = self.params.get("size")
        if size is not None and size.by_tier:
            wanted = params.get("size", size.default)
            return next((tier for tier, sizes in size.by_tier.items() if wanted in sizes), None)
        return None

    def mode_for(self, params: Mapping[str, Any]) -> Mode | None:
        """The mode that ``params`` select, or None for the model's default behaviour."""
        for mode in self.modes:
            if all(params.get(key, self.params[key].default) == value for key, value in mode.when.items()):
                return mode
        return None

    def mode_name(self, params: Mapping[str, Any]) -> str:
        """Name of the mode ``params`` select; ``"default"`` when none."""
        mode = self.mode_for(params)
        return mode.name if mode else DEFAULT_MODE

    def param_spec(self, name: str, params: Mapping[str, Any]) -> ParamSpec | None:
        """The rules for ``name`` in the mode ``params`` select."""
        mode = self.mode_for(params)
        if mode is not None and name in mode.params:
            return mode.params[name]
        return self.params.get(name)

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
        count_spec = self.param_spec(spec.count_param, params)
        return int(params.get(spec.count_param, count_spec.default if count_spec else 1))

    def with_defaults(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` completed with the documented defaults of the selected mode.

        Requests then never rely on a service-side default, and the record says what was asked.
        """
        mode = self.mode_name(params)
        completed: dict[str, Any] = {}
        for name in self.params:
            spec = self.param_spec(name, params)
            if spec is not None and spec.default is not None and spec.applies_in(mode):
                completed[name] = spec.default
        completed.update(params)
        return completed


def parse_param(name: str, data: Mapping[str, Any]) -> ParamSpec:
    """Build a ParamSpec from its YAML mapping."""
    enum = data.get("enum")
    by_tier = {str(tier): tuple(sizes) for tier, sizes in (data.get("by_tier") or {}).items()}
    if enum is None and by_tier:
        enum = [size for sizes in by_tier.values() for size in sizes]
    return ParamSpec(
        name=name,
        type=data["type"],
        default=data.get("default"),
        enum=tuple(enum) if enum is not None else None,
        minimum=data.get("min"),
        maximum=data.get("max"),
        options=tuple(data.get("options", ())),
        tiers=tuple(data.get("tiers", ())),
        pixels=tuple(data["pixels"]) if "pixels" in data else None,
        aspect=tuple(data["aspect"]) if "aspect" in data else None,
        round_to=data.get("round"),
        disputed=data.get("disputed", {}),
        recommended=tuple(data.get("recommended", ())),
        codes=data.get("codes", {}),
        code=data.get("code"),
        affects_cost=bool(data.get("cost", False)),
        modes=tuple(data.get("modes", ())),
        outside_modes=data.get("outside_modes"),
        outside_code=data.get("outside_code"),
        warn_default=data.get("warn_default"),
        effective_only_with=data.get("effective_only_with", {}),
        aspect_from=data.get("aspect_from"),
        by_tier=by_tier,
        requires=data.get("requires") or {},
        fixed=bool(data.get("fixed", False)),
        send=bool(data.get("send", True)),
        required=bool(data.get("required", False)),
        items=tuple(data["items"]) if "items" in data else None,
        same_length_as=data.get("same_length_as"),
        at_most=data.get("at_most") or {},
        from_input=data.get("from_input"),
        with_inputs=data.get("with_inputs") or {},
    )


def parse_inputs(raw: Mapping[str, Any]) -> dict[str, InputSpec]:
    """Build the input slots of a model or mode."""
    specs: dict[str, InputSpec] = {}
    for name, data in raw.items():
        data = data or {}
        many = name == "images" or bool(data.get("many", False))
        if many:
            minimum, maximum = int(data.get("min", 0)), int(data.get("max", 1))
        else:
            minimum, maximum = (1 if data.get("required") else 0), 1
        specs[name] = InputSpec(
            name=name,
            minimum=minimum,
            maximum=maximum,
            media=data.get("media", "image"),
            min_side=data.get("min_side"),
            max_side=data.get("max_side"),
            code=data.get("code"),
            ignored_when=data.get("ignored_when", {}),
            many=many,
            rules=data.get("rules", ""),
        )
    return specs


def parse_outputs(raw: Mapping[str, Any]) -> dict[str, OutputSpec]:
    """Build the output slots of a model or mode."""
    return {
        name: OutputSpec(name, (data or {}).get("count"), bool((data or {}).get("up_to", False)))
        for name, data in raw.items()
    }
