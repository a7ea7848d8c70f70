"""Setup mistakes get a clear message and exit 2 before anything is paid: the store URL, the
cluster address, the user config (unknown keys with a "did you mean", wrong types, a folder)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import SRC, cli_env, wanflow_json
from sim_helpers import SECRET

ONE = "name: one\nsteps:\n  a: {model: wan2.6-t2i, prompt: a red teapot, params: {n: 1}}\n"


def _run(project: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WANFLOW", "AWS_", "FSSPEC"))}
    full = {**base, "PYTHONPATH": SRC, "WANFLOW_CONFIG": "/nonexistent/config.toml", **env}
    return subprocess.run([sys.executable, "-m", "wanflow", *args], cwd=project, env=full, capture_output=True,
                          text=True, timeout=60)


def _listing(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@pytest.mark.parametrize(("url", "fragment"), [
    ("s3://", "s3:// needs a bucket name"),
    ("gs://", "gs:// needs a bucket name"),
    ("file://", "a file:// store needs an absolute folder"),
    ("file://relative/x", "a file:// store needs an absolute folder"),
    ("ftp://host/x", "the scheme 'ftp://' is not supported"),
    ("http://host/x", "the scheme 'http://' is not supported"),
    ("s3:", "not a URL this store takes"),
    ("s3://team/prefix", "no AWS credentials found"),
])
def test_a_bad_store_url_is_exit_2_and_creates_nothing(project, url, fragment):
    (project / "pipe.yaml").write_text(ONE)
    before = _listing(project)
    done = _run(project, ["run", "pipe.yaml", "--store", url])
    assert done.returncode == 2, done.stderr
    assert fragment in done.stderr and "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert _listing(project) == before, "no folder named s3:, no store in the project root, no outputs"


def test_an_unreachable_s3_store_is_exit_2_within_seconds(project):
    pytest.importorskip("s3fs", reason="s3fs is not installed; pip install -e '.[store]'")
    (project / "pipe.yaml").write_text(ONE)
    started = time.monotonic()
    done = _run(project, ["run", "pipe.yaml", "--store", "s3://team/prefix"], AWS_ACCESS_KEY_ID="x",
                AWS_SECRET_ACCESS_KEY="y", AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL="http://127.0.0.1:1",
                FSSPEC_S3_ENDPOINT_URL="http://127.0.0.1:1")
    assert time.monotonic() - started < 30
    assert done.returncode == 2, done.stderr
    assert "the store did not answer" in done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_cluster_is_exit_2_within_seconds(sim, project):
    if importlib.util.find_spec("distributed") is None:
        pytest.skip("Dask's distributed is not installed (pip install -e '.[cluster]')")
    server = sim()
    (project / "pipe.yaml").write_text(ONE)
    started = time.monotonic()
    code, _, err = wanflow_json(["run", "pipe.yaml", "--provider", "dashscope", "--cluster", "tcp://127.0.0.1:1"],
                                project, cli_env(server, SECRET), timeout=60)
    assert time.monotonic() - started < 25
    assert code == 2, err
    assert "no Dask scheduler answered" in err and "Traceback" not in err and "internal error" not in err
    assert server.stats()["creates"] == 0


@pytest.mark.parametrize(("config", "fragment"), [
    ("providers = 1\n", "providers: must be a table"),
    ('[providers.dashscope]\nregoin = "beijing"\n', "unknown setting 'regoin'; did you mean 'region'?"),
    ('[providers.dashscope]\nenvelope = "gateway"\n', "dashscope has no envelope setting"),
    ('[providers.vtrix]\nenvelope = "gatway"\n', "unknown envelope 'gatway'; did you mean 'gateway'?"),
    ('[providers.vtrix]\nurl_reuse_hours = "soon"\n', "url_reuse_hours: must be a number"),
    ('[providers.vtrix]\napi_key = 5\n', "api_key: must be text"),
    ('[provders.vtrix]\napi_key = "k"\n', "unknown section 'provders'; did you mean 'providers'?"),
    ('[providers.dashscop]\napi_key = "k"\n', "unknown provider 'dashscop'"),
    ("FOLDER", "is a folder, not a regular file"),
])
def test_a_bad_user_config_is_exit_2_naming_the_key(sim, project, tmp_path, config, fragment):
    server = sim()
    (project / "pipe.yaml").write_text(ONE)
    path = tmp_path / "user-config"
    if config == "FOLDER":
        path.mkdir()
    else:
        path.write_text(config)
    for command in ("validate", "run"):
        code, _, err = wanflow_json([command, "pipe.yaml", "--provider", "dashscope"], project,
                                    cli_env(server, SECRET, WANFLOW_CONFIG=str(path)))
        assert code == 2, err
        assert str(path) in err and fragment in err, err
        assert "Traceback" not in err and "internal error" not in err
    assert server.stats()["creates"] == 0


def test_a_project_envelope_for_dashscope_is_refused_by_validate(project):
    (project / "pipe.yaml").write_text(ONE)
    (project / "wanflow.toml").write_text('[providers.dashscope]\nenvelope = "gateway"\n')
    done = _run(project, ["validate", "pipe.yaml"])
    assert done.returncode == 2 and "wanflow.toml:2:1" in done.stderr and "no envelope setting" in done.stderr


# --- init checks everything before writing anything -------------------------------------------------

def test_init_keeps_a_latin1_gitignore_byte_for_byte(tmp_path):
    (tmp_path / ".gitignore").write_bytes("caf\xe9/\n".encode("latin-1"))
    done = _run(tmp_path, ["init", "."])
    assert done.returncode == 0, done.stderr
    data = (tmp_path / ".gitignore").read_bytes()
    assert data.startswith("caf\xe9/\n".encode("latin-1")) and b".wanflow/" in data and b"out/" in data


@pytest.mark.parametrize("where", [".gitignore", "wanflow.toml", "wanflow.schema.json"])
def test_init_over_a_symlink_loop_writes_nothing(tmp_path, where):
    (tmp_path / where).symlink_to(tmp_path / where)
    done = _run(tmp_path, ["init", "."])
    assert done.returncode == 2, done.stderr
    assert "nothing was written" in done.stderr and "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [where]


def test_init_that_cannot_write_one_file_leaves_none(tmp_path, monkeypatch):
    import errno

    from wanflow.project import init as project_init

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(project_init, "_ignore", full)  # the last write fails: a full disk
    with pytest.raises(project_init.UsageError, match=r"the disk is full.*nothing was written"):
        project_init.init_project(tmp_path / "new")
    assert list((tmp_path / "new").iterdir()) == []


def test_init_with_a_fifo_for_gitignore_is_refused_by_name(tmp_path):
    os.mkfifo(tmp_path / ".gitignore")
    done = _run(tmp_path, ["init", "."])
    assert done.returncode == 2 and "FIFO" in done.stderr and "nothing was written" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore"]
