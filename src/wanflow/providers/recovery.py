"""The journal's side of a paid task: never pay twice, never adopt the wrong task.

Mixed into ``RemoteProvider``: before a create it resumes what the journal holds (or stops and
asks, when that task's fate is unknown); it journals every create before sending it; and it
reconciles a create whose answer was lost, adopting a listed task only on proof.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx

from wanflow._exceptions import ProviderError
from wanflow.pipelines.request import StepRequest
from wanflow.providers.absence import check_list
from wanflow.providers.base import GenerationContext, TaskInfo
from wanflow.providers.protocol import CreateCall, ListUnreadable, ServiceProtocol


class JournalRecovery:
    """Resume, journal and reconcile paid tasks (needs the provider's ``_create`` and ``_auth``)."""

    name: str
    protocol: ServiceProtocol
    _sleep: Callable[[float], Awaitable[None]]

    if TYPE_CHECKING:  # supplied by the other parts of RemoteProvider

        def _auth(self) -> dict[str, str]:
            ...

        async def _create(self, client: httpx.AsyncClient, call: CreateCall, info: TaskInfo,
                          context: GenerationContext, token_taken: bool = False) -> str:
            ...

        async def _visible(self, client: httpx.AsyncClient, task_id: str, context: GenerationContext) -> bool:
            ...

    async def _recover(self, client: httpx.AsyncClient, call: CreateCall, request: StepRequest, info: TaskInfo,
                       context: GenerationContext) -> str | None:
        """A task an earlier run already paid for, or None when it is safe to create one.

        Raises (stops and asks) whenever the journal shows paid work whose fate is unknown and
        the user has not said ``--resubmit-unknown``.
        """
        journal = context.journal
        if journal is None:
            return None
        entry = journal.pending()
        if entry is None:
            return None
        if entry.damaged:
            if context.resubmit_unknown:
                context.log("this request's journal log was found emptied or unreadable; submitting anew on purpose "
                            "(--resubmit-unknown)")
                info["deliberate_resubmission"] = "damaged journal log"
                journal.clear()
                return None
            raise ProviderError("this request's journal log (.wanflow/journal/) was found emptied or unreadable, so an "
                                "earlier run may have paid for a task whose id is lost. wanflow will not risk paying "
                                "twice: check the service's console, then rerun with --resubmit-unknown to pay for a "
                                "new task on purpose", code="journal-damaged")
        sent = _when(entry.intent_at)
        if entry.lost_at is not None:
            if context.resubmit_unknown:
                context.log(f"task {entry.task_id} was lost (its result URL expired before download); "
                            "paying for a new one (--resubmit-unknown)")
                info["deliberate_resubmission"] = f"lost task {entry.task_id}"
                journal.clear()
                return None
            raise ProviderError(lost_message(self.name, entry), code="task-lost")
        if entry.task_id:
            if entry.expired:
                if context.resubmit_unknown:
                    context.log(f"task {entry.task_id} from {sent} is past the 24 h validity; submitting anew (--resubmit-unknown)")
                    info["deliberate_resubmission"] = f"expired task {entry.task_id}"
                    journal.clear()
                    return None
                raise ProviderError(f"task {entry.task_id}, submitted at {sent}, is past the services' 24 h validity: its "
                                    "result is gone. Rerun with --resubmit-unknown to pay for a new one", code="task-expired")
            context.log(f"resuming task {entry.task_id} submitted at {sent} (not creating a new one)")
            info["task_ids"].append(entry.task_id)
            info["request_ids"].extend(entry.request_ids)
            info["resumed"] = True
            info["task_sent_at"] = entry.intent_at
            return entry.task_id
        # An earlier create was sent but its answer never recorded.
        adopted = await self._reconcile(client, entry, request, call, info, context)
        if adopted is not None:
            await journal.record_submitted(entry, adopted, None)
            info["task_ids"].append(adopted)
            info["adopted"] = True
        return adopted

    async def _submit(self, client: httpx.AsyncClient, call: CreateCall, request: StepRequest, info: TaskInfo,
                      context: GenerationContext) -> str:
        refuse_if_creates_stopped(context)
        journal = context.journal
        if context.before_create is not None:
            # The submit token first, then the intent: a Ctrl-C while waiting for the token must
            # not leave an intent whose create may or may not have been sent (it was not).
            await context.before_create()
        entry = await journal.record_intent(call.fingerprint, info.get("deliberate_resubmission")
                                            or info.get("absence_proven")) if journal is not None else None
        if entry is not None:
            info["task_sent_at"] = entry.intent_at  # evidence for later proofs of absence (absence.py)
        try:
            task_id = await self._create(client, call, info, context, token_taken=True)
        except ProviderError as error:
            if error.code != "create-outcome-unknown":
                if journal is not None:
                    journal.clear()  # a definite refusal: nothing was created
                raise
            if entry is None:
                raise
            adopted = await self._reconcile(client, entry, request, call, info, context, lost=str(error))
            if adopted is None:  # --resubmit-unknown, or proof that the create never arrived
                if info.pop("absence_proven_before", None) and not context.resubmit_unknown:
                    raise ProviderError(f"{error}. The task list proved twice that the create never reached "
                                        f"{self.name}, so nothing was paid; rerun to try again", code="create-lost",
                                        retryable=True) from None
                info["absence_proven_before"] = "absence_proven" in info
                return await self._submit(client, call, request, info, context)
            task_id = adopted
            info["task_ids"].append(adopted)
            info["adopted"] = True
        info.pop("absence_proven_before", None)
        if entry is not None and journal is not None:
            await journal.record_submitted(entry, task_id, info["request_ids"][-1] if info["request_ids"] else None)
        return task_id

    async def _reconcile(self, client: httpx.AsyncClient, entry: Any, request: StepRequest, call: CreateCall,
                         info: TaskInfo, context: GenerationContext, lost: str | None = None) -> str | None:
        """The task a create of unknown outcome made; None when it provably made none.

        Adopted only on proof: exactly one listed task of the same model whose own create time is
        within seconds of the moment the create was sent, that nothing in this workspace or the
        shared store claims. None (create once) only on proof of absence (``absence.py``). Without
        either: stop and ask, unless ``--resubmit-unknown`` says to pay again on purpose.
        """
        sent = _when(entry.intent_at)
        spec = self.protocol.spec.task_list
        claimed = context.paid_journal().claimed_task_ids()
        known: dict[str, float] = getattr(context.journal, "known_task_times", dict)()
        why: str
        try:
            check = await check_list(self.protocol, client, self._auth(), request, entry.intent_at, known, claimed)
            if check is not None and not check.candidates and check.settle is not None and spec is not None:
                if check.settle > spec.max_settle_seconds:
                    check.proof = None
                    check.why = (f"the newest of this workspace's tasks that the list shows is {check.settle:.0f} s "
                                 "too recent to rule out a list that lags behind creates")
                else:
                    context.log(f"no task matches the create sent at {sent}; asking the task list again in "
                                f"{check.settle:.0f} s, so that a lagging list cannot hide it")
                    await self._sleep(check.settle)
                    check = await check_list(self.protocol, client, self._auth(), request, entry.intent_at, known,
                                             claimed, lag_bound=check.lag_bound)
        except ListUnreadable as error:
            check, why = None, f"{error}, which proves nothing either way"
        else:
            why = f"{self.name} has no task list to check" if check is None else check.why
        if check is not None and len(check.candidates) == 1 and not await self._visible(client, check.candidates[0], context):
            # The list covers every key of the account; a task this key cannot see is someone else's.
            why = (f"the only listed task of that moment, {check.candidates[0]}, is not visible to this API key "
                   "(another key's task)")
            check = None
        if check is not None and len(check.candidates) == 1:
            context.log(f"the create sent at {sent} did make task {check.candidates[0]}; adopting it instead of "
                        "creating another")
            info["task_sent_at"] = entry.intent_at
            return check.candidates[0]
        if check is not None and check.proof is not None:
            context.log(f"the create sent at {sent} never reached {self.name}: {check.proof}. Creating the task once")
            info["absence_proven"] = f"create sent at {sent} never arrived: {check.proof}"
            context.paid_journal().clear()
            return None
        if context.resubmit_unknown:
            context.log(f"the create sent at {sent} has an unknown outcome ({why}); submitting again on purpose "
                        "(--resubmit-unknown)")
            info["deliberate_resubmission"] = f"create of unknown outcome sent at {sent}"
            context.paid_journal().clear()
            return None
        raise ProviderError(
            (lost + ". " if lost else "") +
            f"A create call for this step was sent at {sent} (request fingerprint {entry.fingerprint[:16]}) and its "
            f"outcome is unknown: {why}. wanflow will not risk paying twice. Check the service's console for a task "
            "of that time; to pay for a new one on purpose, rerun with --resubmit-unknown", code="create-outcome-unknown")


def refuse_if_creates_stopped(context: GenerationContext) -> None:
    """Raise when the run stopped paid creates for this model (a result that did not match what was
    asked): nothing billable, a pre-check included, is sent after that."""
    blocked = context.create_blocked() if context.create_blocked is not None else None
    if blocked:
        raise ProviderError(f"not submitted: {blocked}", code="creates-stopped")


def clear_journal(context: GenerationContext) -> None:
    """Forget the step's journal entry (the task failed for good, or was canceled)."""
    if context.journal is not None:
        context.paid_journal().clear()


def lost_message(service: str, entry: Any) -> str:
    """The one report of a succeeded task whose result could not be downloaded."""
    paid = f" (reported cost ${entry.cost_usd:.2f})" if entry.cost_usd is not None else ""
    ended = _when(entry.ended_at) if entry.ended_at else "an unknown time"
    return (f"task {entry.task_id} on {service} succeeded at {ended}{paid}, but its result URL was gone before wanflow "
            "could download it, so the result is lost. Nothing more can be fetched for it; rerun with "
            "--resubmit-unknown to pay for a new task")


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))
