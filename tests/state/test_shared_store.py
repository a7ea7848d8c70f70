"""A shared store (--store): two project folders ("two laptops") share results and never pay twice,
on a file:// store and on a real S3-compatible server (moto) on loopback. The Dask engine's tests
are in test_cluster.py."""

from __future__ import annotations

import json
import os

import pytest

from cli_helpers import cli_env
from sim_helpers import SECRET, TWO_STEPS, finish_run, project_folder, start_run
from wanflow.state.shared_store import KeyLease, SharedJournal, SharedStore


def _statuses(*summaries: dict) -> list[str]:
    return sorted(step["status"] for summary in summaries for step in summary["steps"].values())


# --- the store's small operations -------------------------------------------------------------------

def test_create_if_absent_lets_exactly_one_writer_win(tmp_path):
    store = SharedStore(f"file://{tmp_path / 'team'}")
    assert store.create("a/one.json", b"first") is True
    assert store.create("a/one.json", b"second") is False
    assert store.read("a/one.json") == b"first"
    assert store.names("a") == ["one.json"] and store.names("missing") == []


def test_a_key_lease_excludes_a_second_machine_until_released_or_expired(tmp_path):
    store = SharedStore(f"file://{tmp_path / 'team'}")
    first, second = KeyLease(store, "k" * 64), KeyLease(store, "k" * 64)
    assert first.try_take() and not second.try_take()
    first.release()
    assert second.try_take()
    third = KeyLease(store, "k" * 64, seconds=0.0)
    second.seconds = 0.0
    second.renew()  # a holder that stopped renewing: its lease has run out
    assert third.try_take()


def test_a_second_intent_for_the_same_event_number_is_refused(tmp_path):
    journal = SharedJournal(SharedStore(f"file://{tmp_path / 'team'}"))
    journal.append("key", {"event": 1}, intent=True)
    assert journal.last("key") == {"event": 1}
    # Another machine that computed the same next number loses the create and is refused.
    journal.store.create("journal/key/00000002.json", b'{"event": "theirs"}')
    journal.append("key", {"event": 3}, intent=False)  # a later event just takes the next number
    assert journal.last("key") == {"event": 3}
    journal.remove("key")
    assert journal.last("key") is None


# --- two laptops, one file:// store -------------------------------------------------------------------

def test_two_project_folders_sharing_a_file_store_create_each_task_once(sim, tmp_path):
    server = sim(task_seconds=1.0)
    store = f"file://{tmp_path / 'team-store'}"
    first, second = project_folder(tmp_path, "alice", TWO_STEPS), project_folder(tmp_path, "bob", TWO_STEPS)
    env = cli_env(server, SECRET)
    runs = [start_run(first, env, "--store", store), start_run(second, {**env, "WANFLOW_STORE": store})]
    summaries = [finish_run(run) for run in runs]
    assert _statuses(*summaries) == ["cached", "cached", "ran", "ran"]
    assert server.stats()["creates"] == 2 and server.stats()["duplicate_creates"] == 0
    # A third laptop with an empty .wanflow/ gets everything from the store: verified objects, no call.
    third = project_folder(tmp_path, "carol", TWO_STEPS)
    summary = finish_run(start_run(third, env, "--store", store))
    assert _statuses(summary) == ["cached", "cached"]
    assert server.stats()["creates"] == 2
    final = sorted((third / "out" / "paid").glob("final*"))
    assert final and final[0].stat().st_size > 0
    runs_on_store = list((tmp_path / "team-store" / "runs").glob("*/*.json"))
    assert len(runs_on_store) == 3
    assert not list((tmp_path / "team-store" / "journal").glob("*/*.json"))  # nothing left in flight


def test_without_a_store_nothing_is_shared(sim, tmp_path):
    server = sim(task_seconds=0.2)
    env = cli_env(server, SECRET)
    finish_run(start_run(project_folder(tmp_path, "alice", TWO_STEPS), env))
    finish_run(start_run(project_folder(tmp_path, "bob", TWO_STEPS), env))
    assert server.stats()["creates"] == 4


# --- an S3-compatible server on loopback ---------------------------------------------------------------

def test_two_project_folders_sharing_an_s3_store_create_each_task_once(sim, tmp_path, s3_server):
    server = sim(task_seconds=1.0)
    env = {**cli_env(server, SECRET), **s3_server}
    store = "s3://team/wanflow"
    first, second = project_folder(tmp_path, "alice", TWO_STEPS), project_folder(tmp_path, "bob", TWO_STEPS)
    summaries = [finish_run(run) for run in [start_run(first, env, "--store", store), start_run(second, env, "--store", store)]]
    assert _statuses(*summaries) == ["cached", "cached", "ran", "ran"]
    assert server.stats()["creates"] == 2 and server.stats()["duplicate_creates"] == 0
    summary = finish_run(start_run(project_folder(tmp_path, "carol", TWO_STEPS), env, "--store", store))
    assert _statuses(summary) == ["cached", "cached"] and server.stats()["creates"] == 2
    # The S3 store's create-if-absent really refuses a second writer (If-None-Match: *).
    os.environ.update(s3_server)
    try:
        shared = SharedStore("s3://team/probe")
        assert shared.create("x.json", b"1") is True and shared.create("x.json", b"2") is False
    finally:
        for name in s3_server:
            os.environ.pop(name, None)


# --- cache verify on the shared store ----------------------------------------------------------------

def test_cache_verify_checks_the_shared_store_and_quarantines_its_corrupt_objects(project, write_pipeline, monkeypatch,
                                                                                  tmp_path, capsys):
    pytest.importorskip("fsspec", reason="the shared store needs fsspec; pip install -e '.[store]'")
    from wanflow.cli.main import main

    team = tmp_path / "team-store"
    monkeypatch.setenv("WANFLOW_STORE", f"file://{team}")
    path = write_pipeline(TWO_STEPS)
    assert main(["run", str(path)]) == 0
    shared = sorted(path for path in (team / "objects").glob("*/*"))
    assert len(shared) >= 2
    victim = shared[0]
    victim.chmod(0o644)
    victim.write_bytes(b"bit rot on the team's store")
    capsys.readouterr()
    assert main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"checked {len(shared)} objects" in out and f"corrupt shared object {victim.name}" in out
    assert not victim.exists() and [found.name.split(".")[0] for found in (team / "quarantine").iterdir()] == [victim.name]
    assert main(["cache", "verify", "--json"]) == 1  # the entry that needs it has lost it, until it runs again
    report = json.loads(capsys.readouterr().out)
    assert report["shared_corrupt"] == [] and len(report["shared_entries_missing_objects"]) == 1
    assert report["shared_store"] == f"file://{team}"
    (project / ".wanflow").rename(project / "laptop-two-has-nothing")  # a second machine: only the shared store
    assert main(["run", str(path), "--json"]) == 0
    statuses = sorted(step["status"] for step in json.loads(capsys.readouterr().out)["steps"].values())
    assert "ran" in statuses  # the corrupt object was never served
    assert main(["cache", "verify"]) == 0


def test_runs_of_one_process_share_one_use_marker_and_none_starts_while_a_gc_sweeps(tmp_path):
    import anyio

    from wanflow.state import store_use

    pytest.importorskip("fsspec", reason="the shared store needs fsspec; pip install -e '.[store]'")
    store = SharedStore(f"file://{tmp_path / 'team'}")
    seen: list[list[str]] = []

    async def two_runs() -> None:
        async with store_use.using_store(store):
            async with store_use.using_store(store):  # a batch's second instance, a worker's next unit
                seen.append(store.names("uses"))
            seen.append(store.names("uses"))
        seen.append(store.names("uses"))

    anyio.run(two_runs)
    assert len(seen[0]) == 1 and seen[1] == seen[0] and seen[2] == []  # one marker, gone with the last run
    assert store_use.live_uses(store) == []
    lease = store_use.sweep_lease(store)
    assert lease.try_take()
    assert store_use._enter(store, 60) is False and store.names("uses") == []  # it waits, leaving no marker
    lease.release()
    assert store_use._enter(store, 60) is True and len(store_use.live_uses(store)) == 1
    store_use._leave(store)
    assert store.names("uses") == []
