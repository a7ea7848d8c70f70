"""Plan a run without running it: which steps are cached, which would run, and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from wanflow.catalog.pricing import estimate
from wanflow.pipelines.instances import Instance
from wanflow.pipelines.load import fan_in, placeholder_outputs
from wanflow.pipelines.model import Pipeline, StepSpec
from wanflow.pipelines.resolve import evaluate_for_each, evaluate_when, resolve_step
from wanflow.pipelines.templating import StepOutputs
from wanflow.providers.base import Provider
from wanflow.runner.history import RequestHistory, history_name
from wanflow.runner.keys import cache_key
from wanflow.runner.media_inputs import RuntimeMedia
from wanflow.runner.scheduler import RunOptions, forced_reason, template_outputs
from wanflow.runner.workspace import Workspace

PlanStatus = Literal["cached", "run", "shared", "maybe", "skip"]


@dataclass
class PlannedStep:
    """One step's fate in the planned run.

    ``maybe``: an upstream step will run first; this one is cached only if that yields
    byte-identical outputs. ``shared``: an earlier step (of this instance or another one) makes
    the identical request, so this one reuses that result and costs nothing more.
    """

    step_id: str
    model: str
    provider: str
    status: PlanStatus
    reason: str
    seed: int
    cache_key: str | None
    estimated_usd: float = 0.0
    estimate_basis: str = ""


def total_estimate(planned: list[PlannedStep]) -> float:
    """Estimated cost of everything that would (or might) run."""
    return round(sum(step.estimated_usd for step in planned if step.status in ("run", "maybe")), 6)


def plan_pipeline(
    pipeline: Pipeline, workspace: Workspace, providers: Mapping[str, Provider], options: RunOptions | None = None
) -> list[PlannedStep]:
    """Resolve every step (every item of a ``for_each`` step) as far as the cache allows, and say
    what a run would do and why."""
    options = options or RunOptions()
    return _plan(pipeline, workspace, providers, options, {})


def plan_instances(
    instances: list[Instance], workspace: Workspace, providers: Mapping[str, Provider], options: RunOptions | None = None
) -> dict[str, list[PlannedStep]]:
    """Plan every instance of a matrix or batch run. A request several instances share is planned
    to run once (in the first instance that makes it) and is ``shared`` everywhere else."""
    options = options or RunOptions()
    first_makers: dict[str, str] = {}
    return {instance.name: _plan(instance.pipeline, workspace, providers, replace(options, instance=instance.name),
                                 first_makers)
            for instance in instances}


def _plan(pipeline: Pipeline, workspace: Workspace, providers: Mapping[str, Provider], options: RunOptions,
          first_makers: dict[str, str]) -> list[PlannedStep]:
    planner = _Planner(pipeline, workspace, providers, options, first_makers)
    for step_id in pipeline.order():
        planner.plan_step(pipeline.steps[step_id])
    return planner.planned


class _Planner:
    def __init__(self, pipeline: Pipeline, workspace: Workspace, providers: Mapping[str, Provider], options: RunOptions,
                 first_makers: dict[str, str]) -> None:
        self.pipeline = pipeline
        self.providers = providers
        self.options = options
        self.first_makers = first_makers  # cache key -> the unit planned to generate it
        self.media = RuntimeMedia(pipeline, options.provider_override, store=None)
        self.history = RequestHistory(workspace.index_dir, history_name(pipeline, options.instance))
        self.cache = workspace.cache
        self.prices = workspace.price_overrides
        self.known: dict[str, StepOutputs] = {}  # real outputs of steps the cache already has
        self.stand_ins: dict[str, StepOutputs] = {}
        self.skipped: set[str] = set()
        self.planned: list[PlannedStep] = []
        self.resolved_params: dict[str, dict] = {}  # rendered params (``n: "{{ vars.count }}"`` is a number here)

    def plan_step(self, step: StepSpec) -> None:
        upstream = {**self.stand_ins, **self.known}
        waiting = [dep for dep in step.depends_on if dep not in self.known]
        if any(dep in self.skipped for dep in step.depends_on) or (not waiting and not evaluate_when(self.pipeline, step, upstream)[0]):
            self.skipped.add(step.id)
            self.planned.append(PlannedStep(step.id, step.model.name, "-", "skip", "its condition (or an upstream one) is false", 0, None))
            return
        items, _ = evaluate_for_each(self.pipeline, step, upstream)
        units = [None] if items is None else list(enumerate(items))
        outputs: list[StepOutputs | None] = [self._plan_unit(step, unit, upstream, waiting) for unit in units]
        params = self.resolved_params.get(step.id) or step.model.with_defaults({})
        if all(output is not None for output in outputs):
            real = [output for output in outputs if output is not None]
            self.known[step.id] = real[0] if items is None else fan_in(step, real)
        else:
            self.stand_ins[step.id] = placeholder_outputs(step, params, None if items is None else len(items))

    def _plan_unit(self, step: StepSpec, unit: tuple[int, object] | None, upstream: dict[str, StepOutputs],
                   waiting: list[str]) -> StepOutputs | None:
        name = step.id if unit is None else f"{step.id}[{unit[0]}]"
        request, _ = resolve_step(self.pipeline, step, upstream, self.media, self.options.provider_override, unit)
        assert request is not None, "load_pipeline already checked every step"
        self.resolved_params[step.id] = dict(request.params)
        cost = estimate(step.model, request.params, request.provider, self.prices)
        if waiting:
            reason = f"after {', '.join(waiting)} run{'s' if len(waiting) == 1 else ''}; cached if their outputs are unchanged"
            self.planned.append(PlannedStep(name, step.model.name, request.provider, "maybe", reason, request.seed, None,
                                            cost.usd, cost.basis))
            return None
        key = cache_key(request, self.providers[request.provider].cache_salt)
        forced = forced_reason(step, self.options)
        entry = None if forced else self.cache.lookup(key, origin=f"steps.{name}")
        if entry is not None:
            self.planned.append(PlannedStep(name, step.model.name, request.provider, "cached",
                                            "same request as a stored result", request.seed, key, 0.0, "cached"))
            return template_outputs(step, entry.outputs)
        maker = self.first_makers.get(key)
        if maker is not None:
            self.planned.append(PlannedStep(name, step.model.name, request.provider, "shared",
                                            f"same request as {maker}: generated once for the whole run", request.seed,
                                            key, 0.0, "shared"))
            return None
        self.first_makers[key] = name if self.options.instance == "default" else f"{self.options.instance}/{name}"
        reason = forced or self.history.explain_miss(name, key, request.canonical())
        self.planned.append(PlannedStep(name, step.model.name, request.provider, "run", reason, request.seed, key,
                                        cost.usd, cost.basis))
        return None
