"""How to run: the choices a user makes on the command line or as keywords of the Python API."""

from __future__ import annotations

from dataclasses import dataclass, field

from wanflow.pipelines.model import StepSpec


@dataclass(frozen=True)
class RunOptions:
    """How to run: concurrency, what to regenerate, which provider to force."""

    jobs: int = 4
    fresh_all: bool = False
    fresh_steps: frozenset[str] = field(default_factory=frozenset)
    provider_override: str | None = None
    allow_paid: bool = False
    resubmit_unknown: bool = False  # allow a new create when an earlier one's outcome is unknown
    cancel_on_interrupt: bool = False  # default: keep remote tasks running; the next run resumes them
    handle_signals: bool = False  # Ctrl-C / SIGTERM stop the run in order (the CLI turns this on)
    frozen: bool = False  # reproduce the lockfile exactly, or refuse
    reseed_all: bool = False  # draw new seeds for every step (kept in the lockfile)
    reseed_steps: frozenset[str] = field(default_factory=frozenset)
    write_lock: bool = True  # write <pipeline>.lock after a successful run
    cluster: str | None = None  # run on Dask: "local:N" or "tcp://HOST:8786" (else [cluster] address, WANFLOW_CLUSTER)
    instance: str = "default"  # the lockfile section of this run (matrix and batch runs name theirs)
    force_out: bool = False  # replace or remove hand-edited and foreign files in out/ (--force-out)


def forced_reason(step: StepSpec, options: RunOptions) -> str | None:
    """Why ``step`` must run even if its result is cached, or None."""
    if not step.cache:
        return "cache: false on this step"
    if options.fresh_all:
        return "--fresh"
    if step.id in options.fresh_steps:
        return f"--fresh {step.id}"
    return None
