"""The application: the one workflow behind ``wanflow run``, ``plan`` and ``explain``, the Python
API, and (for its unit) a cluster worker. The CLI parses its flags into these keywords, calls
one function, and prints what comes back.

    import wanflow
    the_plan = wanflow.plan("pipeline.yaml", batch="rows.csv")          # every unit, its decision and cost
    result = wanflow.run("pipeline.yaml", vars={"product": "boot"}, provider="dashscope", budget=2.0)
    result = await wanflow.arun("pipeline.yaml")                       # inside a running event loop

A run, in order (nothing else writes this sequence):

1. the project: the nearest folder above the pipeline file with ``wanflow.toml`` or ``.wanflow/``,
   its wanflow.toml checked;
2. the pipeline loaded (when given a path), the options, the providers, the instances (matrix
   combinations or batch rows; a plain pipeline is one instance);
3. the plan, and its budget check;
4. the API keys, then the paid-run confirmation hook;
5. the preflight: every folder the run writes, and the claim on ``out/<pipeline>/``;
6. execution of every instance (in this process or on a Dask cluster);
7. the batch record, the lockfile and the HTML report.
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import sniffio

from wanflow._exceptions import UsageError
from wanflow.execute.batch import BatchResult
from wanflow.execute.instance import Reporter
from wanflow.pipelines.instances import Instance, RejectedRow
from wanflow.pipelines.model import Pipeline
from wanflow.planning.options import RunOptions
from wanflow.planning.planner import Plan, build_plan
from wanflow.providers.base import Provider
from wanflow.providers.registry import PAID_PROVIDERS, ProviderFactory, close_providers, create_providers
from wanflow.records.results import RunResult
from wanflow.state.workspace import Workspace

PipelineLike = Pipeline | str | os.PathLike[str]
Steps = bool | str | Iterable[str]  # fresh / reseed: True for every step, or the steps named


@dataclass
class Prepared:
    """A loaded pipeline in its project, with the options, providers and the one plan."""

    pipeline: Pipeline
    workspace: Workspace
    options: RunOptions
    providers: dict[str, Provider]
    plan: Plan
    batch_file: Path | None = None


def prepare(
    pipeline: Pipeline | str | os.PathLike[str],
    *,
    vars: Mapping[str, Any] | None = None,
    vars_file: str | os.PathLike[str] | None = None,
    provider: str | None = None,
    allow_paid: bool = False,
    batch: str | os.PathLike[str] | None = None,
    batch_delimiter: str | None = None,
    fresh: Steps = False,
    reseed: Steps = False,
    frozen: bool = False,
    jobs: int | None = None,
    store: str | None = None,
    cluster: str | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    allow_paths: Sequence[str | os.PathLike[str]] = (),
    strict: bool = False,
    resubmit_unknown: bool = False,
    cancel_on_interrupt: bool = False,
    lock: bool = True,
    force_out: bool = False,
    handle_signals: bool = False,
    workspace: Workspace | None = None,
    providers: Mapping[str, ProviderFactory] | None = None,
) -> Prepared:
    """Steps 1-3 of the workflow: the project, the pipeline, the options, the providers and the plan.

    Nothing is generated or paid for, and no API key is needed. The keywords are the ``run``
    command's flags (``vars`` for ``--var``, ``lock=False`` for ``--no-lock``, ``allow_paths`` for
    ``--allow-path``); an unknown step or a bad value raises UsageError naming the keyword.
    """
    loaded = load(pipeline, vars=vars, vars_file=vars_file, provider=provider, strict=strict, allow_paths=allow_paths)
    workspace = workspace or Workspace.discover(project_root(loaded), state_dir=_path(state_dir), out_dir=_path(out_dir),
                                                store=store)
    options = run_options(loaded, workspace, provider=provider, allow_paid=allow_paid, fresh=fresh, reseed=reseed,
                          frozen=frozen, jobs=jobs, cluster=cluster, resubmit_unknown=resubmit_unknown,
                          cancel_on_interrupt=cancel_on_interrupt, lock=lock, force_out=force_out,
                          handle_signals=handle_signals)
    live = providers_for(loaded, options, workspace, providers, check_ready=False)
    instances, rejected = instances_for(loaded, batch, strict=strict, delimiter=batch_delimiter)
    return Prepared(loaded, workspace, options, live, build_plan(loaded, workspace, live, options, instances, rejected),
                    _path(batch))


def plan(pipeline: PipelineLike | Prepared, **choices: Any) -> Plan:
    """What a run would do, unit by unit, with each unit's decision and estimated cost.

    Takes the keywords of ``prepare`` (the ``run`` command's flags). No API key is needed and
    nothing is generated.
    """
    return _prepared(pipeline, choices).plan


def explain(pipeline: PipelineLike | Prepared, step: str | None = None, **choices: Any) -> dict[str, list[Any]]:
    """Why each unit (of each instance) would run or hit the cache, naming what changed (per instance)."""
    from wanflow.planning.explain import explain_plan

    prepared = _prepared(pipeline, choices)
    return explain_plan(prepared.plan, prepared.workspace, only=step)


def run(pipeline: PipelineLike | Prepared, *, budget: float | None = None, confirm: Callable[[Plan], None] | None = None,
        report: bool = True, reporter: Reporter | None = None, **choices: Any) -> RunResult | BatchResult:
    """Run ``pipeline`` to completion (blocking): every matrix combination or batch row.

    ``pipeline`` is a path, a loaded Pipeline, or what ``prepare`` returned. Keywords: those of
    ``prepare`` (the ``run`` command's flags), plus ``budget`` (refuse, before anything runs, a
    run that could cost more), ``confirm`` (called with the plan before a paid run no budget
    bounds; raise to refuse), ``report`` (write ``out/<pipeline>/index.html``) and ``reporter``
    (hears progress). Returns a RunResult, or a BatchResult for a matrix or batch. Inside a
    running event loop (a notebook), use ``await wanflow.arun(...)``.
    """
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        prepared = _prepared(pipeline, choices)
        if not prepared.plan.all_cached:
            return anyio.run(lambda: arun(prepared, budget=budget, confirm=confirm, report=report, reporter=reporter))
        from wanflow.execute.noop import run_cached  # the no-op fast path: no event loop, nothing generated

        _admit(prepared, budget, confirm)
        outcome = run_cached(prepared.plan, prepared.workspace, prepared.providers, reporter)
        if outcome is None:  # something needs the engine after all (a cluster, a gc holding the workspace)
            return anyio.run(lambda: _execute(prepared, report, reporter))
        return _finish(prepared, outcome, report)
    raise UsageError("wanflow.run() blocks, and an event loop is already running here (a notebook?); "
                     "use `await wanflow.arun(...)` instead")


async def arun(pipeline: PipelineLike | Prepared, *, budget: float | None = None, confirm: Callable[[Plan], None] | None = None,
               report: bool = True, reporter: Reporter | None = None, **choices: Any) -> RunResult | BatchResult:
    """``run`` for a running event loop (asyncio or trio, e.g. Jupyter): ``await wanflow.arun(pipeline)``."""
    prepared = _prepared(pipeline, choices)
    _admit(prepared, budget, confirm)
    return await _execute(prepared, report, reporter)


async def _execute(prepared: Prepared, report: bool, reporter: Reporter | None) -> RunResult | BatchResult:
    """Step 6 and 7, once admitted: execute the plan, close the providers, finish."""
    from wanflow.execute.engine import execute

    try:
        outcome = await execute(prepared.plan, prepared.workspace, prepared.providers, reporter)
    finally:
        with anyio.CancelScope(shield=True):
            await close_providers(prepared.providers)
    return _finish(prepared, outcome, report)


def _admit(prepared: Prepared, budget: float | None, confirm: Callable[[Plan], None] | None) -> None:
    """Steps 3-5: the budget, the paid-run choice, the API keys, the confirmation and the preflight."""
    from wanflow.execute.preflight import prepare_run

    the_plan, workspace, providers = prepared.plan, prepared.workspace, prepared.providers
    the_plan.check_budget(budget)  # before asking for keys: a budget needs none
    paid = sorted(name for name, made in providers.items() if made.paid)
    if paid and not prepared.options.allow_paid:
        raise UsageError(f"this run would spend money on {', '.join(paid)}; nothing was run. Choose it explicitly with "
                         f"provider={paid[0]!r} (--provider {paid[0]}) or allow_paid=True (--allow-paid), or preview "
                         "for free with provider='local'")
    for made in providers.values():
        ready = getattr(made, "check_ready", None)
        if ready is not None:
            ready()
    _refuse_unserved(the_plan, prepared.pipeline, providers)
    if paid and confirm is not None and budget is None:
        confirm(the_plan)
    prepare_run(workspace, prepared.pipeline, [instance.name for instance in the_plan.instances if the_plan.batch],
                prepared.options.write_lock)


def _refuse_unserved(the_plan: Plan, pipeline: Pipeline, providers: Mapping[str, Provider]) -> None:
    """Refuse the run, before anything is spent, when a unit that would run goes to a provider that
    cannot serve its model as configured (s2v outside Beijing): earlier steps must not be paid for."""
    from wanflow.planning.decision import SPENDS

    problems: dict[str, list[str]] = {}
    for units in the_plan.units.values():
        for unit in units:
            serving = getattr(providers.get(unit.provider), "serving_problem", None)
            step = pipeline.steps.get(unit.step_id.split("[")[0])
            if unit.status in SPENDS and serving is not None and step is not None and (problem := serving(step.model)):
                problems.setdefault(problem, []).append(unit.step_id)
    if problems:
        raise UsageError("; ".join(f"steps {', '.join(sorted(set(steps)))}: {problem}" for problem, steps in problems.items()))


def _prepared(pipeline: PipelineLike | Prepared, choices: Mapping[str, Any]) -> Prepared:
    """``prepare(pipeline, **choices)``, or what an earlier ``prepare`` returned (then without choices)."""
    if isinstance(pipeline, Prepared):
        if choices:
            raise UsageError(f"{', '.join(choices)}: already chosen by prepare(); pass them there")
        return pipeline
    known = {parameter.name for parameter in _CHOICES}
    for keyword in choices:
        if keyword not in known:
            close = difflib.get_close_matches(keyword, known, n=1)
            raise UsageError(f"unknown keyword '{keyword}'" + (f"; did you mean '{close[0]}'?" if close else "")
                             + f" (known: {', '.join(sorted(known))})")
    return prepare(pipeline, **choices)


def _finish(prepared: Prepared, outcome: BatchResult, report: bool) -> RunResult | BatchResult:
    """Step 7: the batch record, the lockfile, the shared store's copy of the records, the report."""
    from wanflow.records import lockfile
    from wanflow.records.summary import record_run

    the_plan, workspace = prepared.plan, prepared.workspace
    if prepared.options.write_lock:
        lockfile.write_results(the_plan.pipeline, [(i.pipeline, i.name) for i in the_plan.instances], outcome.instances)
    run = record_run(workspace, the_plan, outcome, prepared.batch_file)
    if workspace.shared is not None:
        for one in outcome.instances.values():
            workspace.shared.push_run(workspace.runs_dir / f"{one.run_id}.json", workspace.identity)
    if report and run is not None and (workspace.config().get("run") or {}).get("report") is not False:
        outcome.report_path, outcome.report_error = _write_report(workspace, run, the_plan.pipeline)
    if the_plan.batch:
        return outcome
    result = outcome.instances.get(the_plan.instances[0].name)
    if result is None:  # stopped before the instance began (a cluster's Ctrl-C)
        raise KeyboardInterrupt
    result.report_path, result.report_error = outcome.report_path, outcome.report_error
    return result


def _write_report(workspace: Workspace, run: Any, pipeline: Pipeline) -> tuple[Path | None, str | None]:
    try:
        from wanflow.report.writer import write_report

        return write_report(workspace, run, pipeline=pipeline), None
    except Exception as error:  # the run itself is done and recorded; a report problem must not fail it
        return None, f"{type(error).__name__}: {error}"


def run_options(pipeline: Pipeline, workspace: Workspace, *, provider: str | None = None, allow_paid: bool = False,
                fresh: Steps = False, reseed: Steps = False, frozen: bool = False, jobs: int | None = None,
                cluster: str | None = None, resubmit_unknown: bool = False, cancel_on_interrupt: bool = False,
                lock: bool = True, force_out: bool = False, handle_signals: bool = False) -> RunOptions:
    """The run's options from the keywords, checked (a UsageError names the keyword)."""
    provider = provider or pipeline.provider_override
    if provider is not None and pipeline.provider_override not in (None, provider):
        raise UsageError(f"provider={provider!r}, but the pipeline was loaded for provider={pipeline.provider_override!r}")
    fresh_all, fresh_steps = _steps(pipeline, "fresh", fresh)
    reseed_all, reseed_steps = _steps(pipeline, "reseed", reseed)
    jobs = jobs if jobs is not None else (workspace.config().get("run") or {}).get("jobs") or 4
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise UsageError(f"jobs must be a whole number of at least 1 (--jobs); got {jobs!r}")
    return RunOptions(
        jobs=jobs, fresh_all=fresh_all, fresh_steps=fresh_steps, provider_override=provider,
        allow_paid=allow_paid or provider in PAID_PROVIDERS or os.environ.get("WANFLOW_ALLOW_PAID", "") == "1",
        resubmit_unknown=resubmit_unknown, cancel_on_interrupt=cancel_on_interrupt, handle_signals=handle_signals,
        frozen=frozen, reseed_all=reseed_all, reseed_steps=reseed_steps, write_lock=lock, cluster=cluster,
        force_out=force_out,
    )


def providers_for(pipeline: Pipeline, options: RunOptions, workspace: Workspace,
                  factories: Mapping[str, ProviderFactory] | None = None, check_ready: bool = True) -> dict[str, Provider]:
    """The providers the pipeline's steps will use (raises UsageError before anything runs;
    ``check_ready=False`` lets planning go on without API keys)."""
    from wanflow.pipelines.resolve import choose_provider

    names = {choose_provider(pipeline, step, options.provider_override) for step in pipeline.steps.values()}
    return create_providers(names, factories, check_ready, project=workspace.config())


def instances_for(pipeline: Pipeline, batch: str | os.PathLike[str] | None = None, *, strict: bool = False,
                  delimiter: str | None = None) -> tuple[list[Instance] | None, list[RejectedRow]]:
    """The matrix combinations or batch rows to run (None for a plain pipeline), and rejected rows."""
    if batch is None and not pipeline.matrix:
        return None, []
    from wanflow.pipelines.instances import expand

    return expand(pipeline, Path(batch) if batch is not None else None, strict=strict, delimiter=delimiter)


def load(pipeline: Pipeline | str | os.PathLike[str], *, vars: Mapping[str, Any] | None = None,
         vars_file: str | os.PathLike[str] | None = None, provider: str | None = None, strict: bool = False,
         allow_paths: Sequence[str | os.PathLike[str]] = ()) -> Pipeline:
    """Load and check a pipeline file (and its project's wanflow.toml and the user config); a loaded
    Pipeline is returned as it is."""
    from wanflow.project.config_check import check_project, check_user_config
    from wanflow.project.settings import user_config_path

    check_user_config(user_config_path())  # a misspelt key in the user's config is never silently ignored

    if isinstance(pipeline, Pipeline):
        if vars or vars_file is not None or allow_paths:
            raise UsageError("vars, vars_file and allow_paths apply when a pipeline is loaded: pass its path, or give "
                             "them to wanflow.load_pipeline()")
        check_project(project_root(pipeline))
        return pipeline
    from wanflow.pipelines.load import load_pipeline

    check_project(project_root(Path(pipeline)))
    return load_pipeline(Path(pipeline), overrides=dict(vars or {}), vars_file=_path(vars_file),
                         provider_override=provider, strict=strict, allowed_paths=tuple(Path(folder) for folder in allow_paths))


def project_root(pipeline: Pipeline | Path) -> Path:
    """The pipeline's project: the nearest folder at or above its file with wanflow.toml or .wanflow/;
    for a pipeline in no project, the current folder's (as a project-less run always did)."""
    from wanflow.project.locate import find_project_root, project_of

    path = pipeline.path if isinstance(pipeline, Pipeline) else pipeline
    return project_of(path) or find_project_root(Path.cwd().resolve())


def _steps(pipeline: Pipeline, keyword: str, value: Steps) -> tuple[bool, frozenset[str]]:
    """``fresh`` / ``reseed``: (every step?, the steps named)."""
    if isinstance(value, bool):
        return value, frozenset()
    names = frozenset([value] if isinstance(value, str) else value)
    unknown = sorted(names - set(pipeline.steps))
    if unknown:
        raise UsageError(f"{keyword} (--{keyword}): unknown step {', '.join(unknown)} (steps: {', '.join(pipeline.steps)})")
    return False, names


def _path(value: str | os.PathLike[str] | None) -> Path | None:
    return Path(value) if value is not None else None


# plan, explain, run and arun take prepare's keywords: show them in help() and inspect.signature.
_CHOICES = [parameter for parameter in inspect.signature(prepare).parameters.values() if parameter.kind is parameter.KEYWORD_ONLY]
for _function in (plan, explain, run, arun):
    _own = [parameter for parameter in inspect.signature(_function).parameters.values()
            if parameter.kind is not parameter.VAR_KEYWORD]
    setattr(_function, "__signature__", inspect.signature(_function).replace(parameters=[*_own, *_CHOICES]))  # noqa: B010


def pick(pipeline: str | os.PathLike[str], step: str, index: int, *, instance: str = "default") -> str:
    """Keep candidate ``index`` as the choice of the ``op: pick`` step ``step`` (of ``instance``) in
    the lockfile; returns what was recorded. ``step`` names an item of a pick that fans out as
    ``best[1]``. UsageError for a step that is not a pick, an unknown matrix or batch instance, or an
    index outside the candidates the last run saw."""
    from wanflow.records.pick import record_choice

    loaded = load(pipeline)
    matrix = [found.name for found in (instances_for(loaded)[0] or [])] if loaded.matrix else None
    return record_choice(loaded, step, index, instance, matrix)
