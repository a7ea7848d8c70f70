"""The plan's resolution cache (state/input_stamps.py): an unchanged local input is not probed or
hashed again on a rerun, and any edit is seen, also one that keeps the size and restores the mtime."""

from __future__ import annotations

import os

import pytest
from PIL import Image

import wanflow
from wanflow.planning import media_inputs
from wanflow.state import input_stamps

PIPE = "name: stamps\nsteps:\n  edit: {model: wan2.6-image, prompt: make it glow, images: [in.png], params: {n: 1}}\n"


@pytest.fixture
def counted(monkeypatch):  # type: ignore[no-untyped-def]
    """Count the real probes and hashes of input files (each still does its work)."""
    calls = {"probe": 0, "hash": 0}
    real_probe, real_hash = input_stamps.probe, media_inputs.sha256_file

    def probe(path):  # type: ignore[no-untyped-def]
        calls["probe"] += 1
        return real_probe(path)

    def sha256_file(path):  # type: ignore[no-untyped-def]
        calls["hash"] += 1
        return real_hash(path)

    monkeypatch.setattr(input_stamps, "probe", probe)
    monkeypatch.setattr(media_inputs, "sha256_file", sha256_file)
    monkeypatch.setattr(input_stamps, "RACY_NS", -10**12)  # trust stamps at once (the 2 s rule is tested apart)
    return calls


def _fresh_process_view(workspace: wanflow.Workspace) -> wanflow.Workspace:
    """What a later process sees: the stamps only from the file (a new Workspace loads them anew)."""
    return wanflow.Workspace.discover(workspace.root)


def _statuses(path, workspace) -> set[str]:  # type: ignore[no-untyped-def]
    result = wanflow.run(path, workspace=workspace, report=False)
    return {step.status for step in result.steps.values()}


def test_an_unchanged_input_is_not_probed_or_hashed_again_and_every_edit_is_seen(project, write_pipeline, counted):
    Image.new("RGB", (640, 640), "red").save(project / "in.png", compress_level=0)
    path = write_pipeline(PIPE)
    workspace = wanflow.Workspace.discover(project)
    assert _statuses(path, workspace) == {"ran"}
    first = dict(counted)
    assert first["probe"] >= 1 and (project / ".wanflow/cache/inputs.jsonl").is_file()
    # A rerun in a new process: cached, and the input was neither probed nor hashed nor copied.
    assert _statuses(path, _fresh_process_view(workspace)) == {"cached"}
    assert counted == first
    # Same size, same mtime, other pixels (an edit that restores the mtime, as rsync -t or cp -p do).
    before = os.stat(project / "in.png")
    Image.new("RGB", (640, 640), "blue").save(project / "in.png", compress_level=0)
    assert os.stat(project / "in.png").st_size == before.st_size
    os.utime(project / "in.png", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert _statuses(path, _fresh_process_view(workspace)) == {"ran"}
    assert counted["probe"] > first["probe"]
    # The file replaced by another with the same size and times (a rename: a new inode).
    (project / "other.png").write_bytes((project / "in.png").read_bytes())
    Image.new("RGB", (640, 640), "green").save(project / "other.png", compress_level=0)
    stat = os.stat(project / "in.png")
    os.utime(project / "other.png", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(project / "other.png", project / "in.png")
    assert _statuses(path, _fresh_process_view(workspace)) == {"ran"}
    # And back to red: the first result, from the cache.
    Image.new("RGB", (640, 640), "red").save(project / "in.png", compress_level=0)
    assert _statuses(path, _fresh_process_view(workspace)) == {"cached"}


def test_a_stamp_younger_than_two_seconds_is_not_kept(project, write_pipeline, monkeypatch):
    Image.new("RGB", (640, 640), "red").save(project / "in.png", compress_level=0)  # written just now: racy
    path = write_pipeline(PIPE)
    assert _statuses(path, wanflow.Workspace.discover(project)) == {"ran"}
    assert not (project / ".wanflow/cache/inputs.jsonl").exists()
