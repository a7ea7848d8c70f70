"""A shared store (--store): two project folders ("two laptops") share results and never pay twice,
on a file:// store and on a real S3-compatible server (moto) on loopback; and Dask as the engine
(--cluster local:2) against the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import cli_env
from wanflow.runner.shared_store import KeyLease, SharedJournal, SharedStore
from wanflow.sim.server import SimServer
from wanflow.sim.state import Knobs

SECRET = "sk-wanflow-test-SECRET-0123456789"

TWO_STEPS = """
name: paid
vars: {trial: 0}
defaults: {seed: 5}
steps:
  hero: {model: wan2.6-t2i, prompt: "trial {{ vars.trial }}: a lamp", params: {n: 1}}
  edit: {model: wan2.6-image, images: ["{{ steps.hero.images[0] }}"], prompt: "make it glow {{ vars.trial }}", params: {n: 1}}
outputs: {final: "{{ steps.edit.images[0] }}"}
"""


@pytest.fixture
def sim(tmp_path: Path):
    servers: list[SimServer] = []

    def start(**knobs) -> SimServer:
        server = SimServer(Knobs(task_seconds=knobs.pop("task_seconds", 0.6), seed=1, keys=(SECRET,), **knobs),
                           workdir=tmp_path / "sim")
        servers.append(server.__enter__())
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def _laptop(tmp_path: Path, name: str, text: str = TWO_STEPS) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "wanflow.toml").write_text("")
    (folder / "pipe.yaml").write_text(text)
    return folder


def _start(folder: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "wanflow", "run", "pipe.yaml", "--provider", "dashscope", "--json", *extra],
                            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen, timeout: float = 240) -> dict:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err + out
    return json.loads(out)


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
    first, second = _laptop(tmp_path, "alice"), _laptop(tmp_path, "bob")
    env = cli_env(server, SECRET)
    runs = [_start(first, env, "--store", store), _start(second, {**env, "WANFLOW_STORE": store})]
    summaries = [_finish(run) for run in runs]
    assert _statuses(*summaries) == ["cached", "cached", "ran", "ran"]
    assert server.stats()["creates"] == 2 and server.stats()["duplicate_creates"] == 0
    # A third laptop with an empty .wanflow/ gets everything from the store: verified objects, no call.
    third = _laptop(tmp_path, "carol")
    summary = _finish(_start(third, env, "--store", store))
    assert _statuses(summary) == ["cached", "cached"]
    assert server.stats()["creates"] == 2
    final = sorted((third / "out" / "paid").glob("final*"))
    assert final and final[0].stat().st_size > 0
    runs_on_store = list((tmp_path / "team-store" / "runs").glob("*.json"))
    assert len(runs_on_store) == 3
    assert not list((tmp_path / "team-store" / "journal").glob("*/*.json"))  # nothing left in flight


def test_without_a_store_nothing_is_shared(sim, tmp_path):
    server = sim(task_seconds=0.2)
    env = cli_env(server, SECRET)
    _finish(_start(_laptop(tmp_path, "alice"), env))
    _finish(_start(_laptop(tmp_path, "bob"), env))
    assert server.stats()["creates"] == 4


# --- an S3-compatible server on loopback ---------------------------------------------------------------

@pytest.fixture
def s3_server():
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        pytest.skip(f"moto[server] is not installed ({error}); pip install -e '.[test,store]'")
    pytest.importorskip("s3fs", reason="s3fs is not installed; pip install -e '.[store]'")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
    except Exception as error:  # pragma: no cover - depends on the machine
        pytest.skip(f"the moto S3 server could not start on 127.0.0.1: {error}")
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "FSSPEC_S3_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    import boto3

    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket="team")
    yield env
    server.stop()


def test_two_project_folders_sharing_an_s3_store_create_each_task_once(sim, tmp_path, s3_server):
    server = sim(task_seconds=1.0)
    env = {**cli_env(server, SECRET), **s3_server}
    store = "s3://team/wanflow"
    first, second = _laptop(tmp_path, "alice"), _laptop(tmp_path, "bob")
    summaries = [_finish(run) for run in [_start(first, env, "--store", store), _start(second, env, "--store", store)]]
    assert _statuses(*summaries) == ["cached", "cached", "ran", "ran"]
    assert server.stats()["creates"] == 2 and server.stats()["duplicate_creates"] == 0
    summary = _finish(_start(_laptop(tmp_path, "carol"), env, "--store", store))
    assert _statuses(summary) == ["cached", "cached"] and server.stats()["creates"] == 2
    # The S3 store's create-if-absent really refuses a second writer (If-None-Match: *).
    os.environ.update(s3_server)
    try:
        shared = SharedStore("s3://team/probe")
        assert shared.create("x.json", b"1") is True and shared.create("x.json", b"2") is False
    finally:
        for name in s3_server:
            os.environ.pop(name, None)


# --- Dask as the engine ------------------------------------------------------------------------------

BATCH = """
name: paid
vars: {trial: 0, look: plain}
defaults: {seed: 5}
steps:
  hero: {model: wan2.6-t2i, prompt: "trial {{ vars.trial }}: a lamp", params: {n: 1}}
  edit: {model: wan2.6-image, images: ["{{ steps.hero.images[0] }}"], prompt: "make it {{ vars.look }}", params: {n: 1}}
outputs: {final: "{{ steps.edit.images[0] }}"}
"""

ROWS = "name,trial,look\na,1,glow\nb,1,shine\nc,2,glow\n"  # a and b share their hero request


@pytest.mark.slow
def test_a_batch_on_a_local_dask_cluster_matches_a_local_run_with_no_duplicates(sim, tmp_path):
    pytest.importorskip("distributed", reason="distributed is not installed; pip install -e '.[cluster]'")
    server = sim(task_seconds=0.3)
    env = cli_env(server, SECRET)
    on_cluster, at_home = _laptop(tmp_path, "cluster", BATCH), _laptop(tmp_path, "local", BATCH)
    for folder in (on_cluster, at_home):
        (folder / "rows.csv").write_text(ROWS)
    store = f"file://{tmp_path / 'team-store'}"
    summary = _finish(_start(on_cluster, env, "--batch", "rows.csv", "--cluster", "local:2", "--store", store), timeout=300)
    # hero: 2 distinct requests; edit: 3 distinct requests
    assert server.stats()["creates"] == 5 and server.stats()["duplicate_creates"] == 0
    assert summary["ok"] is True, summary
    local = _finish(_start(at_home, env, "--batch", "rows.csv"))
    assert local["ok"] is True
    # The same requests and the same cache keys, row by row and step by step.
    cluster_lock = json.loads((on_cluster / "pipe.lock").read_text())
    local_lock = json.loads((at_home / "pipe.lock").read_text())
    assert _keys(cluster_lock) == _keys(local_lock) and len(_keys(cluster_lock)) == 6
    for row in ("a", "b", "c"):
        assert list((on_cluster / "out" / "paid" / row).glob("final*"))


def test_a_bad_cluster_address_is_a_usage_error(tmp_path):
    folder = _laptop(tmp_path, "here")
    done = subprocess.run([sys.executable, "-m", "wanflow", "run", "pipe.yaml", "--cluster", "local:0"], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "local:N" in done.stderr


def _keys(lock: dict) -> dict[str, str]:
    found: dict[str, str] = {}

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            if "cache_key" in node and isinstance(node["cache_key"], str):
                found[path] = node["cache_key"]
            for name, value in node.items():
                walk(value, f"{path}/{name}")

    walk(lock, "")
    return found
