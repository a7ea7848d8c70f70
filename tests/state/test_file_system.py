"""Folders that are files, unwritable, read-only or full; two pipelines sharing one output folder.

Before the run: exit 2 naming the path and what to do. During the run: exit 1 with the same kind
of message. Never "internal error", never a traceback, and what was stored stays stored.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from wanflow import _fs as fsutil
from wanflow import _fs_errors as fs_errors
from wanflow._exceptions import FileSystemError
from wanflow.cli.main import main
from wanflow.execute import preflight
from wanflow.state.out_folder import MANIFEST
from wanflow.state.store import ArtifactStore

PIPE = "name: fs\nsteps:\n  a: {model: wan2.6-t2i, prompt: a red teapot, params: {n: 1}}\n"


def _run(path: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main(["run", str(path), *extra])
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err, err
    return code, err


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda p: (p / ".wanflow").write_text("x"), "the state folder {p}/.wanflow is a file, not a folder"),
    (lambda p: ((p / ".wanflow").mkdir(), (p / ".wanflow/objects").write_text("x")), "the store {p}/.wanflow/objects is a file"),
    (lambda p: ((p / ".wanflow").mkdir(), (p / ".wanflow/runs").write_text("x")), "the run records folder {p}/.wanflow/runs is a file"),
    (lambda p: (p / "out").write_text("x"), "the output folder {p}/out is a file, not a folder"),
    (lambda p: ((p / "out").mkdir(), (p / "out/fs").write_text("x")), "the pipeline's output folder {p}/out/fs is a file"),
])
def test_a_file_where_a_folder_belongs_is_refused_before_the_run(make, fragment, project, write_pipeline, capsys,
                                                                 use_instrumented_local):
    path = write_pipeline(PIPE)
    make(project)
    code, err = _run(path, capsys)
    assert code == 2
    assert fragment.format(p=project) in err
    assert "move the file away, or choose another folder with" in err
    assert use_instrumented_local.calls == []


def test_a_state_dir_below_a_file_is_refused(project, write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(PIPE)
    code, err = _run(path, capsys, "--state-dir", str(path / "state"))
    assert code == 2
    assert f"cannot be created: {path} is a file, not a folder" in err and "--state-dir" in err


def test_a_read_only_file_system_is_refused(project, write_pipeline, capsys, monkeypatch, use_instrumented_local):
    path = write_pipeline(PIPE)
    real = os.statvfs
    fake = namedtuple("fake", "f_flag")
    monkeypatch.setattr(os, "statvfs", lambda folder: fake(os.ST_RDONLY) if str(folder).startswith(str(project)) else real(folder))
    code, err = _run(path, capsys)
    assert code == 2 and "is on a read-only file system: choose a folder on a writable disk with --state-dir" in err


def test_an_unwritable_folder_is_refused(project, write_pipeline, capsys, monkeypatch, use_instrumented_local):
    path = write_pipeline(PIPE)
    (project / "out").mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == project / "out" else real(p, mode))
    code, err = _run(path, capsys)
    assert code == 2
    assert f"the output folder {project}/out is not writable ({project}/out: permission denied): make it writable" in err


def test_a_full_disk_is_refused_before_the_run(project, write_pipeline, capsys, monkeypatch, use_instrumented_local):
    path = write_pipeline(PIPE)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: shutil._ntuple_diskusage(100, 100, 0))  # type: ignore[attr-defined]
    code, err = _run(path, capsys)
    assert code == 2 and "is full (0 KB free): free some space (`wanflow cache gc`" in err
    assert use_instrumented_local.calls == []


def test_a_probe_write_that_fails_is_refused_before_the_run(project, write_pipeline, capsys, monkeypatch):
    path = write_pipeline(PIPE)

    def full(file, mode="r", *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(file))

    monkeypatch.setattr(preflight, "open", full, raising=False)
    code, err = _run(path, capsys)
    assert code == 2
    assert f"the state folder: cannot write {project}/.wanflow/tmp/.wanflow-probe-" in err
    assert "the disk is full; free some space" in err


def test_a_full_disk_during_a_step_fails_the_step_plainly(project, write_pipeline, capsys, monkeypatch, use_instrumented_local):
    path = write_pipeline(PIPE + "  b: {model: wan2.6-t2i, prompt: a blue teapot, params: {n: 1}}\n")

    def full(self, incoming, digest, size):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path_for(digest)))

    monkeypatch.setattr(ArtifactStore, "_settle", full)
    code = main(["run", str(path), "--json"])
    captured = capsys.readouterr()
    assert code == 1
    assert "internal error" not in captured.out + captured.err
    steps = json.loads(captured.out)["steps"]
    assert all(step["status"] == "failed" for step in steps.values())
    assert "the disk is full; free some space" in steps["a"]["error"]
    assert (project / ".wanflow/runs").is_dir()  # the record of what happened is kept


def test_a_full_disk_while_writing_the_record_exits_1_plainly(project, write_pipeline, capsys, monkeypatch):
    path = write_pipeline(PIPE)
    real = fsutil._create

    def create(target):
        if "/runs/" in str(target):
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return real(target)

    monkeypatch.setattr(fsutil, "_create", create)
    code, err = _run(path, capsys)
    assert code == 1
    assert "wanflow: error: cannot write" in err and "/.wanflow/runs/" in err and "the disk is full" in err


def test_file_system_errors_name_the_path_and_what_to_do():
    error = fs_errors.file_system_error(OSError(errno.EROFS, "Read-only file system", "/mnt/x"), how="--out-dir DIR")
    assert isinstance(error, FileSystemError) and isinstance(error, OSError) and error.errno == errno.EROFS
    assert str(error) == ("cannot write /mnt/x: the file system is read-only; choose another folder on a writable disk")
    assert fs_errors.describe(OSError(errno.EACCES, "Permission denied", "/x"), how="--out-dir DIR") == \
        "cannot write /x: permission denied; make it writable for you, or choose another folder with --out-dir DIR"
    assert not fs_errors.is_file_system_error(ConnectionResetError(errno.ECONNRESET, "reset"))


def test_an_atomic_write_that_fails_removes_its_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "record.json"

    def replace(source, destination):
        raise OSError(errno.ENOSPC, "No space left on device", str(destination))

    monkeypatch.setattr(fsutil.os, "replace", replace)
    with pytest.raises(FileSystemError, match="the disk is full"):
        fsutil.atomic_write_bytes(target, b"{}")
    assert list(tmp_path.iterdir()) == []


def test_cache_commands_refuse_a_state_dir_that_is_a_file(project, capsys):
    (project / "state").write_text("x")
    assert main(["cache", "verify", "--state-dir", "state"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


# --- one output folder, one pipeline file ---------------------------------------------------------

def test_two_pipeline_files_with_one_name_cannot_share_an_output_folder(project, write_pipeline, capsys,
                                                                        use_instrumented_local):
    first = write_pipeline(PIPE, "first.yaml")
    second = write_pipeline(PIPE.replace("red", "green"), "sub/second.yaml")
    assert main(["run", str(first)]) == 0
    assert json.loads((project / "out/fs" / MANIFEST).read_text())["pipeline"] == "first.yaml"
    capsys.readouterr()
    code, err = _run(second, capsys)
    assert code == 2
    assert f"{project}/out/fs holds the outputs of first.yaml, another pipeline named 'fs'" in err
    assert "--out-dir" in err
    assert len(use_instrumented_local.calls) == 1  # the second pipeline generated nothing
    assert main(["run", str(second), "--out-dir", "elsewhere"]) == 0  # a folder of its own is fine
    assert main(["run", str(first)]) == 0  # and the owner still runs in its own


def test_a_renamed_pipeline_file_takes_its_output_folder_over(project, write_pipeline, capsys, use_instrumented_local):
    first = write_pipeline(PIPE, "first.yaml")
    assert main(["run", str(first)]) == 0
    renamed = first.rename(project / "renamed.yaml")
    assert main(["run", str(renamed)]) == 0
    assert json.loads((project / "out/fs" / MANIFEST).read_text())["pipeline"] == "renamed.yaml"


def test_the_owner_survives_the_manifest_being_rewritten(project, write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(PIPE)
    assert main(["run", str(path)]) == 0
    assert main(["run", str(path), "--fresh"]) == 0
    manifest = json.loads((project / "out/fs" / MANIFEST).read_text())
    assert manifest["pipeline"] == "pipe.yaml" and manifest["files"]


def test_frozen_with_a_corrupt_lockfile_says_it_is_not_json(project, write_pipeline, capsys):
    path = write_pipeline(PIPE)
    path.with_suffix(".lock").write_text('{"wanflow_lock": 1, "instances": {')
    code, err = _run(path, capsys, "--frozen")
    assert code == 2
    assert f"--frozen: {path.with_suffix('.lock')} is not valid JSON (line 1, column 35" in err
    assert "restore it from version control" in err


def test_concurrent_folder_fsyncs_are_grouped_and_each_caller_waits_for_one_that_began_after_it(tmp_path, monkeypatch):
    """Group commit (``_fs.fsync_dir``): many threads that fsync the journal's folder at once pay
    fewer fsyncs than callers, and none returns before an fsync that started after its call."""
    import threading
    import time

    real = fsutil._fsync_folder
    syncs: list[tuple[float, float]] = []

    def slow_disk(folder: str) -> None:  # the real fsync, on a disk that takes 20 ms per flush
        began = time.monotonic()
        time.sleep(0.02)
        real(folder)
        syncs.append((began, time.monotonic()))

    monkeypatch.setattr(fsutil, "_fsync_folder", slow_disk)
    calls: list[tuple[float, float]] = []
    start = threading.Barrier(24)

    def caller(index: int) -> None:
        start.wait()
        time.sleep(index * 0.003)  # arrivals spread over a few flushes
        (tmp_path / f"entry-{index}").write_bytes(b"x")
        called = time.monotonic()
        fsutil.fsync_dir(tmp_path)
        calls.append((called, time.monotonic()))

    threads = [threading.Thread(target=caller, args=(index,)) for index in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 24 and 1 < len(syncs) < 24
    for called, returned in calls:
        assert any(called <= began and ended <= returned for began, ended in syncs), (called, returned, syncs)
