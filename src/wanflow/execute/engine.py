"""Execute a plan: every instance, in this process or on a Dask cluster; always a BatchResult."""

from __future__ import annotations

from collections.abc import Mapping

from wanflow.execute.batch import BatchResult, run_instances
from wanflow.execute.instance import Reporter
from wanflow.planning.planner import Plan
from wanflow.providers.base import Provider
from wanflow.state.workspace import Workspace


async def execute(the_plan: Plan, workspace: Workspace, providers: Mapping[str, Provider],
                  reporter: Reporter | None = None) -> BatchResult:
    """Run ``the_plan`` (the lockfile preparation, seeds and ``--frozen`` sections it made are the ones used)."""
    from wanflow.execute.cluster.address import address_for

    address = address_for(the_plan.options.cluster, workspace.config())
    if address is not None:
        from wanflow.execute.cluster.driver import execute_on_cluster

        return await execute_on_cluster(the_plan, workspace, providers, address, reporter)
    return await run_instances(the_plan, workspace, providers, reporter)
