"""Dask as the engine (--cluster): real LocalClusters (worker processes) against the simulator, and a
real S3-compatible server (moto) on loopback. Every test reads /_sim/stats: creates, duplicate
creates and the most tasks of one model the simulator saw unfinished at once."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cli_helpers import cli_env
from sim_helpers import SECRET, finish_run, lock_keys, project_folder, start_run, wait_for
from wanflow.execute.cluster.worker import ClusterTokenBucket
from wanflow.execute.pacing import TokenBucket, next_grant
from wanflow.state.journal import Journal

distributed = pytest.importorskip("distributed", reason="distributed is not installed; pip install -e '.[cluster]'")

REPO = Path(__file__).resolve().parents[2]
# A dead worker's Dask locks and semaphore leases are freed after this (30 s by default).
FAST_LEASES = {"DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_TIMEOUT": "2s",
               "DASK_DISTRIBUTED__SCHEDULER__LOCKS__LEASE_VALIDATION_INTERVAL": "0.5s"}

BATCH = """
name: paid
vars: {trial: 0, look: plain}
defaults: {seed: 5}
steps:
  hero: {model: wan2.6-t2i, prompt: "trial {{ vars.trial }}: a lamp", params: {n: 1}}
  edit: {model: wan2.6-image, images: ["{{ steps.hero.images[0] }}"], prompt: "make it {{ vars.look }}", params: {n: 1}}
outputs: {final: "{{ steps.edit.images[0] }}"}
"""

ONE_STEP = """
name: shots
vars: {trial: 0}
defaults: {seed: 5}
steps:
  hero: {model: wan2.6-t2i, prompt: "shot {{ vars.trial }}: a lamp", params: {n: 1}}
"""


def _rows(count: int, heroes: int) -> str:
    """``count`` rows; rows with the same ``trial`` share their hero request (``heroes`` distinct ones)."""
    return "name,trial,look\n" + "".join(f"r{row},{row % heroes},look{row}\n" for row in range(count))


def _journal(folder: Path) -> list[Any]:
    return list(Journal(folder / ".wanflow" / "journal").entries())


def _limits(concurrent: int, per_second: float) -> str:
    return f"[limits.dashscope]\nconcurrent = {concurrent}\nsubmits_per_second = {per_second}\n"


# --- the cluster-wide submit pace, on a fake clock ------------------------------------------------------

def test_the_cluster_bucket_books_with_the_local_buckets_rule():
    """The cluster-wide bucket paces exactly as a local one: same burst, same window (with the slack
    that keeps a one-second server bucket from running dry), booked over the shared grant times."""
    bucket = ClusterTokenBucket("dashscope-acct-wan2.6-t2i", 2.0, burst=2)
    local = TokenBucket(2.0, burst=2)
    assert (bucket.burst, bucket.window) == (local.burst, local.window)
    granted: list[float] = []
    for now in [0.0] * 6:
        granted.append(next_grant(granted[-bucket.burst:], now, bucket.burst, bucket.window))
    assert granted == [0, 0, 1.5, 1.5, 3.0, 3.0]  # pairs, never more than 2 creates in any second
    assert next_grant([0.0, 0.0], 5.0, bucket.burst, bucket.window) == 5.0  # an idle bucket lets a create go at once


def test_the_simulator_counts_the_most_unfinished_tasks_of_a_model(tmp_path):
    from wanflow.sim.state import Knobs, SimState

    state = SimState(Knobs(task_seconds=60), tmp_path)
    for n in range(3):
        state.new_task("dashscope", "wan2.6-t2i", "wan2.6-t2i", {"n": n}, None)
    state.new_task("dashscope", "wan2.6-image", "wan2.6-image", {"n": 0}, None)
    assert state.snapshot()["peak_concurrent"] == {"wan2.6-t2i": 3, "wan2.6-image": 1}
    state.knobs.task_seconds = 0  # every task so far is finished now: each new one runs alone
    for n in range(3, 6):
        state.new_task("dashscope", "wan2.6-t2i", "wan2.6-t2i", {"n": n}, None)
    assert state.snapshot()["peak_concurrent"] == {"wan2.6-t2i": 3, "wan2.6-image": 1}  # not 6: finished ones leave


def test_cluster_limits_are_kept_per_account_and_never_name_the_key(monkeypatch):
    from wanflow.execute.cluster import worker as engine

    def worker_with(key: str) -> str:
        provider = SimpleNamespace(config=SimpleNamespace(api_key=key))
        monkeypatch.setattr(engine, "_providers", {("dashscope",): {"dashscope": provider}})
        return engine._account("dashscope")

    first, again, other = worker_with(SECRET), worker_with(SECRET), worker_with("sk-another-account")
    assert first == again != other  # one key, one set of limits; another key, its own
    assert SECRET not in first and len(first) == 12
    assert worker_with("") == "default"


# --- whole runs on a cluster -----------------------------------------------------------------------------

def test_the_example_batch_on_a_cluster_with_an_s3_store_matches_a_local_run(sim, tmp_path, s3_server):
    """The issue's "done when": batch-products with --cluster local:2 --store s3://... against the
    simulator and moto gives the same outputs and lockfile as a local run."""
    example = REPO / "examples" / "batch-products"
    runs: dict[str, Path] = {}
    for name, extra in (("cluster", ["--cluster", "local:2", "--store", "s3://team/wanflow"]), ("local", [])):
        server = sim(task_seconds=0.3, tiny_results=True)  # one simulator each: the local run pays again
        folder = tmp_path / name
        folder.mkdir()
        (folder / "wanflow.toml").write_text("")
        for part in ("batch-products.yaml", "products.csv"):
            (folder / part).write_bytes((example / part).read_bytes())
        summary = finish_run(start_run(folder, {**cli_env(server, SECRET), **s3_server}, "--batch", "products.csv",
                                       *extra, pipeline="batch-products.yaml"), timeout=300)
        assert summary["ok"] is True, summary
        stats = server.stats()
        assert stats["creates"] == 4 and stats["duplicate_creates"] == 0  # 3 heroes, 1 clip
        assert all(peak <= 2 for peak in stats["peak_concurrent"].values()), stats["peak_concurrent"]
        runs[name] = folder
    assert json.loads((runs["cluster"] / "batch-products.lock").read_text()) == \
        json.loads((runs["local"] / "batch-products.lock").read_text())
    outputs = {name: {path.relative_to(folder / "out").as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
                      for path in (folder / "out").rglob("*") if path.is_file() and path.name.startswith(("poster", "clip"))}
               for name, folder in runs.items()}
    assert outputs["cluster"] == outputs["local"] and len(outputs["cluster"]) >= 4


def test_shared_requests_run_once_and_limits_hold_cluster_wide(sim, tmp_path):
    """8 rows sharing 4 hero requests on 2 workers (8 unit threads, each with its own runner): each
    request is created once, at most 4 tasks of a model run at once, and the submit pace (2 per
    second) holds for the whole cluster: a simulator that throttles above 4 creates per second never
    has to (with a pace per runner, 4 slots freed every ~0.5 s would make about 8 per second)."""
    server = sim(task_seconds=0.4, tiny_results=True, throttle_rps=4.0)
    folder = project_folder(tmp_path, "team", BATCH, _limits(concurrent=4, per_second=2))
    (folder / "rows.csv").write_text(_rows(8, heroes=4))
    env = cli_env(server, SECRET, WANFLOW_CLUSTER_WINDOW="5")  # 5 units submitted at a time, the next as one ends
    summary = finish_run(start_run(folder, env, "--batch", "rows.csv", "--cluster", "local:2"))
    assert summary["ok"] is True and len(summary["instances"]) == 8
    stats = server.stats()
    assert stats["creates"] == 12 and stats["duplicate_creates"] == 0  # 4 heroes + 8 edits
    assert all(peak <= 4 for peak in stats["peak_concurrent"].values()), stats["peak_concurrent"]
    assert stats["throttles"] == 0
    assert len(lock_keys(json.loads((folder / "pipe.lock").read_text()))) == 16
    assert _journal(folder) == []


@pytest.fixture
def cluster(sim, monkeypatch) -> Iterator[Any]:
    """A LocalCluster of 2 worker processes (nannies restart a killed one) with fast lease expiry;
    the workers get the simulator's environment from ``cluster.start(env)``."""
    import dask

    made: list[Any] = []

    def start(env: dict[str, str]) -> Any:
        from distributed import LocalCluster

        for name, value in env.items():  # the worker processes inherit this environment
            monkeypatch.setenv(name, value)
        for name in [name for name in os.environ if name.startswith("WANFLOW") and name not in env]:
            monkeypatch.delenv(name)
        with dask.config.set({"distributed.scheduler.locks.lease-timeout": "2s",
                              "distributed.scheduler.locks.lease-validation-interval": "0.5s"}):
            local = LocalCluster(n_workers=2, threads_per_worker=4, processes=True, dashboard_address=None)
        made.append(local)
        return local

    yield start
    for local in made:
        local.close()


def test_a_worker_killed_with_sigkill_mid_run_is_replaced_and_nothing_is_created_twice(sim, tmp_path, cluster):
    server = sim(task_seconds=1.5, tiny_results=True)
    env = cli_env(server, SECRET)
    local = cluster(env)
    folder = project_folder(tmp_path, "team", BATCH)
    (folder / "rows.csv").write_text(_rows(6, heroes=3))
    run = start_run(folder, env, "--batch", "rows.csv", "--cluster", local.scheduler_address)
    with distributed.Client(local) as client:
        wait_for(lambda: server.stats()["creates"] >= 2 or run.poll() is not None)
        busiest = max(client.processing().items(), key=lambda item: len(item[1]))[0]
        victim = client.run(os.getpid, workers=[busiest])[busiest]
        os.kill(victim, signal.SIGKILL)
        summary = finish_run(run, timeout=240)
        assert victim not in client.run(os.getpid).values()
    assert summary["ok"] is True
    stats = server.stats()
    assert stats["duplicate_creates"] == 0 and stats["creates"] == 9  # 3 heroes + 6 edits, each once
    assert all(peak <= 2 for peak in stats["peak_concurrent"].values()), stats["peak_concurrent"]
    assert _journal(folder) == []


def _key_locks_on(client: Any) -> dict[str, int]:
    """The scheduler's wanflow key locks: name -> leases held now."""
    def look(dask_scheduler: Any) -> dict[str, int]:
        semaphores = dask_scheduler.extensions["semaphores"]
        return {name: len(semaphores.leases.get(name) or {}) for name in semaphores.max_leases
                if str(name).startswith("wanflow-key-")}

    return client.run_on_scheduler(look)


def test_the_schedulers_key_locks_do_not_grow_with_the_rows(sim, tmp_path, cluster):
    """12 distinct requests (8 rows, 4 shared heroes) with 2 key lock stripes: the scheduler holds 2
    key locks, none of them leased once the run is done, also after a second batch with new
    requests; every request is still created exactly once (a lock per key left 12, then 24)."""
    server = sim(task_seconds=0.2, tiny_results=True)
    env = cli_env(server, SECRET, WANFLOW_CLUSTER_KEY_LOCKS="2")
    local = cluster(env)
    folder = project_folder(tmp_path, "team", BATCH)
    (folder / "rows.csv").write_text(_rows(8, heroes=4))
    (folder / "more.csv").write_text("name,trial,look\n" + "".join(f"r{row},{row % 4},again{row}\n" for row in range(8)))
    with distributed.Client(local) as client:
        assert finish_run(start_run(folder, env, "--batch", "rows.csv", "--cluster", local.scheduler_address))["ok"]
        first = _key_locks_on(client)
        assert finish_run(start_run(folder, env, "--batch", "more.csv", "--cluster", local.scheduler_address))["ok"]
        second = _key_locks_on(client)
    assert 1 <= len(first) <= 2 and set(first.values()) == {0}, first
    assert set(second) <= {"wanflow-key-0", "wanflow-key-1"} and set(second.values()) == {0}, second
    stats = server.stats()
    assert stats["creates"] == 4 + 8 + 8 and stats["duplicate_creates"] == 0  # heroes once, every edit once
    assert _journal(folder) == []


def test_key_stripes_are_stable_and_spread():
    from wanflow.execute.cluster.worker import key_stripe

    keys = [hashlib.sha256(str(index).encode()).hexdigest() for index in range(4000)]
    names = [key_stripe(key, 16) for key in keys]
    assert names == [key_stripe(key, 16) for key in keys]  # the same key, the same lock, in every process
    counts = {name: names.count(name) for name in set(names)}
    assert set(counts) == {f"wanflow-key-{index}" for index in range(16)}
    assert max(counts.values()) < 2 * min(counts.values()), counts


def test_ctrl_c_on_the_driver_cancels_cleanly_and_a_rerun_resumes_the_paid_tasks(sim, tmp_path):
    """Ctrl-C mid-run: exit 130 with no traceback (the local workers ignore SIGINT; the driver stops
    their units gracefully), the paid tasks stay journaled, and a rerun resumes them: no second create."""
    server = sim(task_seconds=3.0, tiny_results=True)
    env = {**cli_env(server, SECRET), **FAST_LEASES}
    folder = project_folder(tmp_path, "team", ONE_STEP)
    (folder / "rows.csv").write_text("name,trial\n" + "".join(f"r{row},{row}\n" for row in range(4)))
    run = start_run(folder, env, "--batch", "rows.csv", "--cluster", "local:2", new_session=True)
    wait_for(lambda: server.stats()["creates"] >= 2 or run.poll() is not None)
    os.killpg(run.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the driver and its local workers get it
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "Traceback" not in err
    assert json.loads(out)["ok"] is False
    paid = server.stats()["creates"]
    assert paid >= 2 and {entry.task_id for entry in _journal(folder)} - {None}  # what was paid is journaled
    summary = finish_run(start_run(folder, env, "--batch", "rows.csv"))
    assert summary["ok"] is True
    stats = server.stats()
    assert stats["creates"] == 4 and stats["duplicate_creates"] == 0
    assert _journal(folder) == []


@pytest.mark.slow
def test_a_200_row_batch_on_a_cluster_creates_each_request_once_within_the_limits(sim, tmp_path):
    """200 rows sharing 50 hero requests, 2 workers, 8 tasks of a model at once: 250 creates, each once."""
    server = sim(task_seconds=0.05, tiny_results=True)
    folder = project_folder(tmp_path, "team", BATCH, _limits(concurrent=8, per_second=200))
    (folder / "rows.csv").write_text(_rows(200, heroes=50))
    summary = finish_run(start_run(folder, cli_env(server, SECRET), "--batch", "rows.csv", "--cluster", "local:2",
                                   "--yes"), timeout=400)
    assert summary["ok"] is True
    stats = server.stats()
    assert stats["creates"] == 250 and stats["duplicate_creates"] == 0
    assert all(peak <= 8 for peak in stats["peak_concurrent"].values()), stats["peak_concurrent"]
    assert len(lock_keys(json.loads((folder / "pipe.lock").read_text()))) == 400


def test_a_bad_cluster_address_is_a_usage_error(tmp_path):
    folder = project_folder(tmp_path, "here", BATCH)
    done = subprocess.run([sys.executable, "-m", "wanflow", "run", "pipe.yaml", "--cluster", "local:0"], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "local:N" in done.stderr


def test_the_message_log_is_kept_short_unless_the_user_set_it():
    """Dask keeps each comm's last messages; a unit's carries its pipeline, so the default (1,000 per
    comm) made the scheduler's memory grow with the rows. wanflow shortens it unless told otherwise."""
    import dask

    from wanflow.execute.cluster.driver import MESSAGE_LOG_KEY, MESSAGE_LOG_LENGTH, short_message_log

    with dask.config.set({MESSAGE_LOG_KEY: 1000}):
        short_message_log()
        assert dask.config.get(MESSAGE_LOG_KEY) == MESSAGE_LOG_LENGTH
    with dask.config.set({MESSAGE_LOG_KEY: 7}):
        short_message_log()
        assert dask.config.get(MESSAGE_LOG_KEY) == 7
