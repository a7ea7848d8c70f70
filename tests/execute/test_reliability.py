"""Never lose or double-pay: kill -9 and resume, lost create answers, Ctrl-C, concurrent runs,
cache integrity, and keys that never leak. Every fault test reads /_sim/stats."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from PIL import Image

import wanflow
from cli_helpers import SRC, cli_env
from sim_helpers import SECRET, TWO_STEPS
from wanflow.cli.main import main
from wanflow.media.probe import verify_complete
from wanflow.sim.server import SimServer
from wanflow.state.journal import Journal, JournalEntry, KeyJournal


def _env(server: SimServer, **extra: str) -> dict[str, str]:
    return cli_env(server, SECRET, **extra)


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "wanflow", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _summary(process: subprocess.Popen, timeout: float = 120) -> tuple[int, dict, str]:
    out, err = process.communicate(timeout=timeout)
    try:
        return process.returncode, json.loads(out), err
    except ValueError:
        return process.returncode, {}, err + out


def _journal(project: Path) -> list[dict]:
    return [asdict(entry) for entry in Journal(project / ".wanflow" / "journal").entries()]


# --- kill -9 and resume --------------------------------------------------------------------------

def test_kill_9_after_submit_resumes_the_same_task(sim, project, write_pipeline):
    server = sim(task_seconds=2.0)
    path = write_pipeline(TWO_STEPS)
    process = _cli(["run", str(path), "--provider", "dashscope", "--json"], project, _env(server))
    deadline = time.monotonic() + 30
    while not any(entry.get("task_id") for entry in _journal(project)):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.02)
    process.kill()
    process.wait()
    (entry,) = _journal(project)
    assert entry["step"] == "hero" and entry["provider"] == "dashscope"
    code, summary, err = _summary(_cli(["run", str(path), "--provider", "dashscope", "--json"], project, _env(server)))
    assert code == 0, err
    record = json.loads(Path(summary["record"]).read_text())
    assert record["steps"]["hero"]["provider_info"]["task_id"] == entry["task_id"]
    assert record["steps"]["hero"]["provider_info"]["resumed"] is True
    assert record["steps"]["hero"]["reason"].startswith("resumed task "), record["steps"]["hero"]["reason"]  # not "new"
    assert any("resuming task" in event["message"] for event in record["steps"]["hero"]["events"])
    stats = server.stats()
    assert stats["creates"] == 2 and stats["duplicate_creates"] == 0
    assert _journal(project) == []


def test_thirty_random_kill_9_trials_each_resume_to_completion_without_duplicates(sim, tmp_path):
    """30 runs, each killed with SIGKILL at a random moment (0-2.5 s: while loading, submitting,
    polling, downloading or storing), then resumed by plain reruns. Five independent accounts at a
    time, three on DashScope and two on vtrix, with lost create answers (DashScope), damaged
    downloads and throttling on.

    Without --resubmit-unknown, every DashScope trial completes within three plain reruns with no
    duplicate create: a lost answer is settled by adopting the listed task, and a kill between the
    journal's intent and the create by proof of absence (the list shows the workspace's own earlier
    tasks, so each lane makes one run before the kills, as any workspace that has run before has).
    vtrix has no task list: a kill in that instant there stops and asks (tested to say so), and only
    then is the flag used, counted as a deliberate resubmission. No step ever records a task made
    for another request, and nothing damaged reaches out/.
    """
    rng = random.Random(20261122)
    lanes = []
    for lane in range(5):
        folder = tmp_path / f"lane{lane}"
        folder.mkdir()
        (folder / "pipe.yaml").write_text(TWO_STEPS)
        provider = "dashscope" if lane < 3 else "vtrix"
        server = sim(task_seconds=0.5, drop_rate=0.1 if provider == "dashscope" else 0.0, corrupt_rate=0.1,
                     throttle_rps=3.0, seed=lane, tiny_results=True)
        lanes.append((folder, server, provider))
    for folder, server, provider in lanes:
        code, _, err = _summary(_cli(["run", "pipe.yaml", "--provider", provider, "--var", "trial=-1", "--json"],
                                     folder, _env(server)))
        assert code == 0, err
    deliberate = [0] * len(lanes)
    for round_ in range(6):
        args = [["run", "pipe.yaml", "--provider", provider, "--var", f"trial={round_ * 5 + lane}", "--json"]
                for lane, (_, _, provider) in enumerate(lanes)]
        started = time.monotonic()
        victims = [_cli(args[lane], folder, _env(server)) for lane, (folder, server, _) in enumerate(lanes)]
        for kill_at, victim in sorted(((rng.uniform(0.0, 2.5), victim) for victim in victims), key=lambda pair: pair[0]):
            time.sleep(max(0.0, started + kill_at - time.monotonic()))
            victim.kill()
        for victim in victims:
            victim.wait()
        for lane, (folder, server, provider) in enumerate(lanes):
            for _rerun in range(3):
                code, summary, err = _summary(_cli(args[lane], folder, _env(server)))
                if code == 0:
                    break
                assert provider == "vtrix", f"DashScope lane {lane} stopped without the flag: {err or summary}"
                assert "--resubmit-unknown" in json.dumps(summary) + err, err
                deliberate[lane] += 1
                code, summary, err = _summary(_cli(args[lane] + ["--resubmit-unknown"], folder, _env(server)))
                break
            assert code == 0, err
            assert {step["status"] for step in summary["steps"].values()} <= {"ran", "cached"}
            assert _journal(folder) == []
            record = json.loads(Path(summary["record"]).read_text())
            for step in record["steps"].values():
                task = server.state.tasks.get((step.get("provider_info") or {}).get("task_id", ""))
                assert task is None or task.request.prompt == step["request"]["prompt"], "a wrong adoption"
    for lane, (folder, server, provider) in enumerate(lanes):
        stats = server.stats()
        if provider == "dashscope":
            assert stats["duplicate_creates"] == 0 and deliberate[lane] == 0
        assert stats["duplicate_creates"] <= deliberate[lane]
        assert stats["creates"] <= 14 + deliberate[lane]
        for file in (folder / "out").rglob("*.png"):
            verify_complete(file)


def test_the_journal_keeps_the_last_complete_event_of_each_task(tmp_path):
    """Each event is appended and fsync'd; a line torn by a power cut falls back to the one before."""
    journal = Journal(tmp_path / "journal")
    step = KeyJournal(journal, "k" * 64, "hero", "dashscope")
    entry = step.intent("f" * 64)
    assert journal.get("k" * 64).task_id is None
    step.submitted(entry, "task-1", "req-1")
    assert (journal.get("k" * 64).task_id, journal.get("k" * 64).request_ids) == ("task-1", ["req-1"])
    log = tmp_path / "journal" / f"{'k' * 64}.jsonl"
    assert len(log.read_text().splitlines()) == 2
    with open(log, "a") as handle:
        handle.write('{"key": "' + "k" * 64 + '", "task_id": "task-2", "st')  # torn mid-append
    assert journal.get("k" * 64).task_id == "task-1"
    assert [found.task_id for found in journal.entries()] == ["task-1"]
    step.clear()
    assert journal.get("k" * 64) is None and journal.entries() == []


def test_a_pending_task_journaled_by_wanflow_0_1_is_still_resumed(tmp_path):
    """0.1 wrote one indented JSON file per key; an upgrade must not forget a paid task in flight."""
    folder = tmp_path / "journal"
    folder.mkdir()
    old = JournalEntry("a" * 64, "hero", "vtrix", "f" * 64, time.time(), "task-old", time.time(), ["r"])
    (folder / f"{'a' * 64}.json").write_text(json.dumps(asdict(old), indent=2))
    journal = Journal(folder)
    assert journal.get("a" * 64) == old
    assert journal.claimed_task_ids() == {"task-old"}
    journal.remove("a" * 64)
    assert journal.entries() == [] and not list(folder.iterdir())


# --- lost create answers -------------------------------------------------------------------------

def test_a_dropped_create_on_dashscope_is_reconciled_and_adopted(sim, project, write_pipeline):
    server = sim(drop_rate=1.0, task_seconds=0.3)
    code, summary, err = _summary(_cli(["run", str(write_pipeline(TWO_STEPS)), "--provider", "dashscope", "--json"],
                                       project, _env(server)))
    assert code == 0, err
    record = json.loads(Path(summary["record"]).read_text())
    assert record["steps"]["hero"]["provider_info"]["adopted"] is True
    assert any("adopting it" in e["message"] for e in record["steps"]["hero"]["events"])
    stats = server.stats()
    assert stats["dropped"] == 2 and stats["creates"] == 2 and stats["duplicate_creates"] == 0 and stats["lists"] >= 2


def test_a_dropped_create_on_vtrix_stops_and_resubmits_only_when_allowed(sim, project, write_pipeline):
    server = sim(drop_rate=1.0, task_seconds=0.3)
    path = write_pipeline(TWO_STEPS)
    code, summary, err = _summary(_cli(["run", str(path), "--provider", "vtrix", "--json"], project, _env(server)))
    assert code == 1
    error = summary["steps"]["hero"]["error"]
    assert "was sent at" in error and "a billed task may exist" in error and "--resubmit-unknown" in error
    assert summary["steps"]["edit"]["status"] == "skipped"
    assert server.stats()["creates"] == 1
    # A plain rerun still refuses to risk paying twice.
    code, summary, _ = _summary(_cli(["run", str(path), "--provider", "vtrix", "--json"], project, _env(server)))
    assert code == 1 and "outcome is unknown" in summary["steps"]["hero"]["error"]
    assert server.stats()["creates"] == 1
    # Only the explicit flag resubmits.
    server.state.knobs.drop_rate = 0.0
    code, summary, err = _summary(_cli(["run", str(path), "--provider", "vtrix", "--resubmit-unknown", "--json"],
                                       project, _env(server)))
    assert code == 0, err
    assert server.stats()["creates"] == 3


# --- Ctrl-C / SIGTERM ----------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_keeps_remote_tasks_flushes_records_and_exits_130(sim, project, write_pipeline, signum):
    server = sim(task_seconds=1.5)
    path = write_pipeline(TWO_STEPS)
    process = _cli(["run", str(path), "--provider", "dashscope", "--json"], project, _env(server))
    while not any(entry.get("task_id") for entry in _journal(project)):
        time.sleep(0.02)
    process.send_signal(signum)
    code, summary, err = _summary(process)
    assert code == 130, err
    assert "next run resumes" in err
    record = json.loads(Path(summary["record"]).read_text())
    assert record["status"] == "interrupted"
    assert len(_journal(project)) == 1
    code, summary, err = _summary(_cli(["run", str(path), "--provider", "dashscope", "--json"], project, _env(server)))
    assert code == 0, err
    assert server.stats()["creates"] == 2 and server.stats()["duplicate_creates"] == 0


def test_cancel_on_interrupt_cancels_queued_tasks(sim, project, write_pipeline):
    server = sim(task_seconds=20.0)  # PENDING for the first 5 s
    path = write_pipeline(TWO_STEPS)
    process = _cli(["run", str(path), "--provider", "dashscope", "--cancel-on-interrupt", "--json"], project, _env(server))
    while not any(entry.get("task_id") for entry in _journal(project)):
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    code, _, err = _summary(process)
    assert code == 130, err
    assert server.stats()["cancels"] == 1 and server.stats()["tasks"] == {"CANCELED": 1}
    assert _journal(project) == []


# --- concurrent runs ---------------------------------------------------------------------------

def test_two_concurrent_runs_create_each_task_once(sim, project, write_pipeline):
    server = sim(task_seconds=1.0)
    path = write_pipeline(TWO_STEPS)
    first = _cli(["run", str(path), "--provider", "dashscope", "--json"], project, _env(server))
    second = _cli(["run", str(path), "--provider", "dashscope", "--json"], project, _env(server))
    results = [_summary(first), _summary(second)]
    for code, _, err in results:
        assert code == 0, err
    statuses = sorted(step["status"] for _, summary, _ in results for step in summary["steps"].values())
    assert statuses == ["cached", "cached", "ran", "ran"]
    assert server.stats()["creates"] == 2 and server.stats()["duplicate_creates"] == 0
    assert main(["cache", "verify"]) == 0


def test_two_concurrent_local_runs_share_one_cache_safely(project, write_pipeline):
    path = write_pipeline(TWO_STEPS)
    env = {**os.environ, "PYTHONPATH": SRC}
    runs = [_cli(["run", str(path), "--json", "--var", f"trial={n % 2}"], project, env) for n in range(4)]
    for process in runs:
        code, _, err = _summary(process)
        assert code == 0, err
    assert main(["cache", "verify"]) == 0


# --- cache integrity ---------------------------------------------------------------------------

def test_cache_verify_quarantines_corrupt_objects_and_they_are_regenerated(project, write_pipeline, capsys):
    path = write_pipeline(TWO_STEPS)
    assert main(["run", str(path)]) == 0
    objects = sorted((project / ".wanflow/objects").glob("*/*"))
    victim = objects[0]
    victim.write_bytes(b"bit rot")
    assert main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"corrupt object {victim.name}" in out
    assert (project / ".wanflow/quarantine").is_dir() and not victim.exists()
    assert main(["run", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert "ran" in {step["status"] for step in summary["steps"].values()}
    assert main(["cache", "verify"]) == 0


def test_cache_gc_keeps_what_recent_runs_use_and_shows_its_policy(project, write_pipeline, capsys):
    path = write_pipeline(TWO_STEPS)
    assert main(["run", str(path)]) == 0
    assert main(["run", str(path), "--var", "trial=1"]) == 0
    capsys.readouterr()
    # Make every record old: only the newest run's references are kept.
    for record in (project / ".wanflow/runs").glob("*.json"):
        old = time.time() - 90 * 86400
        os.utime(record, (old, old))
    newest = next(p for p in (project / ".wanflow/runs").glob("*.json") if json.loads(p.read_text())["vars"]["trial"] == 1)
    os.utime(newest, None)
    assert main(["cache", "gc", "--dry-run", "--keep-days", "7"]) == 0
    dry = capsys.readouterr().out
    assert "policy: keep what the newest run of each pipeline" in dry and "would remove 2 cache entries" in dry
    assert main(["cache", "gc", "--keep-days", "7"]) == 0
    capsys.readouterr()
    assert main(["run", str(path), "--var", "trial=1", "--json"]) == 0
    assert {s["status"] for s in json.loads(capsys.readouterr().out)["steps"].values()} == {"cached"}
    assert main(["run", str(path), "--json"]) == 0
    assert {s["status"] for s in json.loads(capsys.readouterr().out)["steps"].values()} == {"ran"}


# --- hostile input -------------------------------------------------------------------------------

def test_inputs_outside_the_pipeline_folder_need_permission(project, write_pipeline, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    Image.new("RGB", (500, 500)).save(elsewhere / "secret.png")
    path = write_pipeline(f"name: p\nsteps:\n  a: {{model: wan2.6-image, prompt: x, images: [{elsewhere}/secret.png]}}\n")
    with pytest.raises(wanflow.PipelineError, match="outside the pipeline's folder"):
        wanflow.load_pipeline(path)
    (project / "link.png").symlink_to(elsewhere / "secret.png")
    path.write_text("name: p\nsteps:\n  a: {model: wan2.6-image, prompt: x, images: [link.png]}\n")
    with pytest.raises(wanflow.PipelineError, match="outside the pipeline's folder"):
        wanflow.load_pipeline(path)
    assert wanflow.load_pipeline(path, allowed_paths=(elsewhere,)).steps["a"]


def test_the_api_key_never_appears_in_anything_a_run_writes_or_prints(sim, project, write_pipeline):
    server = sim(task_seconds=0.3, error_rate=0.2, throttle_rps=2.0, fail_rate=0.3, seed=4)
    path = write_pipeline(TWO_STEPS)
    outputs = []
    for provider in ("dashscope", "vtrix"):
        process = _cli(["run", str(path), "--provider", provider], project, _env(server))
        out, err = process.communicate(timeout=120)
        outputs.append(out + err)
    env = _env(server, VTRIX_API_KEY="wrong-" + SECRET[::-1])
    process = _cli(["run", str(path), "--provider", "vtrix", "--fresh"], project, env)
    outputs.append("".join(process.communicate(timeout=60)))
    for text in outputs:
        assert SECRET not in text
    written = [p for p in project.rglob("*") if p.is_file() and "sim" not in p.relative_to(project).parts[:1]]
    assert len(written) > 10
    for file in written:
        assert SECRET.encode() not in file.read_bytes(), file


# --- per-key locks -------------------------------------------------------------------------------

KEY_A, KEY_B = "a" * 64, "b" * 64

HOLD_LOCK = """
import sys, time, anyio
from pathlib import Path
from wanflow.state.locks import process_lock

async def main():
    async with process_lock(Path(sys.argv[1]), sys.argv[2]):
        print("held", flush=True)
        time.sleep(60)

anyio.run(main)
"""


def _try_lock(locks: Path, key: str, lock=None) -> bool:
    """Whether ``key`` can be taken within 0.3 s (then released)."""
    import anyio

    from wanflow.state.locks import process_lock

    async def attempt() -> bool:
        with anyio.move_on_after(0.3):
            async with (lock or process_lock)(locks, key):
                return True
        return False

    return anyio.run(attempt)


def test_a_key_held_by_another_process_waits_and_is_freed_when_that_process_is_killed(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path / "locks"), KEY_A],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not _try_lock(tmp_path / "locks", KEY_A)
        assert _try_lock(tmp_path / "locks", KEY_B)  # other keys are free
    finally:
        holder.kill()
        holder.wait()
    assert _try_lock(tmp_path / "locks", KEY_A)  # kill -9 released it
    assert [p.name for p in (tmp_path / "locks").iterdir()] == ["keys.lock"]  # no file per key


def test_two_runners_in_one_process_exclude_each_other_per_key(tmp_path):
    import anyio

    from wanflow.state.locks import process_lock

    order = []

    async def hold(name: str, key: str) -> None:
        async with process_lock(tmp_path, key, on_wait=lambda: order.append(f"{name} waits")):
            order.append(f"{name} in")
            await anyio.sleep(0.25)
            order.append(f"{name} out")

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(hold, "first", KEY_A)
            await anyio.sleep(0.05)
            group.start_soon(hold, "second", KEY_A)
            group.start_soon(hold, "other", KEY_B)

    anyio.run(scenario)
    assert order.index("first out") < order.index("second in")
    assert "second waits" in order and "other waits" not in order
    assert order.index("other in") < order.index("first out")


def test_the_portable_lock_used_without_fcntl_also_excludes_and_waits(tmp_path):
    from wanflow.state.locks import _filelock

    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK.replace(
        "from wanflow.state.locks import process_lock", "from wanflow.state.locks import _filelock as process_lock").replace(
        "process_lock(Path(sys.argv[1]), sys.argv[2])", "process_lock(Path(sys.argv[1]), sys.argv[2], None)"),
        str(tmp_path), KEY_A], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = lambda locks, key: _filelock(locks, key, None)  # noqa: E731
        assert not _try_lock(tmp_path, KEY_A, lock)
        assert _try_lock(tmp_path, KEY_B, lock)
    finally:
        holder.kill()
        holder.wait()
    assert _try_lock(tmp_path, KEY_A, lambda locks, key: _filelock(locks, key, None))


def test_paid_work_is_fsynced_and_rebuildable_files_are_not(tmp_path, monkeypatch):
    """Journal lines, stored objects and cache entries survive a power cut; records and output
    copies are only atomic (they are rebuilt from the former)."""
    from wanflow import _fs as fsutil
    from wanflow.state.store import ArtifactStore

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])

    journal = KeyJournal(Journal(tmp_path / "journal"), "c" * 64, "hero", "dashscope")
    entry = journal.intent("f" * 64)
    assert len(synced) == 2  # the new log and its folder
    journal.submitted(entry, "task-9", None)
    assert len(synced) == 3  # an append: the log only

    (tmp_path / "download.png").write_bytes(b"\x89PNG fake bytes")
    artifact = ArtifactStore(tmp_path / "objects").put_file(tmp_path / "download.png", "image/png", move=True)
    assert len(synced) == 4 and not (tmp_path / "download.png").exists()
    assert fsutil.sha256_file(artifact.path) == artifact.sha256

    fsutil.atomic_write_json(tmp_path / "cache" / "entry.json", {"key": 1}, compact=True)
    assert len(synced) == 6  # the entry and its folder

    before = len(synced)
    fsutil.atomic_write_json(tmp_path / "out" / "run.json", {"status": "ok"}, durable=False)
    fsutil.atomic_copy(artifact.path, tmp_path / "out" / "hero.png", durable=False)
    assert len(synced) == before
    assert json.loads((tmp_path / "out" / "run.json").read_text()) == {"status": "ok"}
    assert (tmp_path / "out" / "hero.png").read_bytes() == b"\x89PNG fake bytes"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["hero.png", "run.json"]  # no temp files left
