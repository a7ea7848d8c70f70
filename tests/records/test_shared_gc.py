"""``cache gc`` on a shared store (a real S3-compatible server, moto, on loopback): it keeps what
any machine's records use, never sweeps while a run uses the store, and fails closed on damage.

Each case drives several wanflow processes (local previews, free): the slow tier."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import wanflow_json
from sim_helpers import TWO_STEPS, project_folder

pytestmark = pytest.mark.slow


def _env(s3_server: dict[str, str], store: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DASHSCOPE", "VTRIX", "WANFLOW"))}
    return {**env, **s3_server, "WANFLOW_STORE": store, "WANFLOW_CONFIG": "/nonexistent/wanflow.toml"}


def _run(folder: Path, env: dict[str, str], trial: int) -> dict[str, str]:
    code, summary, err = wanflow_json(["run", "pipe.yaml", "--var", f"trial={trial}"], folder, env)
    assert code == 0, err
    return {step: value["status"] for step, value in summary["steps"].items()}


def _gc(folder: Path, env: dict[str, str], *extra: str) -> dict:
    code, report, err = wanflow_json(["cache", "gc", "--keep-days", "0", *extra], folder, env)
    assert code == 0, err
    return dict(report["shared"])


@pytest.fixture
def open_store(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """This process's view of the store (the test plays another machine)."""
    import s3fs

    from wanflow.state.shared_store import SharedStore

    def opened(url: str) -> SharedStore:
        for name, value in s3_server.items():
            monkeypatch.setenv(name, value)
        s3fs.S3FileSystem.clear_instance_cache()  # an earlier test's server is gone
        return SharedStore(url)

    yield opened
    s3fs.S3FileSystem.clear_instance_cache()  # nor may a later test meet this one's


def _entries(store) -> set[str]:  # type: ignore[no-untyped-def]
    return {name.removesuffix(".json") for prefix in store.names("cache") for name in store.names(f"cache/{prefix}")}


def test_gc_on_an_s3_store_keeps_what_any_machines_records_use_and_removes_the_rest(tmp_path, s3_server, open_store):
    url = "s3://team/gc-keeps"
    env = _env(s3_server, url)
    alice, bob = project_folder(tmp_path, "alice", TWO_STEPS), project_folder(tmp_path, "bob", TWO_STEPS)
    assert set(_run(alice, env, 0).values()) == {"ran"}
    assert set(_run(alice, env, 1).values()) == {"ran"}
    assert set(_run(bob, env, 2).values()) == {"ran"}  # only bob's records and the store know trial 2
    store = open_store(url)
    before = _entries(store)
    assert len(before) == 6 and len(store.object_names()) == 6
    dry = _gc(alice, env, "--dry-run")
    assert dry["skipped"] is None and len(dry["removed_entries"]) == 2 and dry["kept_entries"] == 4
    assert len(dry["removed_objects"]) == 2 and dry["freed_bytes"] > 0
    assert _entries(store) == before  # a dry run removes nothing
    report = _gc(alice, env)
    assert sorted(report["removed_entries"]) == sorted(dry["removed_entries"])
    assert _entries(store) == before - set(dry["removed_entries"]) and len(store.object_names()) == 4
    said = subprocess.run([sys.executable, "-m", "wanflow", "cache", "gc", "--keep-days", "0"], cwd=alice, env=env,
                          capture_output=True, text=True, timeout=120)
    assert said.returncode == 0 and f"shared store {url}: removed 0 cache entries and 0 objects" in said.stdout
    # A third machine (an empty state folder) finds trials 1 and 2 on the store; trial 0 runs again.
    carol = project_folder(tmp_path, "carol", TWO_STEPS)
    assert set(_run(carol, env, 2).values()) == {"cached"}
    assert set(_run(carol, env, 1).values()) == {"cached"}
    assert set(_run(carol, env, 0).values()) == {"ran"}


def test_gc_on_an_s3_store_removes_nothing_while_a_run_uses_it_or_a_record_is_damaged(tmp_path, s3_server,
                                                                                      open_store):
    from wanflow.state.store_use import UseMarker, sweep_lease

    url = "s3://team/gc-closed"
    env = _env(s3_server, url)
    alice = project_folder(tmp_path, "alice", TWO_STEPS)
    _run(alice, env, 0)
    _run(alice, env, 1)
    store = open_store(url)
    before = _entries(store)
    # A run on another machine uses the store (its marker, renewed while it lives): nothing is swept.
    live = UseMarker(store, 600)
    live.mark()
    report = _gc(alice, env)
    assert "in use by 1 run" in report["skipped"] and report["removed_entries"] == [] and _entries(store) == before
    live.clear()
    UseMarker(store, -1).mark()  # a killed run stopped renewing: once expired, its marker no longer counts
    assert len(_gc(alice, env, "--dry-run")["removed_entries"]) == 2
    # A damaged record on the store may refer to anything: fail closed, and name it.
    store.write("runs/elsewhere/20260101T000000Z-paid-0000.json", b'{"run_id": 7')
    report = _gc(alice, env)
    assert report["skipped"] and "damaged" in report["skipped"] and _entries(store) == before
    assert any("runs/elsewhere/20260101T000000Z-paid-0000.json" in problem for problem in report["damaged"])
    store.delete("runs/elsewhere/20260101T000000Z-paid-0000.json")
    # While a gc sweeps (it holds the sweep lease), a second gc stays out and a run waits for it.
    lease = sweep_lease(store)
    assert lease.try_take()
    assert "another cache gc" in _gc(alice, env)["skipped"]
    waiting = subprocess.Popen([sys.executable, "-m", "wanflow", "run", "pipe.yaml", "--var", "trial=3", "--json"],
                               cwd=alice, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        assert waiting.poll() is None and _entries(store) == before  # it has not stored anything yet
    finally:
        lease.release()
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err + out
    assert len(_entries(store)) == len(before) + 2
    removed = _gc(alice, env)["removed_entries"]
    assert len(removed) == 4 and not set(removed) & (_entries(store))  # trials 0 and 1; trial 3 is the newest
    assert set(_run(alice, env, 3).values()) == {"cached"}
