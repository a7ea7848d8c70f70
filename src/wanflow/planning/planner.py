"""The plan: every unit a run would execute, with its request, seed, key, cost and decision.

``build_plan`` is the step between loading and running. It applies the lockfile (pinned and
``--reseed`` seeds, ``--frozen``) once for each instance, and asks ``decision.decide`` about each
unit (instance × step × item) with whatever is known before the run. ``plan``, ``explain``,
``--budget``, the paid-run confirmation and the Python API read it; ``execute`` (in
``wanflow._app``) runs the very same plan, so what they say and what ``run`` does cannot drift:

- templated params are resolved (``n: "{{ vars.count }}"`` is costed as the number it renders);
- a ``when:`` is evaluated wherever what it reads is known (a condition on vars always is);
- a unit fed by a step that runs first is ``run`` when its own fields changed, else
  ``run-if-inputs-change`` (an upper bound: it is cached if the inputs come out identical);
- a unit whose request another unit of the run makes first is ``shared`` and costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from wanflow._exceptions import TemplateProblem
from wanflow.catalog.pricing import estimate
from wanflow.pipelines.conditions import evaluate_for_each, evaluate_when
from wanflow.pipelines.graph import template_strings
from wanflow.pipelines.instances import Instance, RejectedRow
from wanflow.pipelines.model import MEDIA_FIELDS, Pipeline, StepSpec
from wanflow.pipelines.resolve import resolve_step
from wanflow.pipelines.static_checks import fan_in, placeholder_outputs
from wanflow.pipelines.templating import StepOutputs, referenced_steps
from wanflow.planning.decision import SPENDS, Status, decide
from wanflow.planning.media_inputs import RuntimeMedia
from wanflow.planning.options import RunOptions, forced_reason
from wanflow.planning.upstream import template_outputs
from wanflow.providers.base import Provider
from wanflow.records import lockfile
from wanflow.records.request_history import RequestHistory, history_name
from wanflow.state.keys import cache_key
from wanflow.state.workspace import Workspace

DEFAULT_INSTANCE = "default"


@dataclass
class PlannedStep:
    """One unit's fate in the planned run (see ``decision.decide``)."""

    step_id: str
    model: str
    provider: str
    status: Status
    reason: str
    seed: int | None  # None: an op step draws no seed
    cache_key: str | None
    estimated_usd: float = 0.0
    estimate_basis: str = ""
    changed: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """Every instance's units, and what the lockfile preparation decided for each instance.

    ``locked`` holds, per instance, the locked section ``--frozen`` checks against (None when not
    frozen): ``execute`` hands it to the runner instead of preparing the lockfile again, so the
    seeds ``--reseed`` drew for the plan are the seeds the run sends.
    """

    pipeline: Pipeline
    options: RunOptions
    instances: list[Instance]
    units: dict[str, list[PlannedStep]]
    locked: dict[str, dict[str, Any] | None]
    rejected: list[RejectedRow] = field(default_factory=list)
    batch: bool = False  # a matrix or batch run (instances), even of one
    # Per instance, each cached unit's resolved request and cache entry: a fully cached run's
    # bookkeeping is done from these (``execute.noop``) without resolving or looking up again.
    cached: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict, repr=False)

    @property
    def all_cached(self) -> bool:
        """Every unit of every instance is in the cache (and was planned from it)."""
        return all(unit.status == "cached" and unit.step_id in self.cached.get(name, {})
                   for name, units in self.units.items() for unit in units)

    @property
    def certain_usd(self) -> float:
        """Estimated cost of the units that surely run."""
        return round(sum(unit.estimated_usd for units in self.units.values() for unit in units if unit.status == "run"), 6)

    @property
    def upper_usd(self) -> float:
        """Estimated cost if every ``run-if-inputs-change`` unit runs too: the most the run can cost."""
        return round(sum(unit.estimated_usd for units in self.units.values() for unit in units if unit.status in SPENDS), 6)

    def check_budget(self, budget: float | None) -> None:
        """Refuse (UsageError, nothing run) when the run could cost more than ``budget``."""
        from wanflow._exceptions import UsageError

        if budget is None or self.upper_usd <= budget:
            return
        lines = [f"  {name if name != DEFAULT_INSTANCE else ''}{'/' if name != DEFAULT_INSTANCE else ''}{unit.step_id:<16} "
                 f"~${unit.estimated_usd:.2f}  {unit.status}  {unit.estimate_basis}"
                 for name, units in self.units.items() for unit in units if unit.status in SPENDS and unit.estimated_usd]
        raise UsageError(f"estimated cost ${self.upper_usd:.2f} exceeds --budget ${budget:.2f} (${self.certain_usd:.2f} for "
                         f"what surely runs, up to ${self.upper_usd:.2f} if every step whose inputs may change runs too); "
                         "nothing was run\n"
                         + "\n".join(lines))


def total_estimate(planned: list[PlannedStep]) -> float:
    """Estimated cost of everything that would (or might) run."""
    return round(sum(step.estimated_usd for step in planned if step.status in SPENDS), 6)


def build_plan(pipeline: Pipeline, workspace: Workspace, providers: Mapping[str, Provider],
               options: RunOptions | None = None, instances: list[Instance] | None = None,
               rejected: list[RejectedRow] | None = None) -> Plan:
    """Plan every instance (the pipeline itself when ``instances`` is None).

    A request several instances share is planned to run once (in the first instance that makes
    it) and is ``shared`` everywhere else.
    """
    options = options or RunOptions()
    batch = instances is not None
    instances = instances if instances is not None else [Instance(options.instance, pipeline)]
    lock_data = lockfile.read_lock(lockfile.lock_path(pipeline))
    first_makers: dict[str, str] = {}
    units: dict[str, list[PlannedStep]] = {}
    cached: dict[str, dict[str, tuple[Any, Any]]] = {}
    locked: dict[str, dict[str, Any] | None] = {}
    for instance in instances:
        instance_options = replace(options, instance=instance.name) if batch else options
        locked[instance.name] = lockfile.prepare(
            instance.pipeline, lock_data, frozen=options.frozen, reseed_all=options.reseed_all,
            reseed_steps=options.reseed_steps, provider_override=options.provider_override, instance=instance_options.instance)
        planner = _Planner(instance.pipeline, workspace, providers, instance_options, first_makers,
                           lockfile.locked_instance(lock_data, instance_options.instance))
        for step_id in instance.pipeline.order():
            planner.plan_step(instance.pipeline.steps[step_id])
        units[instance.name] = planner.planned
        cached[instance.name] = planner.cached
    return Plan(pipeline, options, instances, units, locked, list(rejected or []), batch, cached)


def own_references(step: StepSpec) -> set[str]:
    """The steps a step's own request reads (not its ``needs:`` order, not its ``when:``)."""
    found: set[str] = set()
    fields = {"prompt": step.prompt, "negative_prompt": step.negative_prompt,
              **{name: getattr(step, name) for name in MEDIA_FIELDS}, "videos": step.videos,
              "params": step.params, "seed": step.seed, "for_each": step.for_each}
    for _, text in template_strings(fields, ()):
        try:
            found.update(referenced_steps(text).steps)
        except TemplateProblem:
            return set(step.depends_on)  # load_pipeline refused dynamic references; be safe anyway
    return found & set(step.depends_on)


def when_references(step: StepSpec) -> set[str]:
    """The steps a ``when:`` condition reads."""
    if not isinstance(step.when, str):
        return set()
    try:
        return set(referenced_steps(step.when).steps)
    except TemplateProblem:
        return set(step.depends_on)


class _Planner:
    def __init__(self, pipeline: Pipeline, workspace: Workspace, providers: Mapping[str, Provider], options: RunOptions,
                 first_makers: dict[str, str], locked: dict[str, Any] | None) -> None:
        self.pipeline = pipeline
        self.providers = providers
        self.options = options
        self.first_makers = first_makers  # cache key -> the unit planned to generate it
        self.media = RuntimeMedia(pipeline, options.provider_override, store=None, stamps=workspace.input_stamps)
        self.history = RequestHistory(workspace.index_dir, history_name(pipeline, options.instance))
        self.locked = locked
        self.cache = workspace.cache
        self.prices = workspace.price_overrides
        self.known: dict[str, StepOutputs] = {}  # real outputs of steps the cache already has
        self.stand_ins: dict[str, StepOutputs] = {}  # outputs of steps that run first (not known yet)
        self.skipped: set[str] = set()
        self.planned: list[PlannedStep] = []
        self.cached: dict[str, tuple[Any, Any]] = {}  # unit -> (request, cache entry), for the units found cached
        self._static: dict[str, dict[str, Any]] | None = None
        self._params: dict[str, dict[str, Any]] = {}  # rendered params (``n: "{{ vars.count }}"`` is a number here)

    def plan_step(self, step: StepSpec) -> None:
        upstream = {**self.stand_ins, **self.known}
        skipped_deps = [dep for dep in step.depends_on if dep in self.skipped]
        if skipped_deps:
            self._skip(step, f"upstream '{skipped_deps[0]}' is skipped")
            return
        if not (when_references(step) - set(self.known)):  # all it reads is known: decide it now
            run_it, _ = evaluate_when(self.pipeline, step, upstream)
            if not run_it:
                self._skip(step, f"when: {step.when} is false")
                return
        items, _ = evaluate_for_each(self.pipeline, step, upstream)
        pending = sorted(own_references(step) - set(self.known))
        units = [None] if items is None else list(enumerate(items))
        outputs = [self._plan_unit(step, unit, upstream, pending) for unit in units]
        if all(output is not None for output in outputs):
            real = [output for output in outputs if output is not None]
            self.known[step.id] = real[0] if items is None else fan_in(step, real)
        else:
            params = self._params.get(step.id) or step.model.with_defaults({})
            self.stand_ins[step.id] = placeholder_outputs(step, params, None if items is None else len(items))

    def _skip(self, step: StepSpec, reason: str) -> None:
        self.skipped.add(step.id)
        self.planned.append(PlannedStep(step.id, step.model.name, "-", "skip", reason, 0, None))

    def _plan_unit(self, step: StepSpec, unit: tuple[int, object] | None, upstream: dict[str, StepOutputs],
                   pending: list[str]) -> StepOutputs | None:
        name = step.id if unit is None else f"{step.id}[{unit[0]}]"
        request, _ = resolve_step(self.pipeline, step, upstream, self.media, self.options.provider_override, unit)
        assert request is not None, "load_pipeline already checked every step"
        self._params[step.id] = dict(request.params)
        cost = estimate(step.model, request.params, request.provider, self.prices)
        forced = forced_reason(step, self.options)
        key = None if pending else cache_key(request, self.providers[request.provider].cache_salt)
        entry = None if key is None or forced else self.cache.lookup(key, origin=f"steps.{name}")
        made_by = self.first_makers.get(key) if key is not None else None
        decision = decide(cached=entry is not None, forced=forced, made_by=made_by, pending_inputs=pending,
                          own_changes=self._own_changes(name) if pending else [],
                          miss_reason=lambda: self.history.explain_miss(name, key or "", request.canonical()))
        if key is not None and decision.status == "run":
            self.first_makers[key] = name if self.options.instance == DEFAULT_INSTANCE else f"{self.options.instance}/{name}"
        changed = decision.changed or (self._own_changes(name) if decision.status == "run" else [])
        usd, basis = (cost.usd, cost.basis) if decision.status in SPENDS else (0.0, decision.status)
        self.planned.append(PlannedStep(name, step.model.name, request.provider, decision.status, decision.reason,
                                        request.drawn_seed, key, usd, basis, changed))
        if entry is not None and decision.status == "cached":
            self.cached[name] = (request, entry)
        return template_outputs(step, entry.outputs) if entry is not None else None

    def _own_changes(self, unit: str) -> list[str]:
        """Fields of a unit's own request (inputs aside) that differ from the lock or the last run."""
        if self._static is None:
            self._static = lockfile.static_units(self.pipeline, self.options.provider_override)
        current = self._static.get(unit)
        previous = ((self.locked or {}).get("steps") or {}).get(unit) if self.locked else self.history.previous(unit)
        if current is None or previous is None:
            return []
        differences = lockfile.compare({"steps": {unit: previous}}, {unit: current}, ignore_upstream_inputs=True)
        return list(differences[0].changes) if differences else []
