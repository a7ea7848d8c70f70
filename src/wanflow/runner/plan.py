"""Plan a run without running it: which steps are cached, which would run, and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

from wanflow.catalog.pricing import estimate
from wanflow.pipelines.load import placeholder_outputs
from wanflow.pipelines.model import Pipeline
from wanflow.pipelines.resolve import resolve_step
from wanflow.pipelines.templating import StepOutputs
from wanflow.providers.base import Provider
from wanflow.runner.history import RequestHistory
from wanflow.runner.keys import cache_key
from wanflow.runner.media_inputs import RuntimeMedia
from wanflow.runner.scheduler import RunOptions, forced_reason, template_outputs
from wanflow.runner.workspace import Workspace

PlanStatus = Literal["cached", "run", "maybe"]


@dataclass
class PlannedStep:
    """One step's fate in the planned run.

    ``maybe``: an upstream step will run first; this one is cached only if that yields
    byte-identical outputs.
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
    return round(sum(step.estimated_usd for step in planned if step.status != "cached"), 6)


def plan_pipeline(
    pipeline: Pipeline, workspace: Workspace, providers: Mapping[str, Provider], options: RunOptions | None = None
) -> list[PlannedStep]:
    """Resolve every step as far as the cache allows and say what a run would do."""
    options = options or RunOptions()
    media = RuntimeMedia(pipeline, options.provider_override, store=None)
    history = RequestHistory(workspace.index_dir, pipeline.name)
    cache = workspace.cache
    prices = workspace.price_overrides
    known: dict[str, StepOutputs] = {}  # real outputs of steps the cache already has
    stand_ins: dict[str, StepOutputs] = {}
    planned: list[PlannedStep] = []
    for step_id in pipeline.order():
        step = pipeline.steps[step_id]
        waiting = [dep for dep in step.depends_on if dep not in known]
        upstream = {**stand_ins, **known}
        request, _ = resolve_step(pipeline, step, upstream, media, options.provider_override)
        assert request is not None, "load_pipeline already checked every step"
        provider = providers[request.provider]
        cost = estimate(step.model, request.params, request.provider, prices)
        if waiting:
            stand_ins[step_id] = placeholder_outputs(step, request.params)
            planned.append(
                PlannedStep(step_id, step.model.name, request.provider, "maybe",
                            f"after {', '.join(waiting)} run{'s' if len(waiting) == 1 else ''}; cached if their outputs are unchanged",
                            request.seed, None, cost.usd, cost.basis)
            )
            continue
        key = cache_key(request, provider.cache_salt)
        forced = forced_reason(step, options)
        entry = None if forced else cache.lookup(key, origin=f"steps.{step_id}")
        if entry is not None:
            known[step_id] = template_outputs(step, entry.outputs)
            planned.append(PlannedStep(step_id, step.model.name, request.provider, "cached",
                                       "same request as a stored result", request.seed, key, 0.0, "cached"))
        else:
            stand_ins[step_id] = placeholder_outputs(step, request.params)
            reason = forced or history.explain_miss(step_id, key, request.canonical())
            planned.append(PlannedStep(step_id, step.model.name, request.provider, "run", reason, request.seed, key,
                                       cost.usd, cost.basis))
    return planned

