"""What a service's task list proves about a create whose answer was lost.

Two things can be proven, and only these (everything else is "unknown": stop and ask):

- **the create made exactly this task**: one listed task of the same model, unclaimed by this
  workspace, whose own create time is within seconds of the moment the create was sent;
- **the create made nothing** (proof of absence): the list demonstrably works — it shows every
  one of this workspace's own tasks of the last ``evidence_hours``, each at the time the journal or
  the records hold for it, so the list's clock, zone and filters are right, and the newest of them
  shows that the list does not lag by more than its age — and, asked again once the lost create is
  older than that newest shown task, it still has no candidate.

The list covers the whole account (every API key) and echoes no prompt, so the model, the
service's own create time and the workspace's claims are all a match can rest on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from wanflow.pipelines.request import StepRequest
from wanflow.providers.protocol import ListedTask, ServiceProtocol

OFFSET_TOLERANCE = 10.0  # seconds the clock offsets measured on several known tasks may differ (network latency)
SETTLE_MARGIN = 3.0  # seconds beyond the newest shown task's age before the list is asked again
UNPROVEN = "which does not prove that none was created (the list's clock, zone or filters may not match)"


@dataclass
class ListCheck:
    """What one look at the task list showed."""

    candidates: list[str]  # unclaimed tasks that may be the lost create's
    why: str  # why nothing was adopted (for the stop-and-ask message)
    proof: str | None = None  # set when the list proves that the create made nothing
    settle: float | None = None  # seconds to wait before asking again, when a proof of absence is in reach
    lag_bound: float | None = None  # the list lagged by at most this many seconds at the first look


async def check_list(protocol: ServiceProtocol, client: httpx.AsyncClient, auth: dict[str, str], request: StepRequest,
                     sent_at: float, known: dict[str, float], claimed: set[str],
                     lag_bound: float | None = None) -> ListCheck | None:
    """Look for the task a create sent at ``sent_at`` made; None when the service has no task list.

    ``known``: this workspace's tasks and when their creates were sent (the evidence);
    ``claimed``: task ids that belong to other requests. ``lag_bound``: on the second look, what
    the first one proved about the list's lag. Raises ListUnreadable when a page cannot be read.
    """
    spec = protocol.spec.task_list
    if spec is None:
        return None
    now = time.time()
    evidence = {task: at for task, at in known.items() if sent_at - spec.evidence_hours * 3600 <= at <= now}
    before, after = spec.match_before_seconds, spec.match_after_seconds
    listed = await protocol.list_tasks(client, auth, min([sent_at, *evidence.values()]) - before - 5,
                                       sent_at + after + 5)
    if listed is None:
        return None
    by_id = {item.task_id: item for item in listed}
    offset, unproven = _measured_offset(evidence, by_id)
    model = protocol.list_model(request)
    matches, unnamed = [], 0
    for item in listed:
        if item.task_id in claimed or item.task_id in evidence or item.created is None:
            continue
        offsets = (offset,) if offset is not None else (0.0,) if item.absolute else protocol.match_offsets
        slack = OFFSET_TOLERANCE if offset is not None else 0.0
        if not any(sent_at - before - slack <= item.created - shift <= sent_at + after for shift in offsets):
            continue
        if item.model is None:
            unnamed += 1
        elif item.model == model:
            matches.append(item.task_id)
    if unnamed:
        return ListCheck([], f"{unnamed} listed task(s) created at that moment name no model, so none can be "
                             "adopted and nothing is proven")
    if len(matches) > 1:
        return ListCheck(matches, f"{len(matches)} unclaimed tasks could be it ({', '.join(matches[:4])})")
    if matches:
        return ListCheck(matches, "")
    none = f"{protocol.name}'s task list shows no unclaimed task of {model} created within seconds of it, "
    if offset is None:
        return ListCheck([], none + unproven)
    # A task of ours shown at age A proves the list lags by at most A: once the lost create is older
    # than that (plus a margin), the list would show it if it had been made.
    newest_age, lost_age = now - max(evidence.values()), now - sent_at
    if lag_bound is None:
        return ListCheck([], none + UNPROVEN, settle=max(newest_age + SETTLE_MARGIN - lost_age, SETTLE_MARGIN),
                         lag_bound=newest_age)
    if lost_age < lag_bound + SETTLE_MARGIN:
        return ListCheck([], none + "but a list that lags behind creates cannot be ruled out yet")
    return ListCheck([], "", proof=(
        f"the task list shows all {len(evidence)} of this workspace's tasks of the last {spec.evidence_hours:g} h at "
        f"the times this workspace holds for them (clock offset {offset:+.0f} s), and, asked again once the lost "
        f"create was older than the newest of them, still no task of {model} created within seconds of it"))


def _measured_offset(evidence: dict[str, float], by_id: dict[str, ListedTask]) -> tuple[float | None, str]:
    """The service clock's offset from this machine's, measured on the workspace's own listed tasks.

    None (with the reason) unless every known task is listed and all agree on one offset.
    """
    if not evidence:
        return None, UNPROVEN + "; this workspace has no recent tasks the list could show to prove it works"
    missing = [task for task in evidence if task not in by_id or by_id[task].created is None]
    if missing:
        return None, (UNPROVEN + f"; the list does not show {len(missing)} of this workspace's own recent tasks "
                      "(it lags, omits them, or covers another account)")
    shifts = [float(by_id[task].created or 0.0) - sent for task, sent in evidence.items()]
    if max(shifts) - min(shifts) > OFFSET_TOLERANCE:
        return None, UNPROVEN + "; this workspace's own tasks are listed at times that do not agree with each other"
    return min(shifts), ""
