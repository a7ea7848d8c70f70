"""The task journal: paid work in flight, written to disk before and after every create call.

One small append-only log per cache key under ``.wanflow/journal/<key>.jsonl``; every event
appends the whole entry as one JSON line and fsyncs it before wanflow goes on:

- ``intent``: about to send a create call (time, provider, request fingerprint). If the process
  dies now, nobody knows whether a task exists: the next run reconciles before creating.
- ``submitted``: the service answered with a task id. The next run resumes polling this task
  instead of creating another one.

The last complete line is the entry: a line torn by a power cut is ignored, which falls back to
the event before it (an ``intent`` then makes the next run reconcile, never resubmit blindly).
Any other unreadable last line (edited, of the wrong types, naming another key, random bytes)
makes the entry ``damaged``: the paid step stops and asks, as it does for an emptied log.
Appending costs one fsync where replacing a file would cost two (the file and its folder).

The entry is removed once the step's outputs are safely in the store (or the task failed for
good). A crash, ``kill -9``, a closed laptop, a deadline or a failed download therefore leave an
entry behind, and the following run of any pipeline with the same request picks it up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from wanflow._bounded import read_bounded
from wanflow._fs import canonical_json, fsync_dir
from wanflow.state.state_files import DamagedState, check_state, parse_json

if TYPE_CHECKING:
    from wanflow.state.shared_store import SharedJournal

TASK_LIFETIME = 24 * 3600  # DashScope and vtrix keep task ids and results for 24 hours
MAX_LOG_BYTES = 16_000_000  # a log holds a handful of events; anything larger is not one


def _parse(line: str) -> object:
    try:
        return parse_json(line, "journal line")
    except DamagedState:
        return None


def _entry(data: object, key: str) -> JournalEntry | None:
    """A journal event as an entry, when it has the types wanflow writes and names ``key``."""
    try:
        checked = check_state(data, "journal", "journal line")
        entry = JournalEntry(**checked)
    except (DamagedState, TypeError):
        return None
    return entry if entry.key == key else None


@dataclass
class JournalEntry:
    """What is known about one cache key's paid task."""

    key: str
    step: str
    provider: str
    fingerprint: str
    intent_at: float
    task_id: str | None = None
    submitted_at: float | None = None
    request_ids: list[str] = field(default_factory=list)
    deliberate: str | None = None  # why the user chose to pay again (--resubmit-unknown), if so
    ended_at: float | None = None  # when the service finished the task (set with lost_at)
    lost_at: float | None = None  # the task succeeded but its result could not be downloaded
    cost_usd: float | None = None
    damaged: bool = False  # the log was found emptied or unreadable: its task's fate is unknown

    @property
    def expired(self) -> bool:
        """Past the services' 24 h task validity."""
        return self.submitted_at is not None and time.time() - self.submitted_at > TASK_LIFETIME


class Journal:
    """All entries of one state folder."""

    def __init__(self, root: Path, remote: SharedJournal | None = None) -> None:
        self.root = root
        self.remote = remote  # a shared store (--store): its events are the truth other machines see
        self._created: set[str] = set()  # keys whose log this process created (and has not removed)
        self._legacy: bool | None = None  # whether any wanflow 0.1 entry exists (looked up once)

    def _has_legacy(self) -> bool:
        """Whether the folder holds any wanflow 0.1 entry (``<key>.json``); only 0.1 wrote them,
        so one listing per process replaces two failed lookups per step."""
        if self._legacy is None:
            try:
                self._legacy = any(name.endswith(".json") for name in os.listdir(self.root))
            except OSError:
                self._legacy = False
        return self._legacy

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.jsonl"

    def get(self, key: str) -> JournalEntry | None:
        """The entry for ``key``, if a previous run left one."""
        if self.remote is not None:
            shared = self.remote.last(key)
            if shared is not None:
                return _entry(shared, key) or JournalEntry(key, "?", "?", "", 0.0, damaged=True)
        try:
            text = read_bounded(self._path(key), MAX_LOG_BYTES).decode("utf-8", errors="replace")
        except FileNotFoundError:
            # wanflow 0.1 kept one indented JSON file per key; a pending one must still be honoured.
            if not self._has_legacy():
                return None
            try:
                legacy = read_bounded(self._legacy_path(key), MAX_LOG_BYTES).decode("utf-8", errors="replace")
            except FileNotFoundError:
                return None
            except OSError:
                legacy = ""
            return _entry(_parse(legacy), key) or JournalEntry(key, "?", "?", "", 0.0, damaged=True)
        except OSError:  # unreadable, a FIFO, too large: its task's fate is unknown
            return JournalEntry(key, "?", "?", "", 0.0, damaged=True)
        lines = text.splitlines()
        torn = bool(text) and not text.endswith("\n")  # a crash mid-append leaves the last line unfinished
        for index in range(len(lines) - 1, -1, -1):
            entry = _entry(_parse(lines[index]), key)
            if entry is not None:
                return entry
            if not (torn and index == len(lines) - 1):
                break  # a finished line that is not an entry: written over or edited, not torn
        # The log holds no readable last event: emptied, overwritten or damaged. A create may
        # have been sent, so this is not "nothing pending": the step stops and asks.
        return JournalEntry(key, "?", "?", "", 0.0, damaged=True)

    def _legacy_path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def entries(self) -> list[JournalEntry]:
        """Every entry (for reconciliation and ``wanflow cache`` reports)."""
        found = []
        keys = {path.stem for pattern in ("*.jsonl", "*.json") for path in self.root.glob(pattern)}
        keys |= set(self.remote.keys()) if self.remote is not None else set()
        for key in sorted(keys):
            entry = self.get(key)
            if entry is not None:
                found.append(entry)
        return found

    def claimed_task_ids(self) -> set[str]:
        """Task ids some entry already owns (a reconciliation must not adopt them twice)."""
        # (a damaged entry has no task id to claim)
        return {entry.task_id for entry in self.entries() if entry.task_id}

    def write(self, entry: JournalEntry) -> None:
        """Durably record ``entry``: append it as one line and fsync (and the folder, for a new log)."""
        if self.remote is not None:  # first: an intent another machine beat us to is refused here
            self.remote.append(entry.key, {**vars(entry), "request_ids": list(entry.request_ids)},
                               intent=entry.task_id is None and entry.lost_at is None)
        path = self._path(entry.key)
        data = (canonical_json({**vars(entry), "request_ids": list(entry.request_ids)}) + "\n").encode("utf-8")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            if entry.key in self._created:  # its second event: the log is ours and exists
                fd, created = os.open(path, flags, 0o644), False
            else:
                fd, created = os.open(path, flags | os.O_EXCL, 0o644), True
        except FileExistsError:
            fd, created = os.open(path, flags, 0o644), False
        except FileNotFoundError:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, created = os.open(path, flags, 0o644), True
        try:
            # Another Journal (another instance of a batch, another worker) may have removed the
            # log since: an empty file was just made, and its folder entry needs the fsync too.
            created = created or os.fstat(fd).st_size == 0
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.root)
            self._created.add(entry.key)

    def remove(self, key: str) -> None:
        """Forget ``key``: its outputs are stored, or it failed for good."""
        self._path(key).unlink(missing_ok=True)
        self._created.discard(key)
        if self._has_legacy():
            self._legacy_path(key).unlink(missing_ok=True)
        if self.remote is not None:
            self.remote.remove(key)


class KeyJournal:
    """The journal as one step sees it: bound to the step's cache key."""

    def __init__(self, journal: Journal, key: str, step: str, provider: str,
                 claims: Callable[[], set[str]] | None = None,
                 known: Callable[[], dict[str, float]] | None = None) -> None:
        self.journal = journal
        self.key = key
        self.step = step
        self.provider = provider
        self._claims = claims  # task ids the rest of the workspace owns (cache entries, records, lockfiles)
        self._known = known  # task id -> when its create was sent, from cache entries and records

    def pending(self) -> JournalEntry | None:
        """What an earlier run left for this key (a damaged log counts, whatever its provider)."""
        entry = self.journal.get(self.key)
        return entry if entry is not None and (entry.provider == self.provider or entry.damaged) else None

    def intent(self, fingerprint: str, deliberate: str | None = None) -> JournalEntry:
        """Record that a create call is about to be sent (``deliberate``: a resubmission the user asked for)."""
        entry = JournalEntry(self.key, self.step, self.provider, fingerprint, time.time(), deliberate=deliberate)
        self.journal.write(entry)
        return entry

    async def record_intent(self, fingerprint: str, deliberate: str | None = None) -> JournalEntry:
        """``intent``, with the write and its fsync in a worker thread: the event loop goes on
        meanwhile, and the caller sends the create only once this returns (the entry is durable)."""
        entry = JournalEntry(self.key, self.step, self.provider, fingerprint, time.time(), deliberate=deliberate)
        await _in_thread(self.journal.write, entry)
        return entry

    async def record_submitted(self, entry: JournalEntry, task_id: str, request_id: str | None) -> None:
        """``submitted``, with the write and its fsync in a worker thread."""
        entry.task_id = task_id
        entry.submitted_at = time.time()
        if request_id:
            entry.request_ids.append(request_id)
        await _in_thread(self.journal.write, entry)

    def lost(self, entry: JournalEntry, ended_at: float | None, cost_usd: float | None) -> None:
        """Record that a succeeded task's result could not be downloaded: the next run asks before paying."""
        entry.lost_at, entry.ended_at, entry.cost_usd = time.time(), ended_at, cost_usd
        self.journal.write(entry)

    def submitted(self, entry: JournalEntry, task_id: str, request_id: str | None) -> None:
        """Record the task id the moment it arrives."""
        entry.task_id = task_id
        entry.submitted_at = time.time()
        if request_id:
            entry.request_ids.append(request_id)
        self.journal.write(entry)

    def claimed_task_ids(self) -> set[str]:
        """Task ids that belong to some other request: never adopted for this one."""
        own = self.journal.get(self.key)
        claimed = self.journal.claimed_task_ids() | (self._claims() if self._claims is not None else set())
        return claimed - ({own.task_id} if own is not None and own.task_id else set())

    def known_task_times(self) -> dict[str, float]:
        """When this workspace sent each task it knows (journal entries, cache entries, records),
        this request's own entry excluded."""
        known = dict(self._known() if self._known is not None else {})
        for entry in self.journal.entries():
            if entry.task_id and entry.key != self.key and entry.provider == self.provider:
                known[entry.task_id] = entry.intent_at
        own = self.journal.get(self.key)
        if own is not None and own.task_id:
            known.pop(own.task_id, None)
        return known

    def clear(self) -> None:
        self.journal.remove(self.key)


async def _in_thread(write: Callable[[JournalEntry], None], entry: JournalEntry) -> None:
    """Run a journal write in a worker thread, shielded: an interrupt arriving now must not skip
    the write (``to_thread`` checks for cancellation before it starts), exactly as a write on the
    event loop could not be skipped."""
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(write, entry)
